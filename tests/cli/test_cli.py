"""The admin CLI against the test database: what it prints, what it stores, how it fails."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest

from api.auth import ABILITIES, authenticate
from api.errors import Unauthorized
from cli.main import main
from devstack.services import with_database
from kit.postgres import create_pool
from tests.redirector.edge_support import free_port
from tests.support import sql


@pytest.fixture
def cli_env(env, tmp_path) -> dict[str, str]:
    # Its own data folder: the CLI must not touch .data/dev while tests run.
    return {**env, "LINKEDGE_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def run(cli_env, capsys):
    """Run ``linkedge ARGS`` in-process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main(list(args), env=cli_env)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_migrate_is_idempotent(run, database_url):
    # The session database is migrated already; a run against it applies nothing and says so.
    status, out, _ = run("migrate")
    assert status == 0
    assert out.strip() == "database is up to date"
    assert run("migrate")[:2] == (0, "database is up to date\n")
    versions = [r["version"] for r in sql(database_url, "SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions[0] == "001_core" and len(versions) == len(set(versions))


def test_migrate_applies_every_version_to_an_empty_database(run, cli_env, services):
    name = f"{cli_env['KEY_PREFIX'].rstrip(':')}_cli_migrate"
    admin = services.database_url
    sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(admin, f'CREATE DATABASE "{name}"')
    try:
        cli_env["DATABASE_URL"] = with_database(admin, name)
        status, out, _ = run("migrate")
        assert status == 0 and out.startswith("applied 001_core")
        assert run("migrate")[1] == "database is up to date\n"
    finally:
        sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_team_create_and_plan(run, database_url):
    status, out, _ = run("team", "create", "acme", "--plan", "pro")
    assert status == 0 and "acme" in out
    assert run("team", "plan", "acme", "business")[0] == 0
    rows = sql(database_url, "SELECT name, plan FROM teams")
    assert [(r["name"], r["plan"]) for r in rows] == [("acme", "business")]
    # Default plan is free.
    assert run("team", "create", "solo")[0] == 0
    assert sql(database_url, "SELECT plan FROM teams WHERE name = 'solo'")[0]["plan"] == "free"


async def _authenticates(database_url: str, key: str) -> Any:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        return await authenticate(pool, f"Bearer {key}")
    finally:
        await pool.close()


def test_key_create_prints_a_working_key_and_stores_only_its_hash(run, database_url):
    run("team", "create", "acme", "--plan", "pro")
    status, out, err = run("key", "create", "--team", "acme", "--abilities", "links:read,links:write", "--name", "ci")
    assert status == 0 and "shown only this once" in err
    key = out.strip()
    assert key.startswith("lk_") and "\n" not in key
    prefix, secret = key.removeprefix("lk_").split(".")
    assert len(prefix) == 8

    principal = asyncio.run(_authenticates(database_url, key))
    assert principal.team_name == "acme"
    assert principal.abilities == {"links:read", "links:write"}

    [row] = sql(database_url, "SELECT * FROM api_keys")
    assert row["prefix"] == prefix and row["name"] == "ci"
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    stored = " ".join(str(v) for v in row.values())
    assert secret not in stored and key not in stored


def test_key_create_with_all_abilities(run, database_url):
    run("team", "create", "acme")
    key = run("key", "create", "--team", "acme", "--abilities", "all")[1].strip()
    assert asyncio.run(_authenticates(database_url, key)).abilities == set(ABILITIES)


def test_key_revoke(run, database_url):
    run("team", "create", "acme")
    key = run("key", "create", "--team", "acme", "--abilities", "all")[1].strip()
    prefix = key.split(".")[0]
    status, out, _ = run("key", "revoke", prefix)
    assert status == 0 and "revoked" in out
    with pytest.raises(Unauthorized):
        asyncio.run(_authenticates(database_url, key))
    # Revoking again: nothing active with that prefix.
    status, _, err = run("key", "revoke", prefix)
    assert status == 1 and "no active key" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("team", "create", "x", "--plan", "gold"), "unknown plan 'gold'"),
        (("team", "plan", "nobody", "pro"), "no team named 'nobody'"),
        (("team", "plan", "acme", "gold"), "unknown plan 'gold'"),
        (("team", "create", "acme"), "already exists"),
        (("key", "create", "--team", "nobody", "--abilities", "all"), "no team named 'nobody'"),
        (("key", "create", "--team", "acme", "--abilities", "links:read,root"), "unknown abilities root"),
        (("key", "create", "--team", "acme", "--abilities", ""), "unknown abilities"),
        (("key", "revoke", "lk_zzzzzzzz"), "no active key"),
        (("links", "import", "/nonexistent/links.csv"), "cannot read /nonexistent/links.csv"),
        (("links", "import", "links.txt"), "--format"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(run, args, message):
    run("team", "create", "acme")
    status, out, err = run(*args)
    assert status == 1
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "variable", "what"),
    [
        (("migrate",), "DATABASE_URL", "PostgreSQL"),
        (("key", "create", "--team", "acme", "--abilities", "all"), "DATABASE_URL", "PostgreSQL"),
        (("cache", "rebuild"), "DATABASE_URL", "PostgreSQL"),
        (("cache", "rebuild"), "REDIS_URL", "Redis"),
    ],
)
def test_a_given_url_that_does_not_answer_fails_with_one_line_and_starts_nothing(
    run, cli_env, tmp_path, args, variable, what
):
    port = free_port()  # nothing listens on it
    url = f"postgresql://postgres:hunter2@127.0.0.1:{port}/linkedge"
    if variable == "REDIS_URL":
        url = f"redis://:hunter2@127.0.0.1:{port}/0"
    cli_env[variable] = url
    status, out, err = run(*args)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{what} is not answering at" in err and f"127.0.0.1:{port}" in err
    assert "hunter2" not in err and ":***@" in err  # the password is redacted
    # No fallback: nothing was started under the data folder, nothing listens on the port.
    assert not (tmp_path / "data").exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_usage_errors_exit_2(run):
    with pytest.raises(SystemExit) as exc:
        run("team", "create")
    assert exc.value.code == 2


def test_console_script_as_a_subprocess(cli_env, database_url):
    # The installed entry point, exit codes and streams as a shell sees them.
    def linkedge(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args]
        return subprocess.run(cmd, env={**os.environ, **cli_env}, capture_output=True, text=True, timeout=30)

    assert linkedge("team", "create", "acme", "--plan", "pro").returncode == 0
    done = linkedge("key", "create", "--team", "acme", "--abilities", "all")
    assert done.returncode == 0 and done.stdout.strip().startswith("lk_")
    bad = linkedge("team", "plan", "acme", "platinum")
    assert (
        bad.returncode == 1 and bad.stderr.startswith("linkedge: error: unknown plan") and "Traceback" not in bad.stderr
    )


def _cached_codes(redis_url: str, prefix: str) -> set[str]:
    import redis

    from redirector.keys import link_key

    client = redis.Redis.from_url(redis_url)
    try:
        head = link_key(prefix, "")
        return {k.decode()[len(head) :] for k in client.scan_iter(match=head + "*")}
    finally:
        client.close()


def test_links_import_csv_reports_row_errors_and_writes_through(run, cli_env, database_url, redis_url, tmp_path):
    run("team", "create", "acme", "--plan", "pro")
    csv_file = tmp_path / "links.csv"
    csv_file.write_text(
        "url,custom_slug,labels,expires_at\n"
        "https://example.com/a,imp-a,spring;sale,2031-01-01T00:00:00Z\n"
        "not a url,imp-b,,\n"
        "https://example.com/c,,,\n"
    )
    status, out, err = run("links", "import", str(csv_file), "--team", "acme")
    assert status == 1  # some rows failed
    assert "created 2 links; 1 rows failed" in out
    assert "\nrow 2: Invalid value for url" in err

    rows = sql(database_url, "SELECT code, url, labels, expires_at FROM links ORDER BY created_at")
    assert [(r["url"], r["labels"]) for r in rows] == [
        ("https://example.com/a", ["spring", "sale"]),
        ("https://example.com/c", []),
    ]
    assert rows[0]["code"] == "imp-a" and rows[0]["expires_at"].year == 2031
    # Imported like API writes: the serving cache has every new link.
    assert _cached_codes(redis_url, cli_env["KEY_PREFIX"]) == {r["code"] for r in rows}


def test_links_export_json_imports_again(run, database_url, tmp_path):
    run("team", "create", "acme", "--plan", "pro")
    source = tmp_path / "in.json"
    source.write_text(
        '[{"url": "https://example.com/x", "custom_slug": "exp-x", "labels": ["l1", "l2"]},'
        ' {"url": "https://example.com/y", "custom_slug": "exp-y"}]'
    )
    assert run("links", "import", str(source))[:2] == (0, "created 2 links; 0 rows failed\n")  # the only team

    exported = tmp_path / "out.json"
    status, _, err = run("links", "export", "--team", "acme", "-o", str(exported))
    assert status == 0 and "exported 2 links" in err
    data = json.loads(exported.read_text())
    assert sorted((d["short_code"], d["url"], d["labels"]) for d in data) == [
        ("exp-x", "https://example.com/x", ["l1", "l2"]),
        ("exp-y", "https://example.com/y", []),
    ]

    sql(database_url, "DELETE FROM links")
    assert run("links", "import", str(exported), "--team", "acme")[0] == 0
    codes = sql(database_url, "SELECT code, labels FROM links ORDER BY code")
    assert [(r["code"], r["labels"]) for r in codes] == [("exp-x", ["l1", "l2"]), ("exp-y", [])]


def test_links_export_csv_to_stdout_round_trips_labels(run, database_url, tmp_path):
    run("team", "create", "acme")
    run("team", "create", "other")
    source = tmp_path / "in.csv"
    source.write_text("url,custom_slug,labels\nhttps://example.com/z,exp-z,one;two\n")
    status, _, err = run("links", "import", str(source))
    assert status == 1 and "--team" in err  # two teams: it must be named
    assert run("links", "import", str(source), "--team", "acme")[0] == 0

    status, out, _ = run("links", "export", "--team", "acme", "--format", "csv")
    assert status == 0
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert (row["short_code"], row["url"], row["labels"]) == ("exp-z", "https://example.com/z", "one;two")
    # Another team's export is empty but still a valid file.
    assert run("links", "export", "--team", "other")[1] == "url\n"


def test_cache_rebuild_restores_lost_records(run, cli_env, redis_url, tmp_path):
    run("team", "create", "acme")
    source = tmp_path / "in.csv"
    source.write_text("url,custom_slug\nhttps://example.com/1,reb-1\nhttps://example.com/2,reb-2\n")
    assert run("links", "import", str(source))[0] == 0
    prefix = cli_env["KEY_PREFIX"]
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.unlink(*client.scan_iter(match=f"{prefix}*"))
    finally:
        client.close()
    assert _cached_codes(redis_url, prefix) == set()

    status, out, _ = run("cache", "rebuild")
    assert status == 0 and out == "wrote 2 cache records\n"
    assert _cached_codes(redis_url, prefix) == {"reb-1", "reb-2"}


@pytest.mark.slow
def test_up_runs_the_stack_prints_a_working_key_and_stops_on_sigint(cli_env):
    api_port, edge_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "cli.main", "up", "--api-port", str(api_port), "--edge-port", str(edge_port)]
    env = {**os.environ, **cli_env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{edge_port}"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        text = "".join(banner)
        assert "linkedge is up" in text, text
        key = re.search(r"lk_[a-z0-9]{8}\.[A-Za-z0-9]+", text).group(0)
        slug = re.search(r'"custom_slug": "(hello-[0-9a-f]+)"', text).group(1)

        # The printed curl, sent as printed.
        created = httpx.post(
            f"http://127.0.0.1:{api_port}/api/v1/links",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            content=json.dumps({"url": "https://example.com/", "custom_slug": slug}),
        )
        assert created.status_code == 201, created.text
        followed = httpx.get(f"http://127.0.0.1:{edge_port}/{slug}")
        assert followed.status_code == 302 and followed.headers["location"] == "https://example.com/"
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=40)[0]
    assert proc.returncode == 0, rest
    assert "linkedge: stopping" in rest


def test_domain_add_verified_then_links_on_it_import_export_and_rebuild(
    run, cli_env, database_url, redis_url, tmp_path
):
    import redis

    from redirector.cache import decode_domain, decode_record
    from redirector.keys import domain_key, link_key

    run("team", "create", "acme", "--plan", "free")
    status, out, _ = run("domain", "add", "GO.Acme.Test", "--team", "acme", "--verified")
    assert status == 0 and out.startswith("added go.acme.test to team acme (links, verified;")
    # The operator's add skips the plan's limit (free: 1 domain) and the DNS proof.
    status, out, _ = run("domain", "add", "second.acme.test", "--team", "acme")
    assert status == 0 and "not verified yet" in out and "TXT _linkedge-challenge.second.acme.test = " in out
    refused = run("domain", "add", "localhost", "--team", "acme")[2]
    assert refused.startswith("linkedge: error: Invalid value for hostname")
    unknown = run("domain", "verify", "second.acme.test", "--team", "nobody")[2]
    assert unknown == "linkedge: error: no team named 'nobody'\n"
    assert run("domain", "verify", "second.acme.test", "--team", "acme")[0] == 0
    assert run("domain", "list", "--team", "acme")[1] == (
        "go.acme.test\tacme\tlinks\tverified\nsecond.acme.test\tacme\tlinks\tverified\n"
    )

    source = tmp_path / "in.csv"
    source.write_text(
        "url,custom_slug,domain,crawlable\n"
        "https://example.com/a,same,go.acme.test,true\n"
        "https://example.com/b,same,,\n"
        "https://example.com/c,same,go.acme.test,\n"
    )
    status, out, err = run("links", "import", str(source), "--team", "acme")
    assert "created 2 links; 1 rows failed" in out
    assert "row 3: The slug 'same' is already in use on go.acme.test." in err
    status, out, _ = run("links", "export", "--team", "acme", "--format", "csv")
    rows = sorted(csv.DictReader(io.StringIO(out)), key=lambda r: r["domain"])
    assert [(r["domain"], r["short_url"], r["crawlable"]) for r in rows] == [
        ("go.acme.test", "https://go.acme.test/same", "true"),
        ("sho.rt", "http://sho.rt/same", "false"),
    ]

    prefix = cli_env["KEY_PREFIX"]
    domain_id = sql(database_url, "SELECT id FROM domains WHERE hostname = 'go.acme.test'")[0]["id"]
    client = redis.Redis.from_url(redis_url)
    try:
        client.unlink(*client.scan_iter(match=f"{prefix}*"))
        assert run("cache", "rebuild")[0] == 0
        assert decode_record(client.get(link_key(prefix, "same", str(domain_id)))).url == "https://example.com/a"
        assert decode_record(client.get(link_key(prefix, "same"))).url == "https://example.com/b"
        record = decode_domain(client.get(domain_key(prefix, "go.acme.test")))
        assert record.robots == b"User-agent: *\nAllow: /same$\nDisallow: /\n"
    finally:
        client.close()
