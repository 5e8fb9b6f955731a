"""Which Redis client for the edge's cache-miss path? One GET per request, side by side.

    python -m loadtests.clients [--quick] [--only redis-py,resp] [--duration 10] ...
    loadtests/bench --clients ...

Serves ``loadtests.client_apps`` once per client (redis-py asyncio, coredis, valkey-glide,
and the edge's own auto-pipelining ``redirector.resp.client``) plus the bare constant-302 app, all
under the same ``redirector.serve`` settings, and drives each with wrk at random seeded
codes in interleaved rounds. A client that is not installed is skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
from collections.abc import Sequence

from loadtests import harness, measure
from loadtests.client_apps import CLIENTS

# What each client needs importable, and the distributions whose versions the report pins.
REQUIRES = {
    "redis-py": ("redis.asyncio", ("redis", "hiredis")),
    "coredis": ("coredis", ("coredis",)),
    "glide": ("glide", ("valkey-glide",)),
    "resp": ("redirector.resp.client", ("hiredis",)),
}


def available(name: str) -> bool:
    module = REQUIRES[name][0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def versions(names: Sequence[str]) -> str:
    pins = []
    for name in names:
        for dist in REQUIRES[name][1]:
            try:
                pins.append(f"{dist}=={importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                pass
    return ", ".join(dict.fromkeys(pins))


def run(args: argparse.Namespace) -> int:
    """The clients benchmark with already parsed options (shared with ``loadtests.bench``)."""
    load = measure.load_from_args(args)
    wanted = [c.strip() for c in (args.only or ",".join(CLIENTS)).split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(CLIENTS))
    if unknown:
        raise SystemExit(f"unknown client(s) {', '.join(unknown)}; choose from {', '.join(CLIENTS)}")
    clients = []
    for name in wanted:
        if available(name):
            clients.append(name)
        else:
            print(f"skipping {name}: {REQUIRES[name][0]} is not importable (pip install it to compare)")
    wrk = harness.ensure_wrk()
    url = harness.redis_url()
    print(measure.describe(load, args.workers, args.links, url))
    print(f"clients   {versions(clients)}")
    with harness.Run(harness.connect_redis(url)) as session:
        codes = harness.seed_links(session.redis, session.prefix, args.links)
        paths = harness.write_paths(session.workdir, codes)
        print(f"seeded    {len(codes):,} links under {session.prefix!r}")
        bare = measure.Scenario(session.server("bare 302", "loadtests.bare:main", args.workers), args.warmup)
        scenarios = [bare]
        for name in clients:
            env = {"BENCH_CLIENT": name, "REDIS_URL": url}
            server = session.server(f"GET {name}", "loadtests.client_apps:main", args.workers, env)
            harness.check_redirect(server, f"/{codes[0]}")
            scenarios.append(measure.Scenario(server, args.warmup))
        measure.measure(wrk, paths, scenarios, load)
        rows = measure.report(scenarios, bare)
        if args.json:
            measure.write_json(args.json, load, rows, clients=versions(clients))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.clients", description=__doc__.split("\n")[0])
    measure.add_load_args(parser)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(CLIENTS)}")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    harness.run_main(main, "clients")
