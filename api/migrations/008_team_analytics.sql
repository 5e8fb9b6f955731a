-- Summary tables for the team-wide analytics (GET /api/v1/analytics, api/analytics/), written by the
-- roll-up in the same transaction as the hourly counters (workers/queries.py) and pruned by the same
-- retention cron (workers/retention.py). A team's 30 days hold millions of per-subject hourly rows;
-- these hold one row per subject and UTC day, and per team, dimension value and hour (or day), so a
-- window sums whole UTC days from the daily tables and only its edge hours from the hourly ones.

-- Per subject (link, bio page or block) and UTC day: stats_hourly summed by day.
CREATE TABLE stats_daily (
    subject_id  uuid NOT NULL,
    day         date NOT NULL,              -- the UTC day
    team_id     uuid NOT NULL,
    clicks      bigint NOT NULL DEFAULT 0,
    views       bigint NOT NULL DEFAULT 0,
    bots        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (subject_id, day)
) WITH (fillfactor = 70);
CREATE INDEX stats_daily_team_day_idx ON stats_daily (team_id, day);
CREATE INDEX stats_daily_day_brin ON stats_daily USING brin (day);

-- The edge hours of a team's window, read from stats_hourly by team. Neither column ever changes,
-- so the roll-up's counter updates stay HOT.
CREATE INDEX stats_hourly_team_bucket_idx ON stats_hourly (team_id, bucket) WHERE team_id IS NOT NULL;

-- Per team, breakdown dimension value and hour / UTC day: stats_breakdown_hourly summed over the
-- team's subjects. clicks are links' human clicks, views bio pages' human views.
CREATE TABLE stats_team_hourly (
    team_id     uuid NOT NULL,
    dimension   text NOT NULL,
    bucket      timestamptz NOT NULL,
    value       text NOT NULL,              -- '' when unknown (the dense dimensions only)
    clicks      bigint NOT NULL DEFAULT 0,
    views       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, dimension, bucket, value)
) WITH (fillfactor = 70);
CREATE INDEX stats_team_hourly_bucket_brin ON stats_team_hourly USING brin (bucket);

CREATE TABLE stats_team_daily (
    team_id     uuid NOT NULL,
    dimension   text NOT NULL,
    day         date NOT NULL,              -- the UTC day
    value       text NOT NULL,
    clicks      bigint NOT NULL DEFAULT 0,
    views       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, dimension, day, value)
) WITH (fillfactor = 70);
CREATE INDEX stats_team_daily_day_brin ON stats_team_daily USING brin (day);

-- The dimensions of stats_breakdown_hourly (redirector.events.DIMENSIONS; a test in tests/workers
-- holds all three CHECKs to it).
ALTER TABLE stats_team_hourly ADD CONSTRAINT stats_team_hourly_dimension_check
    CHECK (dimension IN ('country', 'device', 'os', 'browser', 'referrer', 'source',
                         'rule', 'variant', 'destination', 'utm_source', 'utm_medium', 'utm_campaign',
                         'region', 'city', 'network', 'domain'));
ALTER TABLE stats_team_daily ADD CONSTRAINT stats_team_daily_dimension_check
    CHECK (dimension IN ('country', 'device', 'os', 'browser', 'referrer', 'source',
                         'rule', 'variant', 'destination', 'utm_source', 'utm_medium', 'utm_campaign',
                         'region', 'city', 'network', 'domain'));

-- Backfill from the hourly tables. Rows without a team count nowhere team-wide. The team of a
-- breakdown row is its subject's (stats_totals, as the retention cron has it); a subject with views
-- is a bio page (links have none), so its breakdown rows are views. Rows go in day order, as the
-- roll-up appends them, so a window's days are on few pages.
INSERT INTO stats_daily (subject_id, day, team_id, clicks, views, bots)
SELECT subject_id, (bucket AT TIME ZONE 'UTC')::date, (array_agg(team_id ORDER BY bucket))[1],
       sum(clicks), sum(views), sum(bots)
FROM stats_hourly
WHERE team_id IS NOT NULL
GROUP BY 1, 2
ORDER BY 2, 1;

INSERT INTO stats_team_hourly (team_id, dimension, bucket, value, clicks, views)
SELECT t.team_id, b.dimension, b.bucket, b.value,
       coalesce(sum(b.clicks) FILTER (WHERE t.views = 0), 0), coalesce(sum(b.clicks) FILTER (WHERE t.views > 0), 0)
FROM stats_breakdown_hourly b
JOIN stats_totals t ON t.subject_id = b.subject_id AND t.team_id IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY 3, 1, 2, 4;

INSERT INTO stats_team_daily (team_id, dimension, day, value, clicks, views)
SELECT team_id, dimension, (bucket AT TIME ZONE 'UTC')::date, value, sum(clicks), sum(views)
FROM stats_team_hourly
GROUP BY 1, 2, 3, 4
ORDER BY 3, 1, 2, 4;
