"""Traffic for the fault tests: browser clicks on the edges and API calls, from background threads.

:class:`Clicks` follows short links at a modest, steady rate on a few keep-alive connections per
edge, and goes on through every fault: a refused connection, a reset or a 503 is recorded and the
next click is tried (on a new connection when needed). Only a 302 to the link's own URL is a click
the design must count. :class:`ApiCalls` keeps reading and writing through the API and records
every status it gets.
"""

from __future__ import annotations

import asyncio
import http.client
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from tests.redirector.edge_support import LINUX_FIREFOX

BROWSER_UA = LINUX_FIREFOX  # a browser: its clicks count as clicks (bots are counted apart)
READ_ERRORS = (OSError, EOFError, TimeoutError, ValueError, IndexError, asyncio.LimitOverrunError)


@dataclass(frozen=True)
class Target:
    link_id: str
    code: str
    url: str


class Clicks:
    """Clicks on ``targets`` through ``ports`` at about ``rate`` per second in all, until :meth:`stop`.

    ``ok`` counts the redirects per link id (what PostgreSQL must end up with), ``statuses`` every
    outcome by edge port, ``unanswered`` the requests written on a connection that broke before a
    reply (the edge may or may not have served them), and ``ok_times`` when each redirect arrived.
    """

    def __init__(
        self, ports: list[int], targets: list[Target], *, rate: float = 100.0, connections: int = 2, seed: int = 1
    ) -> None:
        self.ports = list(ports)
        self.targets = targets
        self.rate = rate
        self.connections = connections
        self.rng = random.Random(seed)
        self.ok: Counter[str] = Counter()
        self.total = 0
        self.by_port: Counter[int] = Counter()
        self.statuses: Counter[tuple[int, str]] = Counter()
        self.unanswered: Counter[int] = Counter()
        self.wrong: list[str] = []
        self.ok_times: dict[int, list[float]] = {p: [] for p in self.ports}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.closed_ports: set[int] = set()  # no more clicks are sent there (a stopped edge)

    def __enter__(self) -> Clicks:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._drive()), name="clicks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "the click driver did not stop"
            self._thread = None

    def answered(self, port: int, since: float, until: float) -> int:
        """Redirects from ``port`` that arrived between two ``time.monotonic()`` instants."""
        return sum(1 for t in self.ok_times[port] if since <= t <= until)

    def status_summary(self) -> dict[str, int]:
        summary: Counter[str] = Counter()
        for (_, status), n in self.statuses.items():
            summary[status] += n
        return dict(summary)

    async def _drive(self) -> None:
        n = len(self.ports) * self.connections
        await asyncio.gather(
            *(self._connection(port, i * (n / self.rate) / n) for port in self.ports for i in range(self.connections))
        )

    async def _connection(self, port: int, offset: float) -> None:
        interval = len(self.ports) * self.connections / self.rate
        loop = asyncio.get_running_loop()
        next_at = loop.time() + offset
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while not self._stop.is_set():
                now = loop.time()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at = max(next_at + interval, loop.time())  # behind after an outage: no burst
                if port in self.closed_ports:
                    continue
                if writer is None:
                    try:
                        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
                    except (OSError, TimeoutError):
                        self.statuses[port, "refused"] += 1
                        continue
                assert reader is not None and writer is not None
                target = self.rng.choice(self.targets)
                try:
                    status, location, close = await asyncio.wait_for(_get(reader, writer, port, target.code), 5)
                except READ_ERRORS as e:
                    self.statuses[port, f"no reply ({type(e).__name__})"] += 1
                    self.unanswered[port] += 1
                    close = True
                else:
                    if status == 302 and location == target.url:
                        self.ok[target.link_id] += 1
                        self.by_port[port] += 1
                        self.total += 1
                        self.ok_times[port].append(time.monotonic())
                    elif status == 302:
                        self.wrong.append(f"{port} /{target.code}: 302 to {location}, not {target.url}")
                    self.statuses[port, str(status)] += 1
                if close and writer is not None:
                    _close(writer)
                    reader = writer = None
        finally:
            if writer is not None:
                _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except OSError:
        pass


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, code: str
) -> tuple[int, str, bool]:
    """One HTTP/1.1 GET on a kept-alive connection: (status, Location, whether the server closes it)."""
    writer.write(f"GET /{code} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {BROWSER_UA}\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in head[1:] if h)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("location", ""), headers.get("connection", "").lower() == "close"


def fetch(port: int, code: str, *, method: str = "GET", timeout: float = 2.0) -> tuple[int, str]:
    """One request on a new connection: (status, Location); status 0 when there was no answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, f"/{code}", headers={"user-agent": BROWSER_UA})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("location") or ""
    except (OSError, http.client.HTTPException):
        return 0, ""
    finally:
        conn.close()


class ApiCalls:
    """Lists, reads and creates links through the API every ``interval`` seconds, recording each status."""

    def __init__(self, base_url: str, headers: dict[str, str], link_id: str, *, interval: float = 0.1) -> None:
        self.base_url = base_url
        self.headers = headers
        self.link_id = link_id
        self.interval = interval
        self.statuses: Counter[str] = Counter()
        self.samples: list[str] = []  # one response body per unexpected status
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._n = 0

    def __enter__(self) -> ApiCalls:
        self._thread = threading.Thread(target=self._run, name="api-calls", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url + "/api/v1", headers=self.headers, timeout=5) as client:
            while not self._stop.is_set():
                self._n += 1
                calls = [
                    ("GET", "/links?per_page=5", None),
                    ("GET", f"/links/{self.link_id}", None),
                    ("GET", f"/links/{self.link_id}/stats", None),
                    ("POST", "/links", {"url": f"https://example.com/api-call/{self._n}"}),
                ]
                for method, path, body in calls:
                    try:
                        r = client.request(method, path, json=body)
                    except httpx.HTTPError as e:
                        self.statuses[f"{method} no reply ({type(e).__name__})"] += 1
                        continue
                    self.statuses[f"{method} {r.status_code}"] += 1
                    if r.status_code >= 500 and r.status_code != 503 and len(self.samples) < 5:
                        self.samples.append(f"{method} {path}: {r.status_code} {r.text[:300]}")
                self._stop.wait(self.interval)

    def snapshot(self) -> Counter[str]:
        return Counter(self.statuses)

    def since(self, snapshot: Counter[str]) -> dict[str, int]:
        """The statuses recorded after ``snapshot`` was taken."""
        return dict(self.snapshot() - snapshot)

    def server_errors(self) -> dict[str, int]:
        """Statuses of 500 and above other than 503: the design allows none."""
        return {
            k: n
            for k, n in self.statuses.items()
            if k.split()[-1].isdigit() and int(k.split()[-1]) >= 500 and not k.endswith(" 503")
        }

    def count(self, suffix: str) -> int:
        return sum(n for k, n in self.statuses.items() if k.endswith(suffix))
