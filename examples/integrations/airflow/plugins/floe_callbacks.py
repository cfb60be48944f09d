"""floe-stream task callbacks for Airflow (docs/integrations/airflow.md; run by tests/integration/test_airflow.py).

Put this file in the plugins folder (or anywhere on the workers' PYTHONPATH); FLOE_KAFKA__BOOTSTRAP_SERVERS and
FLOE_KAFKA__TOPIC_PREFIX in the workers' environment. The module-level client is created on first use and
closed at interpreter exit (FloeClient registers that itself).
"""

from __future__ import annotations

from typing import Any

from floe_stream.client import FloeClient

_floe: FloeClient | None = None


def floe() -> FloeClient:
    global _floe
    if _floe is None:
        _floe = FloeClient.from_env()  # FLOE_KAFKA__* of the worker
    return _floe


def floe_materialized(asset: str, **fields: Any):  # type: ignore[no-untyped-def]
    """on_success_callback factory: tell floe-stream that `asset` was materialized by this task."""

    def callback(context: Any) -> None:
        ti = context["task_instance"]
        rows = ti.xcom_pull(task_ids=ti.task_id)  # the task's return value: a count, or the rows returned
        floe().publish_materialization(
            asset,
            run_id=f"{ti.dag_id}.{ti.task_id}.{context['run_id']}.{ti.try_number}",
            job=f"{ti.dag_id}.{ti.task_id}",
            data_timestamp=context.get("data_interval_end"),  # aware pendulum datetime
            row_count=rows if isinstance(rows, int) else len(rows) if isinstance(rows, list) else None,
            producer="airflow",
            **fields,
        )

    return callback
