"""Catalog access (blocking pyiceberg calls; the watcher runs them in threads).

* :func:`open_catalog` builds the pyiceberg catalog from settings (any implementation pyiceberg knows:
  REST — Polaris, Nessie, Lakekeeper, Gravitino… — SQL, Glue, Hive, DynamoDB);
* :func:`list_tables` returns every watched table with its current metadata location when the catalog can say it
  cheaply. For pyiceberg's SQL catalog that is ONE query over its ``iceberg_tables`` table, so a poll loads only
  tables whose metadata pointer moved. Other catalogs return ``None`` locations: listing is one call per
  namespace, and each watched table is loaded (one metadata read) every poll.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
from typing import Any

from floe_stream.settings import ConfigError, IcebergSourceSettings

log = logging.getLogger(__name__)

MAX_NAMESPACE_DEPTH = 5
TIMEOUT_PROPERTY = "floe.request-timeout-s"
"""The catalog property that carries ``request_timeout_s`` to :class:`DeadlineRestCatalog`."""


def _with_timeout(session: Any, timeout_s: float) -> Any:
    """``session`` (requests) whose requests time out after ``timeout_s`` (connect, and each read) unless the
    caller gives a timeout: pyiceberg's REST client gives none, so a catalog that accepts and never answers
    held a poll (and the start) for ever. A timeout is a ``requests`` error, an OSError: retried."""
    request = session.request

    def timed(method: str, url: str, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = timeout_s
        return request(method, url, **kwargs)

    session.request = timed
    return session


@functools.cache
def _rest_catalog_class() -> type:
    from pyiceberg.catalog.rest import RestCatalog

    class DeadlineRestCatalog(RestCatalog):  # type: ignore[misc]
        """pyiceberg's REST catalog, each of its sessions (the config request at start too) with a timeout."""

        def _create_session(self) -> Any:
            timeout_s = float(self.properties.get(TIMEOUT_PROPERTY) or 30.0)
            return _with_timeout(super()._create_session(), timeout_s)

    return DeadlineRestCatalog


def __getattr__(name: str) -> Any:  # pyiceberg imports py-catalog-impl classes by module attribute
    if name == "DeadlineRestCatalog":
        return _rest_catalog_class()
    raise AttributeError(name)


def _is_rest(props: dict[str, str]) -> bool:
    kind = props.get("type")
    return kind.lower() == "rest" if kind else props.get("uri", "").startswith("http")


def open_catalog(cfg: IcebergSourceSettings) -> Any:
    """The pyiceberg catalog named ``cfg.catalog_name`` (properties from settings, else ~/.pyiceberg.yaml / env).
    A REST catalog's requests time out after ``cfg.request_timeout_s``.

    Raises :class:`ConfigError` for a bad configuration and ``OSError`` when the catalog is unreachable.
    """
    from pyiceberg.catalog import load_catalog

    props: dict[str, str] = dict(cfg.properties)
    props.update({k: v.get_secret_value() for k, v in cfg.secret_properties.items()})
    if _is_rest(props) and "py-catalog-impl" not in props:
        props.pop("type", None)  # pyiceberg takes a catalog type or an implementation, not both
        props["py-catalog-impl"] = f"{__name__}.DeadlineRestCatalog"
        props[TIMEOUT_PROPERTY] = str(cfg.request_timeout_s)
    try:
        catalog = load_catalog(cfg.catalog_name, **props)
    except OSError:  # unreachable (REST catalogs fetch /v1/config at once): the caller may retry
        raise
    except Exception as exc:  # ValueError, NotInstalledError …: a bad or missing configuration
        raise ConfigError(
            f"cannot open Iceberg catalog {cfg.catalog_name!r} (FLOE_SOURCES__ICEBERG__PROPERTIES): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    session = getattr(catalog, "_session", None)
    if session is not None and hasattr(session, "request") and TIMEOUT_PROPERTY not in props:
        _with_timeout(session, cfg.request_timeout_s)  # a REST catalog configured by pyiceberg's own files
    return catalog


def ident(namespace: tuple[str, ...] | str, name: str) -> str:
    ns = namespace if isinstance(namespace, str) else ".".join(namespace)
    return f"{ns}.{name}"


def is_watched(table: str, cfg: IcebergSourceSettings) -> bool:
    t = table.lower()
    ns = t.rsplit(".", 1)[0]
    if cfg.namespaces and not any(ns == n.lower() or ns.startswith(n.lower() + ".") for n in cfg.namespaces):
        return False
    if not any(fnmatch.fnmatchcase(t, g.lower()) for g in cfg.tables):
        return False
    return not any(fnmatch.fnmatchcase(t, g.lower()) for g in cfg.exclude)


def _is_sql(catalog: Any) -> bool:
    try:
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError:  # sqlalchemy not installed
        return False
    return isinstance(catalog, SqlCatalog)


def _sql_locations(catalog: Any) -> dict[str, str | None]:
    from pyiceberg.catalog.sql import IcebergTables
    from sqlalchemy import or_, select

    stmt = select(
        IcebergTables.table_namespace, IcebergTables.table_name, IcebergTables.metadata_location
    ).where(
        IcebergTables.catalog_name == catalog.name,
        or_(IcebergTables.iceberg_type.is_(None), IcebergTables.iceberg_type == "TABLE"),
    )
    with catalog.engine.connect() as conn:
        return {ident(ns, name): loc for ns, name, loc in conn.execute(stmt)}


def _namespaces(catalog: Any, cfg: IcebergSourceSettings) -> list[tuple[str, ...]]:
    """The namespaces to list tables in: the configured ones (else the top level) and their nested ones."""
    out: list[tuple[str, ...]] = []
    frontier: list[tuple[str, ...]] = (
        [tuple(n.split(".")) for n in cfg.namespaces]
        if cfg.namespaces
        else [tuple(ns) for ns in catalog.list_namespaces()]
    )
    depth = 1
    while frontier:
        out.extend(frontier)
        if depth >= MAX_NAMESPACE_DEPTH:
            break
        nxt: list[tuple[str, ...]] = []
        for ns in frontier:
            try:
                nxt.extend(tuple(c) for c in catalog.list_namespaces(ns) if tuple(c) != ns)
            except Exception:  # not every catalog supports nested namespaces
                break
        frontier, depth = nxt, depth + 1
    return out


def list_tables(catalog: Any, cfg: IcebergSourceSettings) -> dict[str, str | None]:
    """Watched table identifier → current metadata location (``None``: unknown without loading the table)."""
    if _is_sql(catalog):
        found = _sql_locations(catalog)
    else:
        from pyiceberg.exceptions import NoSuchNamespaceError

        found = {}
        for ns in _namespaces(catalog, cfg):
            try:
                tables = catalog.list_tables(ns)
            except NoSuchNamespaceError:  # dropped since it was listed, or configured and not created yet
                continue
            for t in tables:
                found[ident(tuple(t[:-1]), t[-1])] = None
    return {t: loc for t, loc in sorted(found.items()) if is_watched(t, cfg)}


def load_metadata(catalog: Any, table: str) -> tuple[Any, str | None] | None:
    """(TableMetadata, metadata location) of one table, or None if it vanished since it was listed."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        tbl = catalog.load_table(table)
    except NoSuchTableError:
        return None
    return tbl.metadata, tbl.metadata_location
