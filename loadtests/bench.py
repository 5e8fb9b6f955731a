"""The edge against a bare Starlette 302, side by side in one run.

    loadtests/bench [--quick] [--duration 10] [--connections 64] [--threads 1] [--rounds 3]
    loadtests/bench --clients [--only redis-py,coredis,glide,resp]   (the Redis-client comparison)

Seeds ``--links`` link records straight into Redis under a fresh key prefix (some with routing
rules), then serves, each with ``redirector.serve`` and identical settings (2 workers,
SO_REUSEPORT, uvloop, httptools, no access log):

- ``bare 302``: ``loadtests.bare``, a Starlette app answering a constant 302;
- ``edge cached``: ``redirector.app:main`` with its in-process cache on, warmed first;
- ``edge miss``: the same edge with ``LOCAL_CACHE=0``, so every request reads Redis;
- ``edge domain``: the cached edge again, every request for a team's domain (``Host:
  go.example.test``, the same codes seeded on it): its ratio must match ``edge cached`` within noise.

wrk drives each on loopback with a random seeded code per request, in interleaved rounds,
and the table shows the median round's requests/s, p50 and p99, the median per-round ratio to
the bare app next to the targets (cached >= 0.9x with p99 <= 5 ms, miss >= 0.5x), and how many requests
each worker process served. Everything it started or wrote is removed at the end, also on
Ctrl-C. Redis: ``REDIS_URL``, else redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Sequence

from loadtests import harness, measure

CACHED_TARGET = 0.9
DOMAIN_HOST = "go.example.test"
MISS_TARGET = 0.5
P99_TARGET_MS = 5.0


def edge_env(url: str, local_cache: bool) -> dict[str, str]:
    return {
        "REDIS_URL": url,
        "LOCAL_CACHE": "1" if local_cache else "0",
        "VISITOR_SALT": os.environ.get("VISITOR_SALT", "bench"),
        "PUBLIC_BASE_URL": "http://127.0.0.1",
    }


def run(args: argparse.Namespace) -> int:
    """The edge benchmark with already parsed options."""
    if importlib.util.find_spec("redirector.app") is None:
        print("redirector.app does not exist yet: only `loadtests/bench --clients` can run")
        return 2
    load = measure.load_from_args(args)
    wrk = harness.ensure_wrk()
    url = harness.redis_url()
    print(measure.describe(load, args.workers, args.links, url))
    with harness.Run(harness.connect_redis(url)) as session:
        codes = harness.seed_links(session.redis, session.prefix, args.links)
        paths = harness.write_paths(session.workdir, codes)
        print(f"seeded    {len(codes):,} links under {session.prefix!r} (every 10th with routing rules)")
        # codes[1] has no rules, so its answer is fixed.
        plain, location = f"/{codes[1]}", f"https://example.com/landing/{codes[1]}"

        bare = measure.Scenario(session.server("bare 302", "loadtests.bare:main", args.workers), args.warmup)
        cached = measure.Scenario(
            session.server("edge cached", "redirector.app:main", args.workers, edge_env(url, True)),
            args.warmup,
            # 4 random requests per code and worker: each worker has fetched ~98% of the codes.
            warm_requests=4 * len(codes),
            target_ratio=CACHED_TARGET,
            target_p99_ms=P99_TARGET_MS,
        )
        miss = measure.Scenario(
            session.server("edge miss", "redirector.app:main", args.workers, edge_env(url, False)),
            args.warmup,
            target_ratio=MISS_TARGET,
        )
        harness.seed_domain(session.redis, session.prefix, DOMAIN_HOST, codes)
        domain = measure.Scenario(
            session.server("edge domain", "redirector.app:main", args.workers, edge_env(url, True)),
            args.warmup,
            warm_requests=4 * len(codes),
            target_ratio=CACHED_TARGET,
            target_p99_ms=P99_TARGET_MS,
            host=DOMAIN_HOST,
        )
        scenarios = [bare, cached, miss, domain]
        for sc in scenarios:
            harness.check_redirect(sc.server, plain, None if sc is bare else location, host=sc.host)

        def drop_events() -> None:
            # The edge appends click events and no worker drains them here: keep Redis small.
            harness.delete_prefix(session.redis, session.prefix, "ev:*")

        cached.after_run = miss.after_run = domain.after_run = drop_events
        measure.measure(wrk, paths, scenarios, load)
        rows = measure.report(scenarios, bare)
        if args.json:
            measure.write_json(args.json, load, rows)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtests/bench", description=__doc__.split("\n")[0])
    measure.add_load_args(parser)
    parser.add_argument("--clients", action="store_true", help="compare Redis clients instead (loadtests.clients)")
    parser.add_argument("--only", help="with --clients: comma-separated subset of clients")
    args = parser.parse_args(argv)
    if args.clients:
        from loadtests import clients

        return clients.run(args)
    return run(args)


if __name__ == "__main__":
    harness.run_main(main, "bench")
