-- Analytics retention (workers/retention.py): an hourly cron deletes roll-up rows older than
-- their team's plan keeps. Its batches look rows up by hour; BRIN indexes are a few pages each,
-- fit tables written roughly in time order, and leave the roll-up's updates HOT.
-- (api_keys.last_used_at, written by api/auth.py, exists since 001_core.sql.)

CREATE INDEX stats_hourly_bucket_brin ON stats_hourly USING brin (bucket);
CREATE INDEX stats_breakdown_hourly_bucket_brin ON stats_breakdown_hourly USING brin (bucket);
CREATE INDEX domain_orphan_hourly_hour_brin ON domain_orphan_hourly USING brin (hour);
