-- Event version 2 (redirector/events.py): clicks carry the routing rule and split variant that
-- matched, the destination sent, its UTM tags, region, city and network class, and the team domain.
-- Each is a breakdown dimension of stats_breakdown_hourly (redirector.events.DIMENSIONS).
ALTER TABLE stats_breakdown_hourly DROP CONSTRAINT stats_breakdown_hourly_dimension_check;
ALTER TABLE stats_breakdown_hourly ADD CONSTRAINT stats_breakdown_hourly_dimension_check
    CHECK (dimension IN ('country', 'device', 'os', 'browser', 'referrer', 'source',
                         'rule', 'variant', 'destination', 'utm_source', 'utm_medium', 'utm_campaign',
                         'region', 'city', 'network', 'domain'));

-- Every URL a link has sent visitors to, under its destination id (redirector.events.destination_id:
-- 12 hex digits of the URL's SHA-256), so a breakdown by destination names URLs a link no longer
-- has. Written by the API whenever a link's url or routing rules are written; never pruned (a few
-- rows per link).
CREATE TABLE link_destinations (
    link_id         uuid NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    destination_id  text NOT NULL,
    url             text NOT NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (link_id, destination_id)
);

INSERT INTO link_destinations (link_id, destination_id, url)
SELECT l.id, left(encode(sha256(convert_to(u.url, 'UTF8')), 'hex'), 12), u.url
FROM links l
CROSS JOIN LATERAL (
    SELECT l.destination AS url  -- the url with its utm fields merged in: what the edge sends
    UNION SELECT l.url
    UNION SELECT r ->> 'url' FROM jsonb_array_elements(l.routing_rules) r WHERE r ? 'url'
    UNION SELECT v ->> 'url' FROM jsonb_array_elements(l.routing_rules) r,
                                  jsonb_array_elements(CASE WHEN r ? 'split' THEN r -> 'split' ELSE '[]' END) v
) u
WHERE u.url IS NOT NULL
ON CONFLICT DO NOTHING;
