"""The lineage graph keeps only what impact context needs: edges of runs that touch a monitored asset, at most
so many per job and dataset and in all, each forgotten a week (tick time) after it was last seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.contracts.loader import load_contract_text
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors import context
from floe_stream.processors.context import LINEAGE_REFRESH, LINEAGE_TTL, LineageGraph
from floe_stream.processors.enrich import EdgeGone, ViolationEnricher
from floe_stream.topics.lineage import LineageEdge
from floe_stream.topics.materialization import OpenLineageRunEvent

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def ol(job: str, inputs: list[str], outputs: list[str], event_type: str = "COMPLETE") -> OpenLineageRunEvent:
    def ds(x: str) -> dict[str, str]:
        ns, _, name = x.rpartition("/")
        return {"namespace": ns, "name": name}

    return OpenLineageRunEvent.model_validate(
        {"eventType": event_type, "eventTime": T0.isoformat(), "run": {"runId": "r"}, "job": {"namespace": "dbt", "name": job},
         "producer": "https://x", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
         "inputs": [ds(i) for i in inputs], "outputs": [ds(o) for o in outputs]}
    )  # fmt: skip


def enricher() -> ViolationEnricher:
    doc = (
        "apiVersion: v3.1.0\nkind: DataContract\nid: sales\nversion: 1.0.0\nstatus: active\nschema:\n"
        "  - name: orders\n    customProperties:\n      - property: floe\n        value: {asset: sales.orders}\n"
    )
    return ViolationEnricher(ContractRegistry([load_contract_text(doc, "sales.yaml")]))


def test_runs_that_touch_no_monitored_asset_leave_no_edge_and_share_nothing() -> None:
    e = enricher()
    for i in range(1_000):
        e.observe_openlineage(ol(f"job{i}", [f"pg/raw.t{i}"], [f"pg/tmp.t{i}"], event_type="START"))
    assert len(e.impact.lineage) == 0 and e.take_shared() == [] and e.lineage_ignored == 1_000
    e.observe_openlineage(ol("build_orders", ["pg/raw.orders"], ["pg/sales.orders"]))
    shared = e.take_shared()
    assert {(x.job, x.direction, x.dataset) for x in shared if isinstance(x, LineageEdge)} == {
        ("dbt/build_orders", "in", "pg/raw.orders"),
        ("dbt/build_orders", "out", "pg/sales.orders"),
    }


def test_edges_expire_a_ttl_after_last_seen_and_leave_the_shared_topic() -> None:
    e = enricher()
    e.on_tick(T0)
    e.observe_openlineage(ol("build_orders", ["pg/raw.orders"], ["pg/sales.orders"]))
    e.observe_openlineage(ol("report", ["pg/sales.orders"], ["pg/marts.revenue"]))
    e.take_shared()
    e.on_tick(T0 + LINEAGE_REFRESH)
    e.observe_openlineage(
        ol("report", ["pg/sales.orders"], ["pg/marts.revenue"])
    )  # still running: re-stamped
    assert len([x for x in e.take_shared() if isinstance(x, LineageEdge)]) == 2  # and shared again
    e.on_tick(T0 + LINEAGE_TTL + timedelta(seconds=1))
    gone = e.take_shared()
    assert sorted(g.key() for g in gone if isinstance(g, EdgeGone)) == [
        "edge:dbt/build_orders|in|pg/raw.orders",
        "edge:dbt/build_orders|out|pg/sales.orders",
    ]
    assert e.impact.lineage.nodes_of(["sales.orders"]) == {"pg/sales.orders"}  # the report's edge stays
    assert "dbt/build_orders" not in e.impact.lineage.job_outputs
    # another instance's tombstone removes it here too
    e.apply_shared(b"edge:dbt/report|in|pg/sales.orders", b"")
    assert e.impact.lineage.readers == {}


def test_the_graph_is_capped_per_node_and_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "MAX_EDGES_PER_NODE", 3)
    monkeypatch.setattr(context, "MAX_LINEAGE_EDGES", 5)
    g = LineageGraph()
    for i in range(10):  # a flood of invented jobs around one dataset: the known readers stay
        g.add_edge(f"job{i}", "pg/sales.orders", "in", T0)
    assert g.readers["pg/sales.orders"] == {"job0", "job1", "job2"} and g.refused == 7
    for i in range(4):
        g.add_edge("big", f"pg/out{i}", "out", T0 + timedelta(minutes=i))
    assert len(g) == 5 and ("job0", "in", "pg/sales.orders") not in g.seen  # the least recently seen went
    assert g.job_outputs["big"] == {"pg/out0", "pg/out1", "pg/out2"}  # the fourth is over the per-job bound
    assert g.refused == 8
