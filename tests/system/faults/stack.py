"""One test's linkedge: the API, N edges and M workers as real processes on a private PostgreSQL
database and a private Redis, with links made through the API and counts read from PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis import Redis as RedisClient

from redirector.keys import event_stream_key, ready_key, shard_lease_key
from tests.support import TeamKey, sql, team_key
from tests.system.faults.processes import Proc, Procs, wait_for
from tests.system.faults.servers import PrivatePostgres, PrivateRedis
from tests.system.faults.traffic import Clicks, Target, fetch

PREFIX = "fx:"
SHARDS = 8
LEASE_MS = 1500  # a killed worker's shards are free after this
WORKER_ENV = {
    "ROLLUP_LEASE_MS": str(LEASE_MS),
    "ROLLUP_IDLE_MS": "50",
    "ROLLUP_BATCH": "16",  # small transactions: a kill lands between many commits
}


def stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Stack:
    database_url: str
    redis: PrivateRedis
    pg: PrivatePostgres
    procs: Procs
    edges: list[Proc]
    workers: list[Proc]
    api: Proc | None
    key: TeamKey
    targets: list[Target] = field(default_factory=list)
    not_serving: Counter[tuple[int, int]] = field(default_factory=Counter)

    @classmethod
    def create(
        cls,
        database_url: str,
        redis_server: PrivateRedis,
        pg: PrivatePostgres,
        logs: Path,
        *,
        edges: int = 1,
        edge_workers: int = 1,
        workers: int = 1,
        links: int = 20,
        edge_env: Mapping[str, str] | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> Stack:
        logs.mkdir(parents=True, exist_ok=True)
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "KEY_PREFIX": PREFIX,
            "PUBLIC_BASE_URL": "http://sho.rt",
            "BIO_BASE_URL": "",
            "VISITOR_SALT": "fault-suite",
            "GEOIP_DB": "",
            "EDGE_METRICS_PORT": "0",  # the suite reads no edge metrics; their default port is shared
        }
        procs = Procs(env, logs)
        key = team_key(database_url, "faults", "business")
        stack = cls(database_url, redis_server, pg, procs, [], [], None, key)
        try:
            stack.api = procs.api()
            stack.workers = [procs.worker(f"worker{i}", {**WORKER_ENV, **(worker_env or {})}) for i in range(workers)]
            stack.edges = [procs.edge(f"edge{i}", workers=edge_workers, extra=edge_env) for i in range(edges)]
            procs.wait_ready(stack.api, *stack.workers, *stack.edges)
            stack.targets = stack.create_links(links)
            client = stack.client()
            try:
                wait_for(
                    lambda: bool(client.exists(ready_key(PREFIX))),
                    "a worker to build the serving cache",
                    detail=procs.logs_text,
                )
            finally:
                client.close()
            stack.wait_leases(len(stack.workers))
        except BaseException:
            stack.close()
            raise
        return stack

    # -- processes --------------------------------------------------------------------------------

    @property
    def edge_ports(self) -> list[int]:
        return [e.port for e in self.edges]

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return f"http://127.0.0.1:{self.api.port}"

    def logs(self) -> str:
        return (
            self.procs.logs_text() + f"\n--- redis ---\n{self.redis.log_tail()}\n--- postgres ---\n{self.pg.log_tail()}"
        )

    def add_worker(self, name: str, extra: Mapping[str, str] | None = None) -> Proc:
        worker = self.procs.worker(name, {**WORKER_ENV, **(extra or {})})
        self.procs.wait_ready(worker)
        self.workers.append(worker)
        return worker

    def workers_alive(self, during: str) -> bool:
        """True, or an AssertionError naming the worker that exited ``during`` a fault."""
        dead = [w for w in self.workers if not w.running()]
        assert not dead, f"{dead[0].name} exited (status {dead[0].popen.returncode}) {during}\n{dead[0].tail(15)}"
        return True

    def close(self) -> None:
        self.procs.stop_all()

    # -- Redis ------------------------------------------------------------------------------------

    def client(self) -> RedisClient:
        return RedisClient.from_url(self.redis.url, socket_timeout=2)

    def leases(self) -> dict[int, str]:
        """Shard -> token of the worker holding it."""
        client = self.client()
        try:
            values: list[bytes | None] = client.mget([shard_lease_key(PREFIX, s) for s in range(SHARDS)])  # type: ignore[assignment]
        finally:
            client.close()
        return {s: v.decode() for s, v in enumerate(values) if v is not None}

    def wait_leases(self, workers: int, timeout: float = 20.0) -> None:
        """Until every shard is leased and shared among ``workers`` live workers."""

        def shared() -> bool:
            held = self.leases()
            return len(held) == SHARDS and len(set(held.values())) == workers

        wait_for(
            shared,
            f"{workers} worker(s) to lease all {SHARDS} shards",
            timeout=timeout,
            detail=lambda: f"{self.leases()}\n{self.logs()}",
        )

    def drained(self) -> bool:
        """Every entry of every shard stream is at or below its shard's watermark in PostgreSQL."""
        marks = {r["shard"]: r["last_id"] for r in self.query("SELECT shard, last_id FROM rollup_watermarks")}
        client = self.client()
        try:
            for shard in range(SHARDS):
                newest: list[Any] = client.xrevrange(event_stream_key(PREFIX, shard), count=1)  # type: ignore[assignment]
                if newest and stream_id(newest[0][0].decode()) > stream_id(marks.get(shard, "0-0")):
                    return False
        finally:
            client.close()
        return True

    # -- PostgreSQL -------------------------------------------------------------------------------

    def query(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        return sql(self.database_url, statement, *args)

    def counted(self) -> int:
        return int(self.query("SELECT coalesce(sum(scan_count), 0) AS n FROM links")[0]["n"])

    def per_link(self) -> dict[str, int]:
        return {str(r["id"]): int(r["scan_count"]) for r in self.query("SELECT id, scan_count FROM links")}

    # -- links ------------------------------------------------------------------------------------

    def create_links(self, n: int, tag: str = "l") -> list[Target]:
        made: list[Target] = []
        with httpx.Client(base_url=self.api_url + "/api/v1", headers=self.key.headers, timeout=30) as api:
            for start in range(0, n, 100):
                items = [
                    {"url": f"https://example.com/{tag}/{i}", "custom_slug": f"fx-{tag}{i}"}
                    for i in range(start, min(n, start + 100))
                ]
                r = api.post("/links/bulk", json={"links": items})
                assert r.status_code == 201, r.text
                data = r.json()["data"]
                assert data["errors"] == [], data["errors"]
                made += [Target(x["id"], x["short_code"], x["destination"]) for x in data["created"]]
        return made

    def warm(self, targets: list[Target], ports: list[int] | None = None) -> None:
        """HEAD every link on every edge (not a click) so the edges hold them in their local cache."""
        for port in ports or self.edge_ports:
            for t in targets:
                for _ in range(3):  # each new connection may land on another worker process
                    status, location = fetch(port, t.code, method="HEAD")
                    assert (status, location) == (302, t.url), (port, t, status, location)

    def wait_serving(self, targets: list[Target], what: str, timeout: float = 10.0) -> float:
        """Seconds until every link has redirected to its URL on every edge (a new connection per
        request, HEAD so nothing is counted). What the edges answered before is tallied in
        ``not_serving`` by (edge port, status) for the figures."""
        started = time.monotonic()
        pending = {(port, t) for port in self.edge_ports for t in targets}
        last = started
        while pending:
            for port, t in sorted(pending, key=lambda p: (p[0], p[1].code)):
                status, location = fetch(port, t.code, method="HEAD")
                if (status, location) == (302, t.url):
                    pending.discard((port, t))
                    last = time.monotonic()
                else:
                    self.not_serving[port, status] += 1
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {self.take_not_serving()}")
        return last - started

    def take_not_serving(self) -> dict[str, int]:
        """``not_serving`` by edge name and status (0: no answer), emptied."""
        names = {e.port: e.name for e in self.edges}
        taken = {f"{names.get(p, p)} {status}": n for (p, status), n in sorted(self.not_serving.items())}
        self.not_serving.clear()
        return taken

    # -- counts -----------------------------------------------------------------------------------

    def settle(self, timeout: float = 30.0) -> float:
        """Wait until the edges' buffers reached Redis and the workers applied every stream entry,
        and the count stopped moving; returns the seconds it took."""
        started = time.monotonic()
        last = [-1, time.monotonic()]

        def still() -> bool:
            if not self.drained():
                last[0] = -1
                return False
            n = self.counted()
            if n != last[0]:
                last[0], last[1] = n, time.monotonic()
                return False
            return time.monotonic() - last[1] >= 1.5  # longer than an edge's longest flush back-off

        wait_for(still, "the roll-up to settle", timeout=timeout, detail=self.logs)
        return time.monotonic() - started

    def assert_exact(self, clicks: Clicks, timeout: float = 40.0) -> float:
        """PostgreSQL counts exactly the redirects the visitors got, per link; returns the seconds
        from the call until the last of them was counted."""
        assert not clicks.wrong, clicks.wrong[:5]
        started = time.monotonic()

        def reached() -> bool:
            n = self.counted()
            assert n <= clicks.total, f"PostgreSQL counted {n} clicks, more than the {clicks.total} redirects sent"
            return n == clicks.total

        wait_for(
            reached,
            f"{clicks.total} clicks in PostgreSQL",
            timeout=timeout,
            detail=lambda: f"counted {self.counted()}\n{self.logs()}",
        )
        took = time.monotonic() - started
        time.sleep(1.0)  # a double count would show up now
        per_link = self.per_link()
        expected = {t.link_id: clicks.ok[t.link_id] for t in self.targets}
        assert {k: per_link.get(k, 0) for k in expected} == expected
        assert sum(per_link.values()) == clicks.total
        totals = {str(r["subject_id"]): (r["clicks"], r["bots"]) for r in self.query("SELECT * FROM stats_totals")}
        assert totals == {k: (n, 0) for k, n in expected.items() if n}
        return took
