"""dbt: ``run_results.json`` (+ optional ``manifest.json``) → :class:`QualityResult` lists per model.

Pure functions over the parsed JSON (dbt 1.x artifact schemas v4–v6). A dbt test node becomes one
QualityResult: ``passed`` from its status (pass → True; fail/error → False; warn → False with severity
warning; skipped → omitted), ``observed_value`` = failures, ``column`` / ``metric`` from the manifest's test
metadata (``not_null`` → nullValues, ``unique`` → duplicateValues, ``accepted_values`` → invalidValues,
``relationships`` → invalidValues). Tests are attached to the model they test (manifest ``attached_node`` or
``depends_on``), keyed by the model's ``schema.alias`` (the model name without a manifest).

Typical use (an orchestrator's post-``dbt build`` step)::

    results = quality_by_model(json.load(open("target/run_results.json")), json.load(open("target/manifest.json")))
    for model, quality in results.items():
        client.publish_materialization(asset=model, quality=quality)
"""

from __future__ import annotations

import re
from typing import Any

from floe_stream.topics.materialization import QualityResult

_METRIC = {
    "not_null": "nullValues",
    "unique": "duplicateValues",
    "accepted_values": "invalidValues",
    "relationships": "invalidValues",
}
_SEVERITY = {"error": "error", "warn": "warning"}


def _model_key(node: dict[str, Any]) -> str:
    """The identifier we key a dbt model by: ``schema.alias`` (``database`` left out: contracts rarely use it)."""
    schema, alias = node.get("schema"), node.get("alias") or node.get("name")
    if schema and alias:
        return f"{schema}.{alias}"
    return str(node.get("unique_id") or alias)


def _tested_model(test: dict[str, Any] | None, unique_id: str, models: list[str]) -> str | None:
    if test:
        attached = test.get("attached_node")
        if attached:
            return str(attached)
        deps = [
            d
            for d in (test.get("depends_on") or {}).get("nodes", [])
            if str(d).startswith(("model.", "seed.", "snapshot."))
        ]
        if deps:
            return str(deps[-1] if test.get("test_metadata", {}).get("name") == "relationships" else deps[0])
    # Without a manifest: dbt names generic tests <test>_<model>_<column…>; attach to the model of this run whose
    # name appears first in it as a whole word, the longest on a tie (a heuristic: pass the manifest to be exact).
    parts = unique_id.split(".")
    test_name = parts[2] if len(parts) > 2 else unique_id
    best: tuple[int, int, str] | None = None
    for uid in models:
        name = uid.split(".")[-1]
        m = re.search(rf"(?:^|_)({re.escape(name)})(?:_|$)", test_name)
        if m and (best is None or (m.start(1), -len(name)) < best[:2]):
            best = (m.start(1), -len(name), uid)
    return best[2] if best else None


def quality_result(result: dict[str, Any], test: dict[str, Any] | None) -> QualityResult | None:
    """One dbt test result → QualityResult (None for skipped tests or non-test nodes)."""
    uid = str(result.get("unique_id", ""))
    if not uid.startswith("test."):
        return None
    status = str(result.get("status", "")).lower()
    if status in ("skipped", ""):
        return None
    meta = (test or {}).get("test_metadata") or {}
    kwargs = meta.get("kwargs") or {}
    parts = uid.split(".")
    name = str((test or {}).get("name") or (parts[2] if len(parts) > 2 else uid))
    failures = result.get("failures")
    severity = _SEVERITY.get(
        str(((test or {}).get("config") or {}).get("severity", "error")).lower(), "error"
    )
    if status == "warn":
        severity = "warning"
    column = kwargs.get("column_name") or (test or {}).get("column_name")
    return QualityResult(
        name=name,
        column=str(column) if column else None,
        metric=_METRIC.get(str(meta.get("name", ""))),
        passed=status == "pass",
        observed_value=float(failures) if isinstance(failures, int | float) else None,
        expected="0 failing rows",
        severity=severity,  # type: ignore[arg-type]
    )


def quality_by_model(
    run_results: dict[str, Any], manifest: dict[str, Any] | None = None
) -> dict[str, list[QualityResult]]:
    """Model key → its test results. Key: ``schema.alias`` from the manifest; without one the model name
    (tests attached by name, see :func:`_tested_model`); tests that match no model go under ``"unattached"``."""
    nodes: dict[str, Any] = (manifest or {}).get("nodes", {})
    models = [
        str(r.get("unique_id"))
        for r in run_results.get("results", [])
        if str(r.get("unique_id", "")).startswith(("model.", "seed.", "snapshot."))
    ]
    out: dict[str, list[QualityResult]] = {}
    for result in run_results.get("results", []):
        uid = str(result.get("unique_id", ""))
        test = nodes.get(uid)
        qr = quality_result(result, test)
        if qr is None:
            continue
        model_id = _tested_model(test, uid, models)
        if model_id is None:
            key = "unattached"
        else:
            model = nodes.get(model_id)
            key = _model_key(model) if model else model_id.split(".")[-1]
        out.setdefault(key, []).append(qr)
    return out


def models_built(
    run_results: dict[str, Any], manifest: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Model key → {status, rows_affected, completed_at} for models that ran successfully (materializations)."""
    nodes: dict[str, Any] = (manifest or {}).get("nodes", {})
    out: dict[str, dict[str, Any]] = {}
    for result in run_results.get("results", []):
        uid = str(result.get("unique_id", ""))
        if not uid.startswith(("model.", "seed.", "snapshot.")) or str(result.get("status")) != "success":
            continue
        node = nodes.get(uid)
        key = _model_key(node) if node else uid.split(".")[-1]
        timing = [t for t in result.get("timing", []) if t.get("name") == "execute"]
        rows = (result.get("adapter_response") or {}).get("rows_affected")
        out[key] = {
            "unique_id": uid,
            "rows_affected": rows if isinstance(rows, int) and rows >= 0 else None,
            "completed_at": timing[0].get("completed_at") if timing else None,
        }
    return out
