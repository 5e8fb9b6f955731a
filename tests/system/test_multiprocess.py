"""Two edge processes and two workers on one machine, against the same Redis and PostgreSQL.

Every process is a real ``linkedge serve edge|worker``; links are written through the API app
(in process), so the write-through and the invalidation message are the product's own.

* An API write reaches the in-process cache of both edges within a second.
* The eight stream shards are split between the two workers (four leases each) and clicks
  served by both edges end up in PostgreSQL exactly once, per link.
* A worker SIGKILLed while clicks flow loses its leases when they expire (``ROLLUP_LEASE_MS``)
  and the other worker takes its shards and applies what they hold: still exactly once.
* A team domain on an edge of two server processes (``--workers 2``, SO_REUSEPORT): the same slug
  on two teams' domains and on the service's host goes to three destinations; verifying the
  domain, a PATCH of its ``not_found_url`` and its deletion each reach both processes' in-process
  caches within a second; its clicks and orphan visits are counted exactly.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings as ApiSettings
from redirector.keys import event_stream_key, ready_key, shard_lease_key
from tests.dns_server import DnsServer
from tests.redirector.edge_support import free_port, wait_for_port
from tests.support import sql, team_key
from tests.system.multiprocess_support import (
    Clicks,
    Process,
    Processes,
    ReusePortEdge,
    Target,
    fetch,
    free_port_run,
    metrics,
    sample_sum,
    wait_for,
)

SHARDS = 8  # EVENT_SHARDS default, on the edges and the workers
LEASE_MS = 1500  # a dead worker's shards are free after this
PROPAGATION = 1.0  # seconds: a changed link must stop redirecting the old way on every edge


def stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def streams_drained(client: redis.Redis, prefix: str, query: Callable[[str], list[asyncpg.Record]]) -> bool:
    """Every entry in every shard stream is at or below the shard's watermark in PostgreSQL."""
    marks = {r["shard"]: r["last_id"] for r in query("SELECT shard, last_id FROM rollup_watermarks")}
    for shard in range(SHARDS):
        newest: list[Any] = client.xrevrange(event_stream_key(prefix, shard), count=1)  # type: ignore[assignment]
        if newest and stream_id(newest[0][0].decode()) > stream_id(marks.get(shard, "0-0")):
            return False
    return True


@dataclass
class Stack:
    procs: Processes
    edges: list[Process]
    edge_ports: list[int]
    edge_metrics_ports: dict[int, int]  # public port -> the port the edge serves /metrics on
    workers: list[Process]
    worker_ports: list[int]
    api: TestClient
    headers: dict[str, str]
    redis: redis.Redis
    prefix: str
    database_url: str

    def query(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        return sql(self.database_url, statement, *args)

    def leases(self) -> dict[int, str]:
        """Shard -> token of the worker holding its lease, for the shards that have one."""
        values: list[bytes | None] = self.redis.mget([shard_lease_key(self.prefix, s) for s in range(SHARDS)])  # type: ignore[assignment]
        return {s: v.decode() for s, v in enumerate(values) if v is not None}

    def worker_metrics(self, i: int) -> dict[str, float]:
        return metrics(self.worker_ports[i])

    def edge_metrics(self, port: int) -> dict[str, float]:
        return metrics(self.edge_metrics_ports[port])

    def create_links(self, items: list[dict[str, Any]]) -> list[Target]:
        targets: list[Target] = []
        for i in range(0, len(items), 100):
            r = self.api.post("/api/v1/links/bulk", json={"links": items[i : i + 100]}, headers=self.headers)
            assert r.status_code == 201, r.text
            data = r.json()["data"]
            assert data["errors"] == [], data["errors"]
            targets += [Target(link["id"], link["short_code"], link["destination"]) for link in data["created"]]
        return targets

    def logs(self) -> str:
        return self.procs.logs_text()

    def drained(self) -> bool:
        return streams_drained(self.redis, self.prefix, self.query)

    def drain(self, clicks: Clicks) -> None:
        """Wait until the edges appended every click to Redis and the workers applied every entry."""
        assert not clicks.errors, clicks.errors[:10]
        per_edge = [self.edge_metrics(port) for port in self.edge_ports]
        assert [sample_sum(m, "linkedge_edge_events_dropped_total") for m in per_edge] == [0] * len(per_edge)

        def flushed() -> float:
            return sum(
                sample_sum(self.edge_metrics(port), "linkedge_edge_events_flushed_total") for port in self.edge_ports
            )

        wait_for(lambda: flushed() >= clicks.total, "the edges to flush every click", detail=self.logs)
        assert flushed() == clicks.total
        wait_for(self.drained, "the workers to apply every stream entry", timeout=30, detail=self.logs)

    def assert_counted_exactly(self, clicks: Clicks) -> None:
        """PostgreSQL holds exactly the clicks sent, per link, in ``scan_count`` and ``stats_totals``."""
        scans = {str(r["id"]): r["scan_count"] for r in self.query("SELECT id, scan_count FROM links")}
        counted = sum(scans.values())
        assert counted == clicks.total, f"PostgreSQL counted {counted} clicks; the edges redirected {clicks.total}"
        wrong = {link: (n, clicks.sent[link]) for link, n in scans.items() if n != clicks.sent[link]}
        assert not wrong, f"links whose scan_count is not the clicks sent (counted, sent): {wrong}"
        totals = {str(r["subject_id"]): (r["clicks"], r["bots"]) for r in self.query("SELECT * FROM stats_totals")}
        assert totals == {link: (n, 0) for link, n in clicks.sent.items()}


def _split_evenly(stack: Stack) -> bool:
    """Both workers hold four leases each, and say so in their metrics."""
    owners = list(stack.leases().values())
    owned = [stack.worker_metrics(i).get("linkedge_rollup_shards_owned") for i in range(len(stack.workers))]
    return len(owners) == SHARDS and sorted(owners.count(t) for t in set(owners)) == [4, 4] and owned == [4, 4]


@pytest.fixture
def stack(env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    """Two edges (local cache on, long TTL) and two workers (short leases), all on free ports."""
    procs = Processes({**env, "LINKEDGE_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    client = redis.Redis.from_url(env["REDIS_URL"])
    edge_ports = [free_port() for _ in range(2)]
    edge_metrics_ports = {port: free_port() for port in edge_ports}
    worker_ports = [free_port() for _ in range(2)]
    try:
        edges = [
            procs.serve(
                "edge",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                name=f"edge{i}",
                extra={"LOCAL_CACHE_TTL": "600", "EDGE_METRICS_PORT": str(edge_metrics_ports[port])},
            )
            for i, port in enumerate(edge_ports)
        ]
        workers = [
            procs.serve(
                "worker",
                name=f"worker{i}",
                extra={
                    "WORKER_METRICS_PORT": str(port),
                    "ROLLUP_LEASE_MS": str(LEASE_MS),
                    "ROLLUP_IDLE_MS": "20",
                    "ROLLUP_BATCH": "16",  # small transactions: a kill lands between many commits
                },
            )
            for i, port in enumerate(worker_ports)
        ]

        def alive() -> bool:
            dead = [p.name for p in procs.started if p.proc.poll() is not None]
            assert not dead, f"{dead} exited early\n{procs.logs_text()}"
            return True

        def subscribed(port: int) -> bool:
            return alive() and metrics(edge_metrics_ports[port]).get("linkedge_edge_invalidation_subscribed") == 1

        for port in edge_ports:
            wait_for_port(port, timeout=30)
            wait_for(
                functools.partial(subscribed, port),
                f"the edge on port {port} to subscribe to invalidations",
                detail=procs.logs_text,
            )
        with TestClient(create_app(ApiSettings.from_env(env))) as api:
            built = Stack(
                procs,
                edges,
                edge_ports,
                edge_metrics_ports,
                workers,
                worker_ports,
                api,
                team_key(env["DATABASE_URL"], "multiprocess", "pro").headers,
                client,
                env["KEY_PREFIX"],
                env["DATABASE_URL"],
            )
            wait_for(
                lambda: alive() and bool(client.exists(ready_key(env["KEY_PREFIX"]))),
                "a worker to build the serving cache",
                detail=procs.logs_text,
            )
            wait_for(
                lambda: alive() and _split_evenly(built),
                "the workers to split the shards 4/4",
                detail=lambda: f"leases {built.leases()}\n{procs.logs_text()}",
            )
            yield built
    finally:
        procs.stop_all()
        client.close()


def converge(ports: list[int], path: str, expected: tuple[int, str], since: float) -> float:
    """Seconds from ``since`` until every edge answers ``expected`` (polling for up to 5 s), or infinity."""
    pending = set(ports)
    while pending and time.monotonic() - since < 5:
        pending = {port for port in pending if fetch(port, path) != expected}
    return time.monotonic() - since if not pending else float("inf")


def warm(stack: Stack, port: int, path: str, expected: tuple[int, str]) -> None:
    """Fetch ``path`` until the edge answers it from its in-process cache."""
    hits = "linkedge_edge_local_cache_hits_total"

    def cached() -> bool:
        before = stack.edge_metrics(port)[hits]
        assert fetch(port, path) == expected
        return stack.edge_metrics(port)[hits] > before

    wait_for(cached, f"a local-cache hit for {path} on the edge on port {port}", timeout=5)


def test_api_writes_invalidate_both_edges(stack: Stack) -> None:
    (link,) = stack.create_links([{"url": "https://example.com/v1", "custom_slug": "mp-hot"}])
    path, api_path = "/mp-hot", f"/api/v1/links/{link.link_id}"
    for port in stack.edge_ports:
        warm(stack, port, path, (302, "https://example.com/v1"))

    start = time.monotonic()
    r = stack.api.patch(api_path, json={"url": "https://example.com/v2"}, headers=stack.headers)
    assert r.status_code == 200, r.text
    assert converge(stack.edge_ports, path, (302, "https://example.com/v2"), start) < PROPAGATION

    start = time.monotonic()
    r = stack.api.patch(api_path, json={"enabled": False}, headers=stack.headers)
    assert r.status_code == 200, r.text
    assert converge(stack.edge_ports, path, (404, ""), start) < PROPAGATION

    start = time.monotonic()
    r = stack.api.patch(api_path, json={"enabled": True}, headers=stack.headers)
    assert r.status_code == 200, r.text
    assert converge(stack.edge_ports, path, (302, "https://example.com/v2"), start) < PROPAGATION
    for port in stack.edge_ports:
        warm(stack, port, path, (302, "https://example.com/v2"))
    start = time.monotonic()
    assert stack.api.delete(api_path, headers=stack.headers).status_code == 200
    assert converge(stack.edge_ports, path, (404, ""), start) < PROPAGATION
    for port in stack.edge_ports:
        assert stack.edge_metrics(port)["linkedge_edge_invalidations_total"] >= 3


def test_shards_are_shared_without_double_counting(stack: Stack) -> None:
    targets = stack.create_links([{"url": f"https://example.com/shared/{i}"} for i in range(60)])
    clicks = Clicks(stack.edge_ports, targets, seed=5)
    clicks.run(10_000)
    assert clicks.total == 10_000 and not clicks.errors, clicks.errors[:10]
    assert all(clicks.per_edge[port] > 2000 for port in stack.edge_ports), clicks.per_edge
    stack.drain(clicks)
    stack.assert_counted_exactly(clicks)

    # Each worker applied its own shards' events, and between them every event once.
    def applied() -> list[float]:
        return [sample_sum(stack.worker_metrics(i), "linkedge_rollup_events_total") for i in range(2)]

    wait_for(lambda: sum(applied()) >= clicks.total, "the workers' metrics to count every event", timeout=5)
    assert sum(applied()) == clicks.total and all(n > 0 for n in applied()), applied()


def test_killed_worker_hands_its_shards_over(stack: Stack) -> None:
    targets = stack.create_links([{"url": f"https://example.com/kill/{i}"} for i in range(40)])
    clicks = Clicks(stack.edge_ports, targets, seed=7)
    clicks.start()
    try:
        wait_for(lambda: clicks.total >= 1000 or bool(clicks.errors), "1000 clicks", detail=stack.logs)
        wait_for(
            lambda: all(sample_sum(stack.worker_metrics(i), "linkedge_rollup_events_total") > 0 for i in range(2)),
            "both workers to apply events",
            detail=stack.logs,
        )
        owners = stack.leases()
        assert sorted(list(owners.values()).count(t) for t in set(owners.values())) == [4, 4], owners
        victim, survivor = stack.workers[0], stack.workers[1]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(5)
        marks_at_kill = {r["shard"]: r["last_id"] for r in stack.query("SELECT shard, last_id FROM rollup_watermarks")}
        sent_at_kill = clicks.total

        def taken_over() -> bool:
            held = stack.leases()
            return (
                len(held) == SHARDS
                and len(set(held.values())) == 1
                and stack.worker_metrics(1).get("linkedge_rollup_shards_owned") == SHARDS
            )

        wait_for(taken_over, "the surviving worker to take every shard", detail=lambda: f"{stack.leases()}")
        assert survivor.proc.poll() is None
        (heir,) = set(stack.leases().values())
        assert heir in owners.values(), "the survivor's token changed"
        orphaned = sorted(s for s, t in owners.items() if t != heir)
        assert len(orphaned) == 4
        sent_at_takeover = clicks.total
        wait_for(lambda: clicks.total >= sent_at_takeover + 1000, "1000 clicks after the takeover", detail=stack.logs)
    finally:
        clicks.stop()
    assert not clicks.errors, clicks.errors[:10]
    assert sent_at_takeover > sent_at_kill, "no clicks flowed while the worker was dead"
    stack.drain(clicks)
    stack.assert_counted_exactly(clicks)

    # The heir applied the dead worker's shards: their watermarks moved past where the victim left them.
    marks = {r["shard"]: r["last_id"] for r in stack.query("SELECT shard, last_id FROM rollup_watermarks")}
    for shard in orphaned:
        assert stream_id(marks[shard]) > stream_id(marks_at_kill.get(shard, "0-0")), shard


# --- team domains on an edge of two server processes ------------------------------------------

ACME, GLOBEX = "go.acme.test", "go.globex.test"
PLATFORM = "sho.rt"  # the host of PUBLIC_BASE_URL in the test environment
EDGE_PROCESSES = 2


@dataclass
class DomainStack:
    edge: ReusePortEdge
    procs: Processes
    api: TestClient
    dns: DnsServer
    redis: redis.Redis
    prefix: str
    database_url: str

    def query(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        return sql(self.database_url, statement, *args)

    def call(self, method: str, path: str, team: dict[str, str], status: int = 200, **kwargs: Any) -> dict[str, Any]:
        r = self.api.request(method, f"/api/v1{path}", headers=team, **kwargs)
        assert r.status_code == status, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    def add_domain(self, team: dict[str, str], hostname: str) -> dict[str, Any]:
        """``POST /domains``, with its TXT record put in DNS; not verified yet."""
        domain = self.call("POST", "/domains", team, 201, json={"hostname": hostname})
        (txt,) = [r for r in domain["dns_records"] if r["type"] == "TXT"]
        self.dns.txt[txt["name"]] = [txt["value"]]
        return domain

    def link(self, team: dict[str, str], url: str, **body: Any) -> dict[str, Any]:
        return self.call("POST", "/links", team, 201, json={"url": url, "custom_slug": "sale", **body})

    def logs(self) -> str:
        return self.procs.logs_text()


@pytest.fixture
def domain_stack(env: dict[str, str], tmp_path: Path) -> Iterator[DomainStack]:
    """``linkedge serve edge --workers 2`` (local cache on, long TTL), a worker, and the API in process
    proving domains against a DNS server on loopback."""
    procs = Processes({**env, "LINKEDGE_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    client = redis.Redis.from_url(env["REDIS_URL"])
    edge = ReusePortEdge(free_port(), free_port_run(EDGE_PROCESSES), EDGE_PROCESSES)
    try:
        procs.serve(
            "edge",
            *("--host", "127.0.0.1", "--port", str(edge.port), "--workers", str(EDGE_PROCESSES)),
            name="edge",
            extra={"LOCAL_CACHE_TTL": "600", "EDGE_METRICS_PORT": str(edge.metrics_base)},
        )
        procs.serve("worker", name="worker", extra={"WORKER_METRICS_PORT": str(free_port()), "ROLLUP_IDLE_MS": "20"})

        def alive() -> bool:
            dead = [p.name for p in procs.started if p.proc.poll() is not None]
            assert not dead, f"{dead} exited early\n{procs.logs_text()}"
            return True

        wait_for_port(edge.port, timeout=30)
        wait_for(
            lambda: alive() and edge.each("linkedge_edge_invalidation_subscribed") == [1] * EDGE_PROCESSES,
            "both edge processes to subscribe to invalidations",
            detail=procs.logs_text,
        )
        wait_for(
            lambda: alive() and bool(client.exists(ready_key(env["KEY_PREFIX"]))),
            "the worker to build the serving cache",
            detail=procs.logs_text,
        )
        with (
            DnsServer() as dns,
            TestClient(create_app(ApiSettings.from_env({**env, "DNS_RESOLVER": dns.address}))) as api,
        ):
            yield DomainStack(edge, procs, api, dns, client, env["KEY_PREFIX"], env["DATABASE_URL"])
    finally:
        procs.stop_all()
        client.close()


def test_a_team_domain_reaches_every_edge_process(domain_stack: DomainStack) -> None:
    s, edge = domain_stack, domain_stack.edge
    acme = team_key(s.database_url, "acme", "pro").headers
    globex = team_key(s.database_url, "globex", "pro").headers
    acme_domain, globex_domain = s.add_domain(acme, ACME), s.add_domain(globex, GLOBEX)
    s.call("POST", f"/domains/{acme_domain['id']}/verify", acme)
    # "sale" three times: on each team's domain and on the service's own host.
    links = {
        ACME: s.link(acme, "https://acme.test/sale", domain=ACME),
        GLOBEX: s.link(globex, "https://globex.test/sale", domain=GLOBEX),
        PLATFORM: s.link(acme, "https://platform.test/sale"),
    }
    assert links[ACME]["short_url"] == f"https://{ACME}/sale"

    # Not verified yet: globex's domain serves nothing, on either process (each caches the miss).
    assert edge.converge(GLOBEX, "/sale", (404, ""), time.monotonic()) < 5
    start = time.monotonic()
    assert s.call("POST", f"/domains/{globex_domain['id']}/verify", globex)["verified"] is True
    assert edge.converge(GLOBEX, "/sale", (302, "https://globex.test/sale"), start) < PROPAGATION

    # Each host's "sale" is its own link, answered by both processes from their in-process caches.
    for host, link in links.items():
        edge.warm(host, "/sale", (302, link["destination"]))

    # A code the domain lacks is a 404 until the domain gets a not_found_url; the PATCH reaches
    # both processes within a second, and only that domain: the others' unknown codes stay 404s.
    edge.warm(ACME, "/nope", (404, ""))
    start = time.monotonic()
    s.call("PATCH", f"/domains/{acme_domain['id']}", acme, json={"not_found_url": "https://acme.test/missing"})
    assert edge.converge(ACME, "/nope", (302, "https://acme.test/missing"), start) < PROPAGATION
    for host in (GLOBEX, PLATFORM):
        assert edge.converge(host, "/nope", (404, ""), time.monotonic()) < 5
    assert edge.converge(ACME, "/sale", (302, "https://acme.test/sale"), time.monotonic()) < 5

    # Deleted (its link disabled by force): within a second neither process serves the domain,
    # while the same slug on the other domain and on the service's host keeps its destination.
    edge.warm(ACME, "/sale", (302, "https://acme.test/sale"))
    # Each of these was an orphan visit of a live domain.
    orphans = {acme_domain["id"]: edge.sent[(ACME, "/nope")], globex_domain["id"]: edge.sent[(GLOBEX, "/nope")]}
    start = time.monotonic()
    assert s.call("DELETE", f"/domains/{acme_domain['id']}?force=true", acme)["deleted"] is True
    assert edge.converge(ACME, "/sale", (404, ""), start) < PROPAGATION
    assert edge.converge(ACME, "/nope", (404, ""), start) < PROPAGATION  # no not_found_url either
    for host in (GLOBEX, PLATFORM):
        assert edge.converge(host, "/sale", (302, links[host]["destination"]), time.monotonic()) < 5

    # Every redirect answered (polls included) is one click of its own link in PostgreSQL, and
    # every request for an unknown code of a live domain one orphan visit of that domain.
    clicks = {links[h]["id"]: edge.redirects[(h, "/sale", links[h]["destination"])] for h in links}
    assert all(n > 0 for n in [*clicks.values(), *orphans.values()]), (clicks, orphans)
    events = sum(clicks.values()) + sum(orphans.values())
    assert sum(edge.each("linkedge_edge_events_dropped_total")) == 0
    wait_for(lambda: sum(edge.each("linkedge_edge_events_flushed_total")) >= events, "the edge to flush", detail=s.logs)
    assert sum(edge.each("linkedge_edge_events_flushed_total")) == events
    wait_for(lambda: streams_drained(s.redis, s.prefix, s.query), "the worker to apply every event", detail=s.logs)
    assert {str(r["id"]): r["scan_count"] for r in s.query("SELECT id, scan_count FROM links")} == clicks
    totals = {str(r["subject_id"]): (r["clicks"], r["bots"]) for r in s.query("SELECT * FROM stats_totals")}
    assert totals == {link: (n, 0) for link, n in clicks.items()}
    visits = s.query("SELECT domain_id, kind, sum(visits)::int AS n FROM domain_orphan_hourly GROUP BY 1, 2")
    assert {(str(r["domain_id"]), r["kind"]): r["n"] for r in visits} == {
        (d, "not_found"): n for d, n in orphans.items()
    }
