-- Analytics: counters rolled up from the edge's event streams by the workers (workers/rollup.py).
-- Counter tables leave room on each page (fillfactor) so the roll-up's updates stay HOT updates.
-- A subject is a link id, a bio page id or a bio block id. No foreign keys: bio tables come later,
-- and counters of a deleted subject are harmless (they are deleted with their team's data, or age out).

-- Last stream entry id applied per shard, written in the same transaction as the counters it covers,
-- so a batch replayed after a crash is recognised and skipped.
CREATE TABLE rollup_watermarks (
    shard       int PRIMARY KEY,
    last_id     text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Ids of applied stream entries (the edge's batch id, field "b"): an XADD retried after its reply
-- was lost leaves the same batch twice, possibly in two shards; the second copy is skipped.
-- Pruned by the worker after a day.
CREATE TABLE rollup_batches (
    batch_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_batches_applied_idx ON rollup_batches USING brin (applied_at);

-- Hourly buckets (UTC hour start). Bots are counted apart and never in clicks or views.
CREATE TABLE stats_hourly (
    subject_id  uuid NOT NULL,
    bucket      timestamptz NOT NULL,
    team_id     uuid,
    clicks      bigint NOT NULL DEFAULT 0,
    views       bigint NOT NULL DEFAULT 0,
    bots        bigint NOT NULL DEFAULT 0,
    visitors    bytea,                      -- distinct-visitor sketch (workers/hll.py)
    PRIMARY KEY (subject_id, bucket)
) WITH (fillfactor = 60);

-- Per-hour breakdowns of human clicks (links) and views (pages).
CREATE TABLE stats_breakdown_hourly (
    subject_id  uuid NOT NULL,
    bucket      timestamptz NOT NULL,
    dimension   text NOT NULL CHECK (dimension IN ('country', 'device', 'os', 'browser', 'referrer')),
    value       text NOT NULL,              -- '' when unknown
    clicks      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (subject_id, bucket, dimension, value)
) WITH (fillfactor = 60);

-- All-time totals per subject: what counters show without scanning the buckets.
CREATE TABLE stats_totals (
    subject_id  uuid PRIMARY KEY,
    team_id     uuid,
    clicks      bigint NOT NULL DEFAULT 0,
    views       bigint NOT NULL DEFAULT 0,
    bots        bigint NOT NULL DEFAULT 0,
    last_at     timestamptz
) WITH (fillfactor = 60);

-- Bio form submissions, filled from FORM events.
CREATE TABLE form_submissions (
    id          bigserial PRIMARY KEY,
    team_id     uuid,
    page_id     uuid NOT NULL,
    block_id    uuid,
    data        jsonb NOT NULL DEFAULT '{}',
    visitor     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX form_submissions_page_idx ON form_submissions (page_id, created_at DESC);
