-- Raw history written by the PostgreSQL sink. Idempotent by event id (replays insert nothing twice).
CREATE TABLE IF NOT EXISTS check_results (
    result_id        text PRIMARY KEY,
    asset            text NOT NULL,
    contract_id      text NOT NULL,
    contract_version text NOT NULL,
    check_type       text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pass', 'fail', 'skipped', 'error')),
    severity         text,
    evaluated_at     timestamptz NOT NULL,
    trigger          text NOT NULL,
    metric           double precision,
    sla_consumed     double precision,
    expected         text,
    actual           text,
    message          text NOT NULL DEFAULT '',
    source_event_id  text,
    inserted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS check_results_asset_type_time ON check_results (asset, check_type, evaluated_at);
CREATE INDEX IF NOT EXISTS check_results_time ON check_results (evaluated_at);

CREATE TABLE IF NOT EXISTS violation_events (
    event_id           text PRIMARY KEY,          -- the CloudEvent id
    event_type         text NOT NULL,             -- floe.contract.violation | floe.contract.violation.resolved
    correlation_key    text NOT NULL,
    asset              text NOT NULL,
    contract_id        text NOT NULL,
    contract_name      text NOT NULL,
    contract_version   text NOT NULL,
    violation_type     text NOT NULL,
    drift_kind         text,
    severity           text NOT NULL,
    message            text NOT NULL,
    element            text,
    expected_value     text,
    actual_value       text,
    occurred_at        timestamptz NOT NULL,      -- detected_at, or resolved_at for a resolved event
    episode_started_at timestamptz NOT NULL,
    open_duration_s    double precision,
    payload            jsonb NOT NULL,
    inserted_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS violation_events_asset_time ON violation_events (asset, occurred_at);
CREATE INDEX IF NOT EXISTS violation_events_correlation ON violation_events (correlation_key, occurred_at);
