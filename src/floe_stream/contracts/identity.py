"""Which OpenLineage datasets a contract table is: identifiers from the contract's ODCS ``servers``. Pure.

The OpenLineage naming spec (openlineage.io/docs/spec/naming, "Dataset Naming") fixes a dataset's
``namespace`` (the data source) and ``name`` (the dataset in it) per platform; every OpenLineage emitter
follows it (dbt-ol, the Airflow provider, Spark, Trino …). :func:`table_identities` derives them for one table
from each ODCS server of its contract and the table's ``physicalName`` (else its name):

==================  =================================================  =========================================
ODCS server type    namespace                                          name
==================  =================================================  =========================================
postgres(ql)        ``postgres://{host}:{port|5432}``                  ``{database}.{schema}.{table}``
mysql               ``mysql://{host}:{port|3306}``                     ``{database}.{table}``
sqlserver           ``mssql://{host}:{port|1433}``                     ``{database}.{schema}.{table}``
synapse             ``sqlserver://{host}:{port|1433}``                 ``{schema|dbo}.{table}``
oracle              ``oracle://{host}:{port|1521}``                    ``{serviceName}.{schema}.{table}``
db2, vertica        ``db2://`` / ``vertica://{host}:{port}``           ``{database}.{schema}.{table}``
redshift            ``redshift://{host}:{port|5439}`` (dbt-ol) and     ``{database}.{schema}.{table}``
                    ``redshift://{cluster}.{region}:{port}`` (spec)
snowflake           ``snowflake://{account}`` (locator completed       ``{DATABASE}.{SCHEMA}.{TABLE}``
                    with region and cloud, as dbt-ol does)
bigquery            ``bigquery``                                       ``{project}.{dataset}.{table}``
trino, presto       ``trino://`` / ``presto://{host}:{port|8080}``     ``{catalog}.{schema}.{table}``
athena              ``awsathena://athena.{region}.amazonaws.com``      ``{catalog|awsdatacatalog}.{schema}.{table}``
glue                ``arn:aws:glue:{region}:{account}``                ``table/{database}/{table}``
databricks          ``databricks://{host}`` (dbt-ol) and               ``{catalog}.{schema}.{table}``
                    ``unitycatalog://{host}`` (spec)
hive, impala        ``hive://{host}:{port|9083}``                      ``{database}.{table}``
duckdb              ``duckdb://{database file}`` (dbt-ol)              ``{file stem}.{schema|main}.{table}``
kafka               ``kafka://{bootstrap host:port}`` (each one)       ``{topic}`` (the physical name, unsplit)
s3, gcs, azure,     from ``location``: ``s3://{bucket}``,              the object key / path of the table
local, sftp, hdfs   ``gs://{bucket}``, ``abfss://{container}@{host}``,
                    ``wasbs://…``, ``file``, ``hdfs://{host}:{port}``
iceberg             the REST ``catalogUrl``, and the warehouse          ``{namespace}.{table}``, and the
                    location's bucket                                   table's path under the warehouse
==================  =================================================  =========================================

A qualified physical name overrides the server's levels from the right: on a postgres server
``database: shop, schema: public``, physicalName ``orders`` is ``shop.public.orders`` and ``sales.orders`` is
``shop.sales.orders``. For object stores a location with ``{model}`` (datacontract-cli's placeholder) gets the
table's name; a location without it is the table itself when the contract has one table, otherwise the folder
of its tables (``location/{table}``). A glob tail (``*.parquet``) is dropped.

**Case.** Events and contracts are compared by :func:`dataset_key`: the namespace's scheme and host in lower
case (URIs), and the name by the platform's rule: engines whose unquoted identifiers are case-insensitive
(postgres, redshift, mysql, sqlserver, trino, presto, hive, spark, databricks, duckdb, snowflake, oracle,
db2 …) compare unquoted parts case-insensitively and quoted parts (``"My Table"``) exactly; Snowflake's
spelling is its canonical upper case (the spec: the name as Snowflake stores it). BigQuery, Kafka topics,
object keys and file paths are case-sensitive and compared exactly. ``s3a``/``s3n`` are ``s3``, ``abfs`` is
``abfss``, ``wasb`` is ``wasbs`` (what OpenLineage's filesystem naming does); a duckdb namespace is compared by
its file name (dbt-ol writes the profile's path, relative or absolute as the profile has it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from floe_stream.contracts.models import MonitoredAsset, ServerRef

__all__ = [
    "Identity",
    "Suggestion",
    "dataset_key",
    "default_asset_id",
    "name_key",
    "server_identities",
    "server_problem",
    "split_name",
    "suggest",
    "table_identities",
]

Identity = tuple[str, str]
"""(namespace, name) of an OpenLineage dataset."""

# server type → (namespace scheme, the levels above the table in the name, default port)
_SQL: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "postgres": ("postgres", ("database", "schema_name"), 5432),
    "postgresql": ("postgres", ("database", "schema_name"), 5432),
    "cloudsql": ("postgres", ("database", "schema_name"), 5432),
    "mysql": ("mysql", ("database",), 3306),
    "sqlserver": ("mssql", ("database", "schema_name"), 1433),
    "synapse": ("sqlserver", ("schema_name",), 1433),
    "oracle": ("oracle", ("service_name", "schema_name"), 1521),
    "db2": ("db2", ("database", "schema_name"), None),
    "vertica": ("vertica", ("database", "schema_name"), 5433),
    "trino": ("trino", ("catalog", "schema_name"), 8080),
    "presto": ("presto", ("catalog", "schema_name"), 8080),
    "hive": ("hive", ("database",), 9083),
    "impala": ("hive", ("database",), 9083),
    "teradata": ("teradata", ("database",), 1025),
    "clickhouse": ("clickhouse", ("database",), 8123),
    "spark": ("spark", ("schema_name",), None),  # dbt-spark (not an ODCS type: a custom server's type)
}
_DEFAULT_SCHEMA = {"synapse": "dbo", "duckdb": "main"}
_LEVEL_LABEL = {
    "database": "database",
    "schema_name": "schema",
    "catalog": "catalog",
    "service_name": "serviceName",
    "project": "project",
    "dataset": "dataset",
}

# platforms whose unquoted identifiers are case-insensitive (compared in one case)
_FOLDING = frozenset(
    {
        "postgres",
        "postgresql",
        "redshift",
        "mysql",
        "mssql",
        "sqlserver",
        "trino",
        "presto",
        "hive",
        "spark",
        "databricks",
        "unitycatalog",
        "duckdb",
        "snowflake",
        "oracle",
        "db2",
        "vertica",
        "teradata",
        "awsathena",
        "clickhouse",
        "crate",
        "oceanbase",
    }
)
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "abfs": "abfss", "wasb": "wasbs", "postgresql": "postgres"}
_GLOB = re.compile(r"[*?\[{]")


# --- names ----------------------------------------------------------------------------------------------


def split_name(name: str) -> list[str]:
    """``a.b."C.d"`` → ``["a", "b", '"C.d"']``: dots inside double quotes or backticks do not split."""
    parts: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    for ch in name:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in ('"', "`"):
            quote = ch
            cur.append(ch)
        elif ch == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _fold(part: str) -> str:
    return part if part[:1] in ('"', "`") else part.casefold()


def _scheme(namespace: str) -> str:
    head, sep, _ = namespace.partition("://")
    if not sep:
        head = namespace.partition(":")[0]
    return head.strip().lower()


@lru_cache(maxsize=4096)  # a few namespaces, many events: computed once each
def _namespace_key(namespace: str) -> tuple[str, bool]:
    """(comparable namespace, whether names in it compare case-insensitively)."""
    ns = namespace.strip()
    scheme = _scheme(ns)
    canonical = _SCHEME_ALIASES.get(scheme, scheme)
    rest = ns.split("://", 1)[1] if "://" in ns else ns[len(scheme) :].lstrip(":")
    if "://" in ns:
        authority, slash, path = rest.partition("/")
        if canonical == "duckdb":  # dbt-ol: the profile's path as written; compare the file
            key = f"duckdb://{PurePosixPath(rest).name.casefold()}"
        else:
            path = (slash + path).rstrip("/")
            key = f"{canonical}://{authority.lower()}{path}"
    else:
        key = canonical if not rest else f"{canonical}:{rest.rstrip('/')}"
    return key, canonical in _FOLDING


def dataset_key(namespace: str, name: str) -> Identity:
    """What two spellings of one dataset have in common (the case rules of the module docstring)."""
    ns, folding = _namespace_key(namespace)
    if folding:
        given = name
        name = name.strip()
        # no quoted part: every part folds at once (a registry of 100,000 tables keys each: bench/state.py)
        quoted = '"' in name or "`" in name
        name = ".".join(_fold(p) for p in split_name(name)) if quoted else name.casefold()
        if name == given:
            name = given  # the same string object, held once
    else:
        name = name.strip()
        if ns.split(":", 1)[0] in ("s3", "gs", "abfss", "wasbs"):
            name = name.strip("/")  # object keys: OpenLineage writes them without the leading slash
        elif ns == "file" or ns.startswith(("file:", "hdfs:", "dbfs:")):
            name = name.rstrip("/") or "/"
    return ns, name


def name_key(name: str) -> str:
    """The name-only fallback compares case-insensitively (as asset ids and aliases always have)."""
    return name.strip().lower()


# --- identities of a table --------------------------------------------------------------------------------


def _host_port(server: ServerRef, default: int | None) -> str | None:
    host = (server.host or "").strip()
    if not host:
        return None
    if "://" in host:  # a URL where a host was expected
        host = urlsplit(host).netloc or host
    if ":" in host.rsplit("]", 1)[-1]:  # host:port already
        return host.lower()
    port = server.port or default
    return f"{host.lower()}:{port}" if port else host.lower()


def _levels(
    server: ServerRef, levels: Sequence[str], physical: str, defaults: dict[str, str] | None = None
) -> tuple[list[str] | None, str | None]:
    """The name parts: the server's levels, overridden from the right by a qualified physical name."""
    parts = split_name(physical)
    want = len(levels) + 1
    if len(parts) >= want:
        return parts[-want:], None
    filled: list[str] = []
    for level in levels[: want - len(parts)]:
        value = getattr(server, level) or (defaults or {}).get(level)
        if not value:
            return None, f"no {_LEVEL_LABEL.get(level, level)}"
        filled.append(str(value))
    return [*filled, *parts], None


def _location_identity(location: str, physical: str, single_table: bool) -> Identity | None:
    loc = location.strip().replace("{model}", physical).replace("{table}", physical)
    u = urlsplit(loc)
    scheme = (u.scheme or "file").lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme, u = "file", urlsplit("file:" + loc)
    path = u.path
    parts = [p for p in path.split("/")]
    while parts and (_GLOB.search(parts[-1]) or parts[-1] == ""):
        parts.pop()
    if "{model}" not in location and "{table}" not in location and not single_table:
        parts.append(physical)
    path = "/".join(parts)
    canonical = _SCHEME_ALIASES.get(scheme, scheme)
    if canonical == "file":
        name = path if path.startswith("/") or not u.netloc else "/" + path
        return ("file" if not u.netloc else f"file://{u.netloc}"), name or "/"
    host = u.netloc
    if canonical in ("abfss", "wasbs", "az"):
        if canonical == "az":  # datacontract-cli: az://{account}.blob.core.windows.net/{container}/path
            canonical = "wasbs"
        if "@" not in host:  # {account}.dfs.core.windows.net/{container}/path → container@account
            segs = path.lstrip("/").split("/", 1)
            if segs and segs[0]:
                host = f"{segs[0]}@{host}"
                path = segs[1] if len(segs) > 1 else ""
    if canonical in ("s3", "gs", "abfss", "wasbs"):
        return f"{canonical}://{host}", path.strip("/")
    return f"{canonical}://{host}", path or "/"


_REDSHIFT_HOST = re.compile(r"^([^.]+)\.[^.]+\.([a-z0-9-]+)\.redshift(?:-serverless)?\.amazonaws\.com$", re.I)


def _snowflake_account(account: str) -> str:
    """As dbt-ol writes it: ``org-account`` as is; a locator gets its region and cloud (AWS us-west-1)."""
    parts = account.strip().lower().split(".")
    if "-" in parts[0] or len(parts) >= 3:
        return parts[0] if "-" in parts[0] else ".".join(parts)
    if len(parts) == 1:
        return f"{parts[0]}.us-west-1.aws"
    return f"{parts[0]}.{parts[1]}.aws"


def _identities(server: ServerRef, physical: str, single_table: bool) -> tuple[list[Identity], str | None]:
    kind = server.type.strip().lower()
    if kind in _SQL:
        scheme, levels, port = _SQL[kind]
        hp = _host_port(server, port)
        if hp is None:
            return [], "no host"
        parts, why = _levels(server, levels, physical, {"schema_name": _DEFAULT_SCHEMA.get(kind, "")})
        return ([(f"{scheme}://{hp}", ".".join(parts))] if parts else []), why
    if kind == "redshift":
        parts, why = _levels(server, ("database", "schema_name"), physical)
        if parts is None:
            return [], why
        name = ".".join(parts)
        out: list[Identity] = []
        hp = _host_port(server, 5439)
        if hp:
            out.append((f"redshift://{hp}", name))
            host = hp.rsplit(":", 1)[0]
            m = _REDSHIFT_HOST.match(host)
            if m:
                out.append((f"redshift://{m.group(1)}.{m.group(2)}:{hp.rsplit(':', 1)[1]}", name))
        elif server.account and (server.region or "").strip():
            out.append((f"redshift://{server.account}.{server.region}:{server.port or 5439}", name))
        return out, None if out else "no host (or cluster and region)"
    if kind == "snowflake":
        account = server.account
        if not account and server.host:
            account = server.host.split(".snowflakecomputing.com")[0]
        if not account:
            return [], "no account"
        parts, why = _levels(server, ("database", "schema_name"), physical)
        if parts is None:
            return [], why
        name = ".".join(p if p[:1] == '"' else p.upper() for p in parts)
        return [(f"snowflake://{_snowflake_account(account)}", name)], None
    if kind == "bigquery":
        parts, why = _levels(server, ("project", "dataset"), physical)
        return ([("bigquery", ".".join(parts))] if parts else []), why
    if kind == "athena":
        region = server.region
        if not region:
            return [], "no regionName"
        parts, why = _levels(server, ("catalog", "schema_name"), physical, {"catalog": "awsdatacatalog"})
        return ([(f"awsathena://athena.{region}.amazonaws.com", ".".join(parts))] if parts else []), why
    if kind == "glue":
        if not (server.region and server.account):
            return [], "no region and account"
        parts, why = _levels(server, ("database",), physical)
        if parts is None:
            return [], why
        return [(f"arn:aws:glue:{server.region}:{server.account}", f"table/{parts[0]}/{parts[1]}")], None
    if kind == "databricks":
        parts, why = _levels(server, ("catalog", "schema_name"), physical)
        if parts is None:
            return [], why
        host = (server.host or "").strip().lower()
        if not host:
            return [], "no host"
        host = urlsplit(host).netloc if "://" in host else host
        name = ".".join(parts)
        return [(f"databricks://{host}", name), (f"unitycatalog://{host}", name)], None
    if kind == "duckdb":
        if not server.database:
            return [], "no database (the .duckdb file)"
        stem = PurePosixPath(server.database).stem
        parts, why = _levels(
            server.model_copy(update={"database": stem}),
            ("database", "schema_name"),
            physical,
            {"schema_name": "main"},
        )
        return ([(f"duckdb://{server.database}", ".".join(parts))] if parts else []), why
    if kind == "kafka":
        hosts = [h.strip() for h in (server.host or "").split(",") if h.strip()]
        if not hosts:
            return [], "no host (bootstrap servers)"
        out = []
        for h in hosts:
            h = urlsplit(h).netloc if "://" in h else h
            if ":" not in h and server.port:
                h = f"{h}:{server.port}"
            out.append((f"kafka://{h.lower()}", physical))
        return out, None
    if kind == "iceberg":
        out = []
        ns = (server.namespace or "").strip()
        parts = split_name(physical)
        qualified = physical if len(parts) > 1 else (f"{ns}.{physical}" if ns else "")
        if not qualified:
            return [], "no namespace"
        if server.catalog_url:  # Spark's symlink of an Iceberg REST catalog table: (catalog uri, ns.table)
            out.append((server.catalog_url.strip().rstrip("/"), qualified))
        if server.warehouse and "://" in server.warehouse:  # the table's default location under it
            path = qualified.replace(".", "/")
            found = _location_identity(server.warehouse.rstrip("/") + "/{model}", path, True)
            if found:
                out.append(found)
        return out, None if out else "no catalogUrl or warehouse"
    if kind in ("s3", "gcs", "azure", "local", "sftp", "hdfs", "custom") or server.location:
        where = server.location or server.url
        if not where:
            return [], "no location"
        found = _location_identity(where, physical, single_table)
        return ([found] if found else []), None if found else f"location {where!r} is not a URL or path"
    return [], f"server type {server.type!r} has no OpenLineage naming rule floe knows"


def server_identities(server: ServerRef, physical: str, *, single_table: bool = True) -> tuple[Identity, ...]:
    """The (namespace, name) identifiers of table ``physical`` on ``server`` (empty: see :func:`server_problem`)."""
    return tuple(_identities(server, physical, single_table)[0])


def server_problem(server: ServerRef, physical: str, *, single_table: bool = True) -> str | None:
    """Why ``server`` gives no identifier for the table (``None`` when it gives some)."""
    found, why = _identities(server, physical, single_table)
    return None if found else (why or "no identifier")


def table_identities(
    servers: Iterable[ServerRef], physical: str, *, single_table: bool = True
) -> tuple[Identity, ...]:
    """Every server's identifiers of one table, in server order, without repeats (compared by key)."""
    out: dict[Identity, Identity] = {}
    for server in servers:
        for ident in server_identities(server, physical, single_table=single_table):
            out.setdefault(dataset_key(*ident), ident)
    return tuple(out.values())


_TABLE_PLATFORMS = frozenset(
    {*_SQL, "redshift", "snowflake", "bigquery", "athena", "databricks", "duckdb", "iceberg"}
)


def default_asset_id(servers: Sequence[ServerRef], physical: str) -> str:
    """The asset id of a table whose contract sets none (``floe.asset``): a qualified physical name as
    written; else the table's name on the contract's first database-like server that names it
    (``shop.public.orders`` for ``orders`` on postgres ``shop``/``public``), so the same table name in two
    schemas, databases or catalogs is two assets; else the physical name."""
    if len(split_name(physical)) > 1:
        return physical
    for server in servers:
        if server.type.strip().lower() in _TABLE_PLATFORMS:
            found = server_identities(server, physical)
            if found:
                return found[0][1]
    return physical


# --- what an unresolved dataset most likely is ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Suggestion:
    asset: str
    contract_id: str
    score: int
    hint: str


_SERVER_TYPE_OF_SCHEME = {
    "postgres": "postgres",
    "mysql": "mysql",
    "mssql": "sqlserver",
    "sqlserver": "synapse",
    "oracle": "oracle",
    "redshift": "redshift",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "trino": "trino",
    "presto": "presto",
    "hive": "hive",
    "databricks": "databricks",
    "duckdb": "duckdb",
    "kafka": "kafka",
    "s3": "s3",
    "gs": "s3",
    "abfss": "azure",
    "wasbs": "azure",
    "file": "local",
    "awsathena": "athena",
}


def _server_hint(namespace: str, name: str) -> str | None:
    """A ``servers`` entry that would give (namespace, name), written as YAML flow, if floe can tell."""
    scheme = _SCHEME_ALIASES.get(_scheme(namespace), _scheme(namespace))
    kind = _SERVER_TYPE_OF_SCHEME.get(scheme)
    if kind is None:
        return None
    parts = split_name(name)
    auth = namespace.split("://", 1)[1] if "://" in namespace else ""
    host, _, port = auth.partition(":")
    fields: list[str] = [f"type: {kind}"]
    if kind in ("postgres", "sqlserver", "redshift", "snowflake") and len(parts) == 3:
        if kind == "snowflake":
            fields.append(f"account: {auth}")
        else:
            fields += [f"host: {host}"] + ([f"port: {port}"] if port else [])
        fields += [f"database: {parts[0]}", f"schema: {parts[1]}"]
    elif kind in ("mysql", "hive") and len(parts) == 2:
        fields += [f"host: {host}"] + ([f"port: {port}"] if port else []) + [f"database: {parts[0]}"]
    elif kind in ("trino", "presto", "databricks") and len(parts) == 3:
        fields += [f"host: {host}"] + ([f"port: {port}"] if port else [])
        fields += [f"catalog: {parts[0]}", f"schema: {parts[1]}"]
    elif kind == "bigquery" and len(parts) == 3:
        fields += [f"project: {parts[0]}", f"dataset: {parts[1]}"]
    elif kind == "duckdb" and len(parts) == 3:
        fields += [f"database: {auth}", f"schema: {parts[1]}"]
    elif kind == "kafka":
        fields.append(f"host: {auth}")
    elif kind in ("s3", "azure", "local"):
        fields.append(f"location: {namespace.rstrip('/')}/{name.lstrip('/')}")
    else:
        return None
    return "{" + ", ".join(fields) + "}"


def suggest(namespace: str, name: str, assets: Iterable[MonitoredAsset], limit: int = 3) -> list[Suggestion]:
    """The contract tables an unresolved dataset most likely is, best first, with what to add to the contract.

    A table matches when the dataset name ends with its physical name (or name), compared part by part and
    case-insensitively; more matching parts, then the same platform among the contract's servers, rank first."""
    parts = [_fold(p) for p in split_name(name.strip())]
    last = PurePosixPath(name.strip().rstrip("/")).name.casefold()
    scheme = _SCHEME_ALIASES.get(_scheme(namespace), _scheme(namespace))
    found: list[Suggestion] = []
    for asset in assets:
        best = 0
        for candidate in {asset.physical_name or asset.table, asset.table, asset.asset_id}:
            cparts = [_fold(p) for p in split_name(candidate)]
            n = 0
            while n < min(len(parts), len(cparts)) and parts[-1 - n] == cparts[-1 - n]:
                n += 1
            if n == 0 and cparts[-1] == last:  # a path ending in the table name
                n = 1
            best = max(best, n)
        if best == 0:
            continue
        same_platform = any(
            _SQL.get(s.type.lower(), (s.type.lower(),))[0] == scheme or s.type.lower() == scheme
            for s in asset.servers
        )
        server = _server_hint(namespace, name)
        if asset.identities:
            hint = (
                f"its servers give {', '.join(f'{ns} + {n}' for ns, n in asset.identities[:3])}; "
                + (f"add the server {server} or " if server else "")
                + f"the alias '{namespace}/{name}' (floe customProperty 'aliases')"
            )
        else:
            hint = (f"add the server {server} to its contract, or " if server else "add ") + (
                f"the alias '{namespace}/{name}' (floe customProperty 'aliases')"
            )
        found.append(Suggestion(asset.asset_id, asset.contract_id, best * 2 + int(same_platform), hint))
    found.sort(key=lambda s: (-s.score, s.asset))
    return found[:limit]
