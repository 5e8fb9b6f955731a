"""The retention cron: hourly roll-ups older than the team's plan keeps are deleted, in batches."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

from api.plans import PLANS
from api.serving.retention import RETENTION_DAYS
from workers.retention import prune_batches, prune_expired, prune_expired_stats

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
AGES = (29, 31, 200, 400, 1200)  # days


async def _team(pg: asyncpg.Pool, plan: str) -> uuid.UUID:
    team = uuid.uuid4()
    await pg.execute("INSERT INTO teams (id, name, plan) VALUES ($1, $2, $3)", team, f"t-{team.hex[:8]}", plan)
    return team


async def _rows(pg: asyncpg.Pool, team: uuid.UUID | None, *, with_totals: bool = True) -> tuple[uuid.UUID, uuid.UUID]:
    """A link's roll-ups at each of AGES (hourly, two breakdown values, an orphan visit on the
    team's domain), with buckets backdated from NOW."""
    subject = uuid.uuid4()
    if with_totals:
        await pg.execute("INSERT INTO stats_totals (subject_id, team_id, clicks) VALUES ($1, $2, 1)", subject, team)
    domain = uuid.uuid4()
    if team is not None:
        await pg.execute(
            "INSERT INTO domains (id, team_id, hostname, challenge_token) VALUES ($1, $2, $3, 'x')",
            domain,
            team,
            f"go-{domain.hex[:8]}.example",
        )
    for days in AGES:
        bucket = NOW - timedelta(days=days)
        await pg.execute(
            "INSERT INTO stats_hourly (subject_id, bucket, team_id, clicks) VALUES ($1, $2, $3, 1)",
            subject,
            bucket,
            team,
        )
        for value in ("US", "DE"):
            await pg.execute(
                "INSERT INTO stats_breakdown_hourly (subject_id, bucket, dimension, value, clicks) "
                "VALUES ($1, $2, 'country', $3, 1)",
                subject,
                bucket,
                value,
            )
        if team is not None:
            await pg.execute(
                "INSERT INTO domain_orphan_hourly (domain_id, hour, kind, visits) VALUES ($1, $2, 'root', 1)",
                domain,
                bucket,
            )
            await _summaries(pg, subject, team, bucket)
    return subject, domain


async def _summaries(pg: asyncpg.Pool, subject: uuid.UUID, team: uuid.UUID, bucket: datetime) -> None:
    """The team-wide summaries of the same click (rows without a team have none); the team rows
    carry the subject's id as their value, so two links of one team keep theirs apart."""
    day = bucket.astimezone(UTC).date()
    await pg.execute(
        "INSERT INTO stats_daily (subject_id, day, team_id, clicks) VALUES ($1, $2, $3, 1)", subject, day, team
    )
    await pg.execute(
        "INSERT INTO stats_team_hourly (team_id, dimension, bucket, value, clicks) VALUES ($1, 'country', $2, $3, 1)",
        team,
        bucket,
        str(subject),
    )
    await pg.execute(
        "INSERT INTO stats_team_daily (team_id, dimension, day, value, clicks) VALUES ($1, 'country', $2, $3, 1)",
        team,
        day,
        str(subject),
    )


async def _ages(pg: asyncpg.Pool, ids: tuple[uuid.UUID, uuid.UUID]) -> dict[str, list[int]]:
    subject, domain = ids

    def days(rows: list[asyncpg.Record]) -> list[int]:
        return sorted({(NOW - r[0]).days for r in rows})

    def dates(rows: list[asyncpg.Record]) -> list[int]:
        return sorted({(NOW.date() - r[0]).days for r in rows})

    return {
        "hourly": days(await pg.fetch("SELECT bucket FROM stats_hourly WHERE subject_id = $1", subject)),
        "breakdown": days(await pg.fetch("SELECT bucket FROM stats_breakdown_hourly WHERE subject_id = $1", subject)),
        "orphans": days(await pg.fetch("SELECT hour FROM domain_orphan_hourly WHERE domain_id = $1", domain)),
        "daily": dates(await pg.fetch("SELECT day FROM stats_daily WHERE subject_id = $1", subject)),
        "team_hourly": days(await pg.fetch("SELECT bucket FROM stats_team_hourly WHERE value = $1", str(subject))),
        "team_daily": dates(await pg.fetch("SELECT day FROM stats_team_daily WHERE value = $1", str(subject))),
    }


def _kept(*ages: int) -> dict[str, list[int]]:
    return dict.fromkeys(("hourly", "breakdown", "orphans", "daily", "team_hourly", "team_daily"), list(ages))


def test_the_worker_prunes_by_the_plans_numbers() -> None:
    assert {name: plan.retention_days for name, plan in PLANS.items()} == RETENTION_DAYS


async def test_exactly_the_expired_rows_go_in_bounded_batches_and_again_is_a_no_op(pg: asyncpg.Pool) -> None:
    free, pro, business = [await _team(pg, plan) for plan in ("free", "pro", "business")]
    free_link, pro_link, business_link = [await _rows(pg, team) for team in (free, pro, business)]
    no_team = await _rows(pg, None)  # events that carried no team: kept as long as any plan keeps
    no_totals = await _rows(pg, free, with_totals=False)  # its breakdowns find no team: the same
    totals_before = await pg.fetchval("SELECT count(*) FROM stats_totals")

    statements: list[tuple[str, int]] = [b async for b in prune_batches(pg, batch=2, now=NOW)]
    deleted = {table: sum(n for t, n in statements if t == table) for table in dict.fromkeys(t for t, _ in statements)}

    # free: 30 days; pro: 365; business: 1095.
    assert await _ages(pg, free_link) == _kept(29)
    assert await _ages(pg, pro_link) == _kept(29, 31, 200)
    assert await _ages(pg, business_link) == _kept(29, 31, 200, 400)
    assert (await _ages(pg, no_team))["hourly"] == [29, 31, 200, 400]
    assert (await _ages(pg, no_team))["breakdown"] == [29, 31, 200, 400]
    assert (await _ages(pg, no_team))["daily"] == []  # no team: never summarised team-wide
    no_totals_ages = await _ages(pg, no_totals)
    assert no_totals_ages["hourly"] == [29]  # its hourly rows carry the team
    assert no_totals_ages["breakdown"] == [29, 31, 200, 400]
    assert no_totals_ages["daily"] == no_totals_ages["team_hourly"] == no_totals_ages["team_daily"] == [29]
    assert await pg.fetchval("SELECT count(*) FROM stats_totals") == totals_before  # never pruned

    # Rows removed: hourly 4 + 2 + 1 + 1 + 4 (free, pro, business, no team, no totals); breakdowns two
    # per hour, but no-totals loses only its oldest; orphans 4 + 2 + 1 + 4 (the no-totals link's free domain).
    # The summaries (teams only): 4 + 2 + 1 + 4 each.
    assert deleted == {
        "stats_hourly": 12,
        "stats_breakdown_hourly": 18,
        "domain_orphan_hourly": 11,
        "stats_daily": 11,
        "stats_team_hourly": 11,
        "stats_team_daily": 11,
    }
    # Bounded: no statement deleted more than the batch, so it looped until a statement found less.
    assert max(n for _, n in statements) == 2
    for table, count in deleted.items():
        ns = [n for t, n in statements if t == table]
        assert ns == [2] * (count // 2) + [count % 2], table

    assert await prune_expired(pg, batch=2, now=NOW) == dict.fromkeys(deleted, 0)


async def test_a_daily_row_goes_once_its_whole_day_has_expired(pg: asyncpg.Pool) -> None:
    """The free plan's bound is NOW - 30 days, 2026-11-01T12:00Z: the day of 2026-11-01 still holds
    hours a window may show (their hourly rows stay too), 2026-10-31 does not."""
    team = await _team(pg, "free")
    for day in (date(2026, 10, 31), date(2026, 11, 1)):
        await pg.execute(
            "INSERT INTO stats_daily (subject_id, day, team_id, clicks) VALUES ($1, $2, $3, 1)", uuid.uuid4(), day, team
        )
        await pg.execute(
            "INSERT INTO stats_team_daily (team_id, dimension, day, value, clicks) VALUES ($1, 'os', $2, 'ios', 1)",
            team,
            day,
        )
    deleted = await prune_expired(pg, now=NOW)
    assert deleted["stats_daily"] == deleted["stats_team_daily"] == 1
    assert [r[0] for r in await pg.fetch("SELECT day FROM stats_daily")] == [date(2026, 11, 1)]
    assert [r[0] for r in await pg.fetch("SELECT day FROM stats_team_daily")] == [date(2026, 11, 1)]


async def test_the_cron_job_runs_on_the_worker_pool(pg: asyncpg.Pool) -> None:
    team = await _team(pg, "free")
    await pg.execute(
        "INSERT INTO stats_hourly (subject_id, bucket, team_id, clicks) "
        "VALUES ($1, now() - interval '31 days', $2, 1), ($1, now() - interval '29 days', $2, 1)",
        uuid.uuid4(),
        team,
    )
    assert (await prune_expired_stats({"pg": pg}))["stats_hourly"] == 1
    assert await pg.fetchval("SELECT count(*) FROM stats_hourly") == 1


async def test_the_worker_runs_it_hourly_under_a_prefixed_tagged_name(env: dict[str, str]) -> None:
    from workers.settings import Settings
    from workers.worker import create_worker

    worker = create_worker(Settings.from_env(env), burst=True)
    try:
        crons = {job.name: job for job in worker.cron_jobs}
        name = f"{env['KEY_PREFIX']}cron:prune_expired_stats{{arq:abort}}"  # see the purge cron's test
        assert crons[name].minute == 35 and crons[name].hour is None
        assert "prune_expired_stats" in worker.functions  # can be enqueued by hand too
    finally:
        await worker.close()
