-- Alert router state and delivery ledger (floe run sink alerts). Shared by every replica of the sink.

-- One row per violation/resolved event the router has seen: the decision is made once (under a
-- per-contract advisory lock) and reused on replays, so a replayed batch routes exactly as before.
CREATE TABLE IF NOT EXISTS alert_decisions (
    event_id        text PRIMARY KEY,
    status          text NOT NULL CHECK (status IN ('firing', 'resolved')),
    correlation_key text NOT NULL,
    contract_id     text NOT NULL,
    asset           text NOT NULL,
    violation_type  text NOT NULL,
    severity        text NOT NULL,
    notify          boolean NOT NULL,
    reason          text NOT NULL,
    channels        text[] NOT NULL DEFAULT '{}',
    replaces_severity text,
    decided_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_decisions_rate ON alert_decisions (contract_id, decided_at) WHERE notify AND status = 'firing';
CREATE INDEX IF NOT EXISTS alert_decisions_suppressed ON alert_decisions (decided_at) WHERE NOT notify;

-- Deduplication window per (asset, violation type).
CREATE TABLE IF NOT EXISTS alert_dedup (
    asset             text NOT NULL,
    violation_type    text NOT NULL,
    window_started_at timestamptz NOT NULL,
    severity          text NOT NULL,
    PRIMARY KEY (asset, violation_type)
);

-- Notified incidents: where the resolve must go; open ones are re-sent to Alertmanager while firing.
CREATE TABLE IF NOT EXISTS alert_incidents (
    correlation_key text PRIMARY KEY,
    status          text NOT NULL CHECK (status IN ('open', 'resolved')),
    severity        text NOT NULL,
    channels        text[] NOT NULL,
    violation_id    text NOT NULL,
    contract_id     text NOT NULL,
    asset           text NOT NULL,
    payload         jsonb NOT NULL,              -- the firing CloudEvent, for re-sends
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    resolved_at     timestamptz,
    last_resent_at  timestamptz
);
CREATE INDEX IF NOT EXISTS alert_incidents_open ON alert_incidents (updated_at) WHERE status = 'open';

-- Silences (`floe silence add|list|expire`): read by every decision, so every replica honours them.
CREATE TABLE IF NOT EXISTS alert_silences (
    silence_id  text PRIMARY KEY,
    contract    text,
    asset       text,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    comment     text NOT NULL DEFAULT '',
    created_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_at  timestamptz,
    CHECK (contract IS NOT NULL OR asset IS NOT NULL),
    CHECK (ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS alert_silences_active ON alert_silences (ends_at) WHERE expired_at IS NULL;

-- Delivery ledger: at most one successful delivery per (event, channel). A row is claimed 'sending'
-- before the call and marked 'delivered' after it; a 'sending' claim older than the channel's retry
-- budget belongs to a crashed sink and may be taken over (the receiver dedups by CloudEvent id,
-- PagerDuty dedup_key or Alertmanager labels).
CREATE TABLE IF NOT EXISTS alert_deliveries (
    event_id        text NOT NULL,
    channel         text NOT NULL,
    status          text NOT NULL CHECK (status IN ('sending', 'delivered', 'failed')),
    notification_id text NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    claimed_by      text NOT NULL,
    claimed_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    last_error      text,
    PRIMARY KEY (event_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_status ON alert_deliveries (status, claimed_at);
