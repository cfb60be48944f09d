-- The PostgreSQL sink rewrites the sla_status row and today's daily_aggregates row of every (asset, check type)
-- on every batch (bench/sink.py (a)). With free space left on each page, PostgreSQL updates those rows in place
-- (HOT: no new index entries, no index bloat) instead of writing a new tuple elsewhere and touching every index.
-- Figures are unchanged; only the physical layout of new pages. Existing pages adopt it after a VACUUM FULL.
ALTER TABLE sla_status SET (fillfactor = 50);
ALTER TABLE daily_aggregates SET (fillfactor = 50);
