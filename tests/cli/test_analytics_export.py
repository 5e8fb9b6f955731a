"""``linkedge analytics export``: the team's analytics rows as CSV, from the rolled-up counters."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from cli.main import main
from redirector.events import BATCH_ID_FIELD, CLICK, EVENT_FIELD, Event, encode_batch, encode_event
from redirector.keys import event_stream_key
from tests.api.support import roll_up
from tests.support import sql

DAY0 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
WINDOW = ["--from", f"{DAY0:%Y-%m-%d}", "--to", f"{DAY0 + timedelta(days=1):%Y-%m-%d}"]  # a date `to`: 2 days


@pytest.fixture
def run(env, tmp_path, capsys):
    cli_env = {**env, "LINKEDGE_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str) -> tuple[int, str, str]:
        status = main(list(args), env=cli_env)
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture
def clicks(run, env, database_url) -> dict[str, str]:
    """Team acme with three links and 6 + 3 + 1 clicks over two UTC days (and one of globex)."""
    assert run("team", "create", "acme", "--plan", "pro")[0] == 0
    assert run("team", "create", "globex")[0] == 0
    teams = {r["name"]: str(r["id"]) for r in sql(database_url, "SELECT id, name FROM teams")}
    links: dict[str, str] = {}
    for code, team in (("a", "acme"), ("b", "acme"), ("c", "acme"), ("g", "globex")):
        links[code] = str(uuid.uuid4())
        sql(
            database_url,
            "INSERT INTO links (id, team_id, code, url, destination) VALUES ($1, $2, $3, $4, $4)",
            links[code],
            teams[team],
            code,
            f"https://example.com/{code}",
        )
    at = int(DAY0.timestamp() * 1000)
    plan = [("a", 0, 4, "US"), ("a", 30, 2, "DE"), ("b", 5, 3, "US"), ("c", 40, 1, ""), ("g", 1, 9, "JP")]
    events = [
        Event(
            CLICK,
            at + hours * 3_600_000 + i,
            teams["globex" if code == "g" else "acme"],
            link_id=links[code],
            country=cc,
        )
        for code, hours, n, cc in plan
        for i in range(n)
    ]
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        client.xadd(
            event_stream_key(env["KEY_PREFIX"], 0),
            {EVENT_FIELD: encode_batch(encode_event(e) for e in events), BATCH_ID_FIELD: uuid.uuid4().hex},
        )
    finally:
        client.close()
    roll_up(env, settle=0)
    return links


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_writes_the_rows_as_csv_to_a_file(run, clicks, tmp_path):
    out = tmp_path / "links.csv"
    status, stdout, err = run("analytics", "export", "--team", "acme", *WINDOW, "-o", str(out))
    assert status == 0, err
    assert stdout == "" and f"exported 3 rows to {out}" in err
    assert "querying" not in err  # not a terminal: no progress bar unless asked
    got = rows(out.read_text())
    assert [(r["short_code"], r["clicks"]) for r in got] == [("a", "6"), ("b", "3"), ("c", "1")]
    assert list(got[0]) == ["value", "short_code", "domain", "short_url", "url", "clicks"]
    assert got[0]["value"] == clicks["a"] and got[0]["url"] == "https://example.com/a"


def test_export_to_stdout_by_country_and_day_with_a_progress_bar(run, clicks):
    status, stdout, err = run(
        "analytics", "export", "--team", "acme", *WINDOW, "--group-by", "country", "--interval", "day", "--progress"
    )
    assert status == 0, err
    assert [(r["start"][:10], r["value"], r["clicks"]) for r in rows(stdout)] == [
        (f"{DAY0:%Y-%m-%d}", "US", "7"),
        (f"{DAY0 + timedelta(days=1):%Y-%m-%d}", "DE", "2"),
        (f"{DAY0 + timedelta(days=1):%Y-%m-%d}", "(unknown)", "1"),
    ]
    assert "writing 3 rows" in err  # the bar, on stderr
    status, stdout, _ = run("analytics", "export", "--team", "acme", *WINDOW, "--group-by", "none")
    assert rows(stdout) == [{"clicks": "10"}]
    status, stdout, _ = run("analytics", "export", "--team", "globex", *WINDOW, "--group-by", "country")
    assert rows(stdout) == [{"value": "JP", "clicks": "9"}]


def test_export_limit_and_refusals(run, clicks):
    status, stdout, err = run("analytics", "export", "--team", "acme", *WINDOW, "--limit", "1")
    assert status == 0 and len(rows(stdout)) == 1 and "more values past --limit 1" in err
    status, _, err = run("analytics", "export", "--team", "acme", "--country", "US", "--group-by", "device")
    assert status == 1 and "rolled up per dimension" in err
    status, _, err = run("analytics", "export", "--team", "nobody")
    assert status == 1 and "no team named 'nobody'" in err
    status, _, err = run("analytics", "export", "--team", "acme", "--link-id", clicks["g"])
    assert status == 1 and "No link with id" in err  # another team's link
