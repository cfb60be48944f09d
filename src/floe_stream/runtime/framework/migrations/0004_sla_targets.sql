-- SLA targets stated by the contract per check type ({"availability": {"pct": 99.5, "source": "contract"}}):
-- the report judges each (asset, check type) against its own target, else the configured default.
ALTER TABLE contract_assets ADD COLUMN IF NOT EXISTS targets jsonb;
