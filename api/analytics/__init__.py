"""Team-wide analytics: ``GET /api/v1/analytics`` over the roll-up's summary tables."""
