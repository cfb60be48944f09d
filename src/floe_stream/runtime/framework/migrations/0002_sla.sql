-- SLA history: current status, daily aggregates (kept forever), violation episodes, registered contracts,
-- maintenance bookkeeping. Maintained by the PostgreSQL sink (floe_stream.reporting.store); rebuildable from
-- the raw tables of 0001 with `floe db rebuild-aggregates`.

-- The latest result per (asset, check type). Its status holds until the next result (time-weighted SLA),
-- so the sink needs it to close that interval when the next result arrives.
CREATE TABLE IF NOT EXISTS sla_status (
    asset                text NOT NULL,
    check_type           text NOT NULL,
    contract_id          text,
    contract_version     text,
    last_result_id       text,
    last_status          text,
    last_severity        text,
    last_metric          double precision,
    last_evaluated_at    timestamptz,
    consecutive_failures int NOT NULL DEFAULT 0,
    last_pass_at         timestamptz,
    last_fail_at         timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset, check_type)
);

-- One row per (asset, check type, UTC day). Never pruned.
CREATE TABLE IF NOT EXISTS daily_aggregates (
    asset               text NOT NULL,
    check_type          text NOT NULL,
    day                 date NOT NULL,
    contract_id         text NOT NULL,
    checks_run          int NOT NULL DEFAULT 0,
    passed              int NOT NULL DEFAULT 0,
    failed              int NOT NULL DEFAULT 0,
    skipped             int NOT NULL DEFAULT 0,
    errored             int NOT NULL DEFAULT 0,
    within_s            double precision NOT NULL DEFAULT 0,  -- time the status was 'pass' (within SLA)
    breached_s          double precision NOT NULL DEFAULT 0,  -- time the status was 'fail'
    unknown_s           double precision NOT NULL DEFAULT 0,  -- time the status was 'skipped' or 'error'
    worst_severity_rank smallint,                             -- 0 info, 1 warning, 2 error, 3 critical
    metric_count        int NOT NULL DEFAULT 0,
    metric_sum          double precision NOT NULL DEFAULT 0,
    metric_min          double precision,
    metric_max          double precision,
    -- derived, for SQL/BI readers (Grafana …): same definitions as the reports
    minutes_within_sla  double precision GENERATED ALWAYS AS (within_s / 60.0) STORED,
    uptime_ratio        double precision GENERATED ALWAYS AS (
                            CASE WHEN within_s + breached_s > 0 THEN within_s / (within_s + breached_s) END) STORED,
    metric_avg          double precision GENERATED ALWAYS AS (
                            CASE WHEN metric_count > 0 THEN metric_sum / metric_count END) STORED,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset, check_type, day)
);
CREATE INDEX IF NOT EXISTS daily_aggregates_day ON daily_aggregates (day);

-- One row per violation episode (open → escalations → resolved). Kept with the aggregates.
CREATE TABLE IF NOT EXISTS violation_episodes (
    correlation_key  text NOT NULL,
    opened_at        timestamptz NOT NULL,
    asset            text NOT NULL,
    contract_id      text NOT NULL,
    violation_type   text NOT NULL,
    first_severity   text NOT NULL,
    severity         text NOT NULL,               -- highest severity reached
    severity_rank    smallint NOT NULL,
    escalations      int NOT NULL DEFAULT 0,
    message          text NOT NULL DEFAULT '',
    resolved_at      timestamptz,
    duration_s       double precision,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (correlation_key, opened_at)
);
CREATE INDEX IF NOT EXISTS violation_episodes_asset ON violation_episodes (asset, opened_at);
CREATE INDEX IF NOT EXISTS violation_episodes_opened ON violation_episodes (opened_at);

-- Contracts and versions seen (registered by `floe contracts register`, the sink, or replay).
CREATE TABLE IF NOT EXISTS registered_contracts (
    contract_id   text NOT NULL,
    version       text NOT NULL,
    name          text,
    status        text,
    source        text,
    registered_by text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contract_id, version)
);

-- Asset → contract, owner, team and the expected check intervals (coverage).
CREATE TABLE IF NOT EXISTS contract_assets (
    asset              text PRIMARY KEY,
    contract_id        text NOT NULL,
    contract_version   text NOT NULL,
    contract_name      text,
    owner              text,
    team               text,
    domain             text,
    expected_intervals jsonb NOT NULL DEFAULT '{}'::jsonb,   -- check type → seconds between expected checks
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS contract_assets_contract ON contract_assets (contract_id);

-- Once-a-day jobs (the automatic prune) and the raw-data horizon.
CREATE TABLE IF NOT EXISTS floe_maintenance (
    job         text PRIMARY KEY,
    last_run_on date,
    horizon     timestamptz,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
