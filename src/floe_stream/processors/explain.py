"""``floe contracts explain``: for each asset, every check floe will run with its resolved thresholds,
severities and overrides, and for every SLA property and quality rule of the contract, the check that
evaluates it or why it cannot be evaluated. Pure: contracts in, plain data out (the CLI prints it).

What each check judges is the check's own ``explain()`` (``processors/checks/``), in the order of
``processors/registry.py``; this module adds only what is common to an asset (episodes, SLA properties,
what is not evaluated)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from floe_stream.contracts.identity import server_problem
from floe_stream.contracts.models import LoadedContract, MonitoredAsset
from floe_stream.durations import format_duration
from floe_stream.processors.checks.base import Check, ExplainContext, ProbeOf
from floe_stream.processors.policy import CheckPolicy, resolve_policy
from floe_stream.processors.registry import CHECKS

__all__ = ["explain_asset", "explain_contract", "render_text"]


def explain_asset(
    asset: MonitoredAsset,
    base: CheckPolicy,
    warnings: tuple[str, ...] = (),
    probe_of: ProbeOf | None = None,
    *,
    checks: Sequence[Check] = CHECKS,
) -> dict[str, Any]:
    policy, problem = resolve_policy(base, asset.floe)
    overrides = asset.floe.checks.values() if asset.floe.checks else {}
    ex = ExplainContext(policy=policy, probe_of=probe_of)
    explained = [entry for check in checks for entry in check.explain(asset, ex)]
    episode = (
        f"opens after {policy.fail_after} failing evaluation(s)"
        + (f" lasting {format_duration(policy.fail_for_s, 'exact')}" if policy.fail_for_s else "")
        + f", resolves after {policy.resolve_after} pass(es); flapping above {policy.flap_threshold} flips in "
        f"{format_duration(policy.flap_window_s, 'exact')}; CRITICAL above {policy.critical_count} breaches in "
        f"{format_duration(policy.critical_window_s, 'exact')}"
    )
    table_marks = (f"({asset.table})", f"({asset.table}.")
    return {
        "asset": asset.asset_id,
        "answers_to": answers_to(asset),
        "contract": f"{asset.contract_id} {asset.contract_version}",
        "owner": asset.owner,
        "consumers": list(asset.consumers),
        "overrides": overrides,
        "override_problem": problem,
        "episodes": episode,
        "checks": explained,
        "sla_properties": [
            {
                "property": n.property,
                "value": n.value,
                "evaluated_by": n.evaluated_by,
                "detail": n.detail,
            }
            for n in asset.sla_notes
        ],
        "not_evaluated": [w for w in warnings if any(m in w for m in table_marks)],
    }


def answers_to(asset: MonitoredAsset, single_table: bool = True) -> dict[str, Any]:
    """The identifiers events resolve to ``asset`` by: its OpenLineage datasets (exact, from the contract's
    servers), then names (asset id, aliases, the datasets' names alone: case-insensitive, refused when another
    asset has the same one), and the servers that give no dataset, with why."""
    physical = asset.physical_name or asset.table
    return {
        "datasets": [f"{ns} + {name}" for ns, name in asset.identities],
        "names": sorted(
            {asset.asset_id, *asset.aliases, *(name for _, name in asset.identities)}, key=str.lower
        ),
        "servers_without_dataset": [
            f"{s.server} ({s.type}): {why}"
            for s in asset.servers
            if (why := server_problem(s, physical, single_table=single_table)) is not None
        ],
        "run_failures": "a FAIL or ABORT run event naming it as an output is not new data: it is kept as "
        "'last run failed' and shown on its next violation; the assertions such an event carries are judged",
    }


def explain_contract(
    contract: LoadedContract,
    base: CheckPolicy,
    probe_of: ProbeOf | None = None,
    *,
    checks: Sequence[Check] = CHECKS,
) -> dict[str, Any]:
    return {
        "contract": contract.contract_id,
        "source": contract.source,
        "assets": [
            explain_asset(a, base, contract.warnings, probe_of, checks=checks) for a in contract.assets
        ],
        "notes": [*contract.notes, *(w for w in contract.warnings if "slaProperties" in w)],
    }


def render_text(explained: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for c in explained:
        lines.append(f"contract {c['contract']} ({c['source']})")
        for a in c["assets"]:
            lines.append(
                f"  asset {a['asset']}  owner {a['owner'] or '-'}  consumers {', '.join(a['consumers']) or '-'}"
            )
            ids = a["answers_to"]
            for d in ids["datasets"]:
                lines.append(f"    answers to dataset {d}")
            lines.append(
                f"    answers to names {', '.join(ids['names'])} (alone: only while no other asset has one)"
            )
            for w in ids["servers_without_dataset"]:
                lines.append(f"    no dataset from server {w}")
            lines.append(f"    run failures: {ids['run_failures']}")
            if a["overrides"]:
                lines.append(f"    overrides (floe.checks): {a['overrides']}")
            if a["override_problem"]:
                lines.append(f"    override problem: {a['override_problem']}")
            lines.append(f"    episodes: {a['episodes']}")
            if not a["checks"]:
                lines.append("    checks: none (no SLA, columns or quality rules floe can evaluate)")
            for chk in a["checks"]:
                what = chk["evaluates"]
                lines.append(f"    check {chk['check']}: {what if isinstance(what, str) else ''}")
                if not isinstance(what, str):
                    lines.extend(f"      - {w}" for w in what)
                lines.append(f"      measured: {chk['measured']}")
                lines.append(f"      severity: {chk['severity']}")
            for p in a["sla_properties"]:
                by = f"→ {p['evaluated_by']}: " if p["evaluated_by"] else "→ "
                lines.append(f"    sla {p['property']} = {p['value']} {by}{p['detail']}")
            for w in a["not_evaluated"]:
                lines.append(f"    not evaluated: {w}")
        for note in c["notes"]:
            lines.append(f"  note: {note}")
    return "\n".join(lines)
