"""The OpenAPI document against the running API: schemathesis, every check, a fixed seed.

A real API process (``uvicorn api.app:main --factory``) runs on a free loopback port against this
run's PostgreSQL database and Redis prefix. A team on the business plan gets four keys with every
ability (taken in turn, so the run stays under each key's 3,000 requests a minute) and a few links
and bio pages, whose ids schemathesis draws for path parameters half of the time (the other half
are random ids, which must be documented 404s). Then ``st run`` exercises every operation in all
four phases (examples, coverage, fuzzing, stateful) with ``--checks all``, ``--max-examples 25``
and ``--seed 20261201``.

Nothing is excluded. What the run accepts is in tests/api/schemathesis_hooks.py, each with the
documented rule it stands for (cross-field and stored-state rules JSON Schema cannot state, and
the bulk endpoint's documented partial success); the test prints how often each fired.

Run it alone: ``scripts/test tests/api/test_schemathesis.py -s``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.fields import NFKC_URL_DELIMITERS, WS, nfkc_url_delimiters
from tests.dns_server import DnsServer
from tests.support import TeamKey, team_key

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261201
EXAMPLES = 25  # per operation and phase
KEYS = 4  # taken in turn by tests/api/schemathesis_hooks.py
API = "/api/v1"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api_server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The API as its own process on a free port, with a DNS server of its own; its base URL."""
    with DnsServer() as dns:
        yield from _api_server({**env, "DNS_RESOLVER": dns.address}, tmp_path)


def _api_server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:main", "--factory", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the API did not start:\n" + (tmp_path / "api.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def seed(base: str, key: TeamKey) -> dict[str, list[str]]:
    """A few links and bio pages of the key's team: the ids schemathesis may draw."""
    with httpx.Client(base_url=base + API, headers=key.headers, timeout=10) as client:

        def post(path: str, body: dict[str, object]) -> str:
            r = client.post(path, json=body)
            assert r.status_code == 201, r.text
            return str(r.json()["data"]["id"])

        links = [post("/links", {"url": f"https://example.com/seed/{i}", "labels": ["seed"]}) for i in range(3)]
        # Links that bio blocks point at; kept out of the path dictionary, so no request deletes them.
        targets = [post("/links", {"url": f"https://example.com/target/{i}"}) for i in range(2)]
        pages = [
            post(
                "/bio-pages",
                {
                    "handle": f"seed-{i}",
                    "display_name": f"Seed {i}",
                    "blocks": [
                        {"type": "header", "label": "Start"},
                        {"type": "link", "label": "Shop", "url": "https://example.com/shop"},
                        {"type": "link", "label": "Tracked", "link_id": targets[0]},
                        {"type": "form", "label": "Newsletter"},
                    ],
                },
            )
            for i in range(2)
        ]
        pages.append(post("/bio/pages", {"title": "Seed data", "page_data": {"links": [{"url": "https://a.example"}]}}))
        # Domains: some for path ids (requests may delete them), one that bodies name as their domain
        # (kind both: links and a bio page may use it; it is never in the path dictionary).
        domains = [post("/domains", {"hostname": f"seed-{i}.example.com"}) for i in range(2)]
        post("/domains", {"hostname": "target.example.com", "kind": "both"})  # schemathesis_hooks.TARGET_DOMAIN
    return {"links": links, "targets": targets, "pages": pages, "domains": domains}


def config(ids: dict[str, list[str]]) -> str:
    def values(items: list[str]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in items) + "]"

    return f"""\
[generation]
database = "none"
# No generated Authorization values: past 30 failed keys a minute the API refuses the address (429),
# which would leave the rest of the run testing that. ignored_auth still sends its own probes.
with-security-parameters = false

[dictionaries.links]
values = {values(ids["links"])}

[dictionaries.pages]
values = {values(ids["pages"])}

[dictionaries.targets]
values = {values(ids["targets"])}

[dictionaries.domains]
values = {values(ids["domains"])}

[dictionaries.hostnames]
values = ["target.example.com"]

[parameters]
"path.link_id" = {{ dictionary = "links", probability = 0.5 }}
"path.page_id" = {{ dictionary = "pages", probability = 0.5 }}
"path.domain_id" = {{ dictionary = "domains", probability = 0.5 }}
"body.domain" = {{ dictionary = "hostnames", probability = 0.9 }}
"body.blocks[*].link_id" = {{ dictionary = "targets", probability = 0.9 }}
"body.page_data.links[*].link_id" = {{ dictionary = "targets", probability = 0.9 }}
"""


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_the_openapi_document_describes_the_server(env: dict[str, str], api_server: str, tmp_path: Path) -> None:
    # Four keys of one team on the business plan (3,000 requests a minute each), every ability.
    keys = [team_key(env["DATABASE_URL"], "schemathesis", plan="business") for _ in range(KEYS)]
    cfg = tmp_path / "schemathesis.toml"
    cfg.write_text(config(seed(api_server, keys[0])))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(cfg),
        "--no-color",
        "run",
        f"{api_server}{API}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    accepted = tmp_path / "accepted.tsv"
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
            "LINKEDGE_ST_KEYS": ",".join(k.key for k in keys),
            "LINKEDGE_ST_FILTER_LOG": str(accepted),
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = result.stdout + result.stderr
    took = time.monotonic() - started
    summary = "\n".join(output.splitlines()[-25:])
    reasons = Counter(
        "\t".join(line.split("\t")[:3]) for line in (accepted.read_text().splitlines() if accepted.exists() else [])
    )
    print(f"schemathesis took {took:.0f} s\n{summary}\naccepted by the hooks:")
    for reason, count in reasons.most_common():
        print(f"  {count:5d}  {reason}")
    assert result.returncode == 0, output[-20000:]
    assert re.search(r"Test cases:\s*\n\s*\d+ generated", output), output[-5000:]


def test_the_whitespace_class_is_what_str_strip_removes() -> None:
    """api.fields.WS (a regex class) must be exactly str.isspace(), which str.strip() uses."""
    spaces = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    assert re.fullmatch(f"[{WS}]*", spaces) and not re.search(
        f"[{WS}]", "".join(set(map(chr, range(0x3100))) - set(spaces))
    )


def test_the_nfkc_url_delimiters_are_those_of_this_unicode_version() -> None:
    assert list(NFKC_URL_DELIMITERS) == nfkc_url_delimiters(), unicodedata.unidata_version


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/links", "GET, POST"),
        ("/links/bulk", "POST"),
        ("/links/00000000-0000-0000-0000-000000000000", "DELETE, GET, PATCH"),
        ("/bio-pages/search", "GET"),
        ("/bio/pages/00000000-0000-0000-0000-000000000000/publish", "POST"),
    ],
)
def test_a_405_allows_every_method_of_its_path(client, path: str, allow: str) -> None:
    r = client.request("OPTIONS", API + path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"
