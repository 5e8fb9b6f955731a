-- The source of a click (direct, qr, bio) is rolled up as a breakdown dimension too
-- (redirector.events.DIMENSIONS): QR codes encode the short URL with ?qr=1, which the edge strips.
ALTER TABLE stats_breakdown_hourly DROP CONSTRAINT stats_breakdown_hourly_dimension_check;
ALTER TABLE stats_breakdown_hourly ADD CONSTRAINT stats_breakdown_hourly_dimension_check
    CHECK (dimension IN ('country', 'device', 'os', 'browser', 'referrer', 'source'));
