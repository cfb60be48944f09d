"""The watcher through pyiceberg's real REST catalog client (the Polaris/Nessie/Lakekeeper path).

No REST catalog server is installable here, so the test serves the read side of the Iceberg REST protocol
(`GET /v1/config`, list namespaces, list tables, load table) from a pyiceberg SQL catalog over loopback HTTP.
The watcher sees only the REST catalog: no metadata pointers, so every poll loads every watched table —
and still publishes each snapshot exactly once, schema-only changes included, across a restart.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.types import StringType

from floe_stream.runtime.iceberg_watcher import IcebergWatcher
from floe_stream.settings import IcebergSourceSettings, Settings, SourcesSettings
from floe_stream.topics import CatalogCommitEvent, TopicKey
from tests.conftest import wait_for
from tests.integration.helpers import Running, read_all
from tests.integration.test_iceberg_watcher import append, create_orders, make_catalog

pytestmark = [pytest.mark.kafka]

SEP = "\x1f"  # the REST spec's namespace level separator in paths


class RestShim(BaseHTTPRequestHandler):
    catalog: SqlCatalog
    requests: list[str]

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        self.requests.append(url.path)
        if parts == ["v1", "config"]:
            return self._json({"defaults": {}, "overrides": {}})
        if parts == ["v1", "namespaces"]:
            parent = parse_qs(url.query).get("parent", [""])[0]
            ns = self.catalog.list_namespaces(tuple(parent.split(SEP)) if parent else ())
            return self._json({"namespaces": [list(n) for n in ns]})
        if len(parts) == 4 and parts[:2] == ["v1", "namespaces"] and parts[3] == "tables":
            ids = self.catalog.list_tables(tuple(parts[2].split(SEP)))
            return self._json({"identifiers": [{"namespace": list(i[:-1]), "name": i[-1]} for i in ids]})
        if len(parts) == 5 and parts[:2] == ["v1", "namespaces"] and parts[3] == "tables":
            t = self.catalog.load_table((*parts[2].split(SEP), parts[4]))
            metadata = json.loads(Path(t.metadata_location.removeprefix("file://")).read_text())
            return self._json({"metadata-location": t.metadata_location, "metadata": metadata, "config": {}})
        return self._json(
            {"error": {"message": "not found", "type": "NoSuchTableException", "code": 404}}, 404
        )


@pytest.fixture
def rest(tmp_path: Path) -> Iterator[tuple[SqlCatalog, str, list[str]]]:
    cat, _ = make_catalog(tmp_path)
    seen: list[str] = []
    handler = type("Handler", (RestShim,), {"catalog": cat, "requests": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield cat, f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


async def commits(s: Settings) -> list[CatalogCommitEvent]:
    return [
        CatalogCommitEvent.model_validate_json(r.value) for r in await read_all(s, TopicKey.CATALOG_COMMITS)
    ]


async def test_watcher_over_a_rest_catalog(
    settings: Settings, rest: tuple[SqlCatalog, str, list[str]]
) -> None:
    cat, uri, seen = rest
    table = create_orders(cat)
    cat.create_namespace("shop.eu")  # nested namespaces are discovered too
    eu = cat.create_table("shop.eu.orders", schema=table.schema())
    for t in (table, eu):
        await asyncio.to_thread(append, t)
    iceberg = IcebergSourceSettings(
        catalog_name="polaris", properties={"type": "rest", "uri": uri}, poll_interval_s=0.2
    )
    s = settings.model_copy(update={"sources": SourcesSettings(iceberg=iceberg)})
    watcher = IcebergWatcher(s)
    async with Running(watcher):
        first = await wait_for(lambda: _n(s, 2), timeout=30)
        assert {c.table for c in first} == {"shop.orders", "shop.eu.orders"}
        assert {c.catalog for c in first} == {"polaris"}

        def evolve() -> None:
            with table.update_schema() as u:
                u.add_column("channel", StringType())

        await asyncio.to_thread(evolve)
        after = await wait_for(lambda: _n(s, 3), timeout=30)
        polls = watcher.polls
        await wait_for(lambda: watcher.polls >= polls + 3, timeout=30)
        assert watcher.last_stats.loaded == 2  # REST: every watched table is loaded every poll …
    assert len(await commits(s)) == 3  # … yet each snapshot / schema change was published once
    (change,) = [c for c in after if c.summary.get("floe.trigger") == "schema-change"]
    assert change.table == "shop.orders"
    assert [f.name for f in change.table_schema.fields][-1] == "channel"
    assert any(p.startswith("/v1/namespaces/shop/tables/orders") for p in seen)

    again = IcebergWatcher(s)  # a restart over REST restores from the topic and publishes nothing old
    async with Running(again):
        await wait_for(lambda: again.polls >= 2, timeout=30)
    assert len(await commits(s)) == 3


async def _n(s: Settings, n: int) -> list[CatalogCommitEvent] | None:
    got = await commits(s)
    return got if len(got) >= n else None
