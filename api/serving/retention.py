"""How many days of hourly analytics each plan keeps, defined here and nowhere else.

``api.plans`` builds each plan's ``retention_days`` from :data:`RETENTION_DAYS`; the worker's
retention cron (``workers.retention``) prunes by the same numbers. It lives in the read model
because both sides may import it: the workers reach no other part of ``api``.
"""

from __future__ import annotations

RETENTION_DAYS: dict[str, int] = {"free": 30, "pro": 365, "business": 1095}
