"""``floe contracts explain``: for each asset, every check floe will run with its resolved thresholds,
severities and overrides, and for every SLA property and quality rule of the contract, the check that
evaluates it or why it cannot be evaluated. Pure: contracts in, plain data out (the CLI prints it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from floe_stream.contracts.models import LoadedContract, MonitoredAsset
from floe_stream.processors.policy import CheckPolicy, resolve_policy

__all__ = ["explain_asset", "explain_contract", "render_text"]


def _fmt_s(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


ProbeOf = Callable[[MonitoredAsset], str]
"""Where an asset is pinged, as shown (the caller passes it: probes/ is a layer above processors/)."""


def explain_asset(
    asset: MonitoredAsset, base: CheckPolicy, warnings: tuple[str, ...] = (), probe_of: ProbeOf | None = None
) -> dict[str, Any]:
    policy, problem = resolve_policy(base, asset.floe)
    overrides = asset.floe.checks.values() if asset.floe.checks else {}
    severities = (
        f"INFO at {policy.info_at:.0%} of the SLA, WARNING at {policy.warning_at:.0%}, ERROR on breach"
    )
    checks: list[dict[str, Any]] = []
    if asset.freshness is not None:
        f = asset.freshness
        checks.append({
            "check": "freshness",
            "evaluates": f"{f.source_property} {_fmt_s(f.threshold_s)}",
            "measured": f"now (or arrival) minus the newest {f.element or 'update time'}; on every update and tick",
            "severity": severities,
        })  # fmt: skip
    if asset.columns:
        checks.append({
            "check": "schema_drift",
            "evaluates": f"{len(asset.columns)} declared column(s)",
            "measured": "observed columns of each update (Iceberg schema, OpenLineage schema facet, materialization)",
            "severity": "removed/type-changed column ERROR, added column WARNING",
        })  # fmt: skip
    if asset.quality_rules:
        checks.append({
            "check": "quality",
            "evaluates": [
                f"{r.name}: {r.metric} {r.operator} {r.threshold} {r.unit}"
                + (f" (severity {r.severity})" if r.severity else "")
                + (f" weight {r.weight:g}" if r.weight != 1 else "")
                for r in asset.quality_rules
            ],
            "measured": "producer-reported results re-judged by the rules; weighted score",
            "severity": f"score below {policy.quality_threshold:.0%} ERROR; each failed rule its own episode",
        })  # fmt: skip
    if asset.availability is not None:
        where = probe_of(asset) if probe_of is not None else "the probe target"
        checks.append({
            "check": "availability",
            "evaluates": f"availability {asset.availability.target_ratio:.3%}",
            "measured": (
                f"ping {where} every {_fmt_s(policy.ping_interval_s)} (timeout {_fmt_s(policy.ping_timeout_s)}); "
                f"ratio over {_fmt_s(policy.availability_window_s)}"
            ),
            "severity": severities.replace("SLA", "error budget"),
        })  # fmt: skip
    if asset.frequency is not None:
        fr = asset.frequency
        checks.append({
            "check": "frequency",
            "evaluates": f"cron '{fr.cron}' ({fr.timezone})" if fr.cron else f"every {_fmt_s(fr.interval_s or 0)}",
            "measured": "arrival of updates; a run without an update within 10 % of its period is missed",
            "severity": "missed run ERROR",
        })  # fmt: skip
    for toa in asset.time_of_availability:
        checks.append({
            "check": "time_of_availability",
            "evaluates": f"by {toa.deadline.isoformat('minutes')} {toa.timezone} daily",
            "measured": "an update between the previous deadline and this one (wall clock, DST-aware)",
            "severity": "missed deadline ERROR",
        })  # fmt: skip
    if asset.retention is not None:
        checks.append({
            "check": "retention",
            "evaluates": f"retention {_fmt_s(asset.retention.period_s)}",
            "measured": "the oldest row a producer reports (oldest_data_timestamp): rows younger than the period "
            "must still be there; no result for inputs that do not report it",
            "severity": "rows gone early ERROR",
        })  # fmt: skip
    if asset.lifecycle is not None:
        life = asset.lifecycle
        checks.append({
            "check": "lifecycle",
            "evaluates": ", ".join(
                f"{name} {at.date().isoformat()}"
                for name, at in (
                    ("generalAvailability", life.general_availability),
                    ("endOfSupport", life.end_of_support),
                    ("endOfLife", life.end_of_life),
                )
                if at is not None
            ),
            "measured": f"INFO notice {life.notice_days:g} days before, WARNING once past; to the consumers",
            "severity": "INFO / WARNING",
        })  # fmt: skip
    episode = (
        f"opens after {policy.fail_after} failing evaluation(s)"
        + (f" lasting {_fmt_s(policy.fail_for_s)}" if policy.fail_for_s else "")
        + f", resolves after {policy.resolve_after} pass(es); flapping above {policy.flap_threshold} flips in "
        f"{_fmt_s(policy.flap_window_s)}; CRITICAL above {policy.critical_count} breaches in "
        f"{_fmt_s(policy.critical_window_s)}"
    )
    table_marks = (f"({asset.table})", f"({asset.table}.")
    return {
        "asset": asset.asset_id,
        "contract": f"{asset.contract_id} {asset.contract_version}",
        "owner": asset.owner,
        "consumers": list(asset.consumers),
        "overrides": overrides,
        "override_problem": problem,
        "episodes": episode,
        "checks": checks,
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


def explain_contract(
    contract: LoadedContract, base: CheckPolicy, probe_of: ProbeOf | None = None
) -> dict[str, Any]:
    return {
        "contract": contract.contract_id,
        "source": contract.source,
        "assets": [explain_asset(a, base, contract.warnings, probe_of) for a in contract.assets],
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
