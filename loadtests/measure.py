"""Measuring: interleaved wrk rounds, per-worker balance, CPU per request, the results table.

Shared by ``loadtests.bench`` (edge vs bare) and ``loadtests.clients`` (Redis clients vs bare).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.harness import Server, WrkResult, run_wrk

WARMUP_MAX = 60.0  # seconds


def balance(before: Mapping[int, int], after: Mapping[int, int]) -> list[int]:
    """Requests each worker served between two snapshots, largest first."""
    return sorted((after[pid] - before.get(pid, 0) for pid in after), reverse=True)


def format_balance(counts: list[int]) -> str:
    total = sum(counts) or 1
    return " / ".join(f"{100 * c / total:.0f}%" for c in counts) + f"  ({' + '.join(f'{c:,}' for c in counts)})"


@dataclass
class Scenario:
    """One server to measure: its targets, and how long to warm it first.

    With ``warm_requests``, warm-up goes on (in ``warmup``-second runs, up to ``WARMUP_MAX``)
    until every worker has served that many requests: with random paths, each worker of the
    edge has then fetched nearly every code into its own in-process cache.
    """

    server: Server
    warmup: float
    warm_requests: int = 0
    target_ratio: float | None = None
    target_p99_ms: float | None = None
    after_run: Callable[[], object] | None = None  # called after each measured run
    host: str | None = None  # the Host header wrk sends (None: the server's address)
    runs: list[WrkResult] = field(default_factory=list)
    served: list[int] = field(default_factory=list)  # requests per worker over all measured runs
    cpu_us: list[float] = field(default_factory=list)  # worker CPU time per request, per run

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def median(self) -> WrkResult:
        return sorted(self.runs, key=lambda r: r.rps)[len(self.runs) // 2]


@dataclass(frozen=True)
class Load:
    seconds: float
    connections: int
    threads: int
    rounds: int


def warm(wrk: str, paths: Path, sc: Scenario, load: Load) -> None:
    if sc.warmup <= 0:
        return
    start = sc.server.snapshot()
    spent = 0.0
    while True:
        run_wrk(
            wrk,
            sc.server.url,
            paths,
            seconds=sc.warmup,
            connections=load.connections,
            threads=load.threads,
            host=sc.host,
        )
        spent += sc.warmup
        least = min(balance(start, sc.server.snapshot()))
        if least >= sc.warm_requests or spent >= WARMUP_MAX:
            break
    note = f", at least {least:,} requests per worker" if sc.warm_requests else ""
    print(f"  warmed {sc.name} ({spent:.0f}s{note})", flush=True)


def measure(wrk: str, paths: Path, scenarios: list[Scenario], load: Load) -> None:
    """Warm every scenario, then measure them in interleaved rounds.

    Interleaving (bare, edge, bare, edge...) spreads any drift of a shared machine over all
    of them, so the ratios stay fair; each scenario reports its median run.
    """
    for sc in scenarios:
        warm(wrk, paths, sc, load)
    for i in range(load.rounds):
        for sc in scenarios:
            before = sc.server.snapshot()
            cpu_before = cpu_seconds(before)
            result = run_wrk(
                wrk,
                sc.server.url,
                paths,
                seconds=load.seconds,
                connections=load.connections,
                threads=load.threads,
                host=sc.host,
            )
            after = sc.server.snapshot()
            cpu_after = cpu_seconds(after)
            per_worker = balance(before, after)
            if sc.after_run is not None:
                sc.after_run()
            sc.runs.append(result)
            used = sum(cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after)
            sc.cpu_us.append(1e6 * used / max(1, sum(per_worker)))
            sc.served = [a + b for a, b in zip(sc.served, per_worker, strict=True)] if sc.served else per_worker
            print(
                f"  round {i + 1}/{load.rounds}  {sc.name:<16} {result.rps:>9,.0f} req/s"
                f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
                f"  workers {format_balance(per_worker)}",
                flush=True,
            )


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds each live process has used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def round_ratio(sc: Scenario, baseline: Scenario) -> float:
    """Median over rounds of this app's req/s over the baseline's in the same round.

    Pairing runs of one round cancels most of a shared machine's drift between rounds.
    """
    ratios = [r.rps / b.rps for r, b in zip(sc.runs, baseline.runs, strict=True) if b.rps]
    return statistics.median(ratios) if ratios else 0.0


def report(scenarios: list[Scenario], baseline: Scenario) -> list[dict[str, object]]:
    """Print the results table (median runs, median per-round ratios); return its rows for ``--json``.

    ``cpu/req`` is the workers' CPU time per request: unlike req/s it barely moves when other
    processes compete for the cores, so ``cpu x`` (the baseline's cpu/req over this app's)
    estimates the throughput ratio a quiet, server-bound machine would show.
    """
    base_cpu = statistics.median(baseline.cpu_us) if baseline.cpu_us else 0.0
    header = (
        f"{'scenario':<16} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'ratio':>6}"
        f"  {'targets':<34} {'cpu/req':>8} {'cpu x':>6}  "
    )
    print("\n" + header + "per-worker share (requests)")
    print("-" * (len(header) + 28))
    rows: list[dict[str, object]] = []
    for sc in scenarios:
        m = sc.median
        ratio = round_ratio(sc, baseline)
        cpu = statistics.median(sc.cpu_us) if sc.cpu_us else 0.0
        cpu_ratio = base_cpu / cpu if cpu else 0.0
        checks = []
        if sc.target_ratio is not None:
            checks.append(f">= {sc.target_ratio:.1f}x {verdict(ratio >= sc.target_ratio)}")
        if sc.target_p99_ms is not None:
            checks.append(f"p99 <= {sc.target_p99_ms:.0f} ms {verdict(m.p99_ms <= sc.target_p99_ms)}")
        print(
            f"{sc.name:<16} {m.rps:>9,.0f} {m.p50_ms:>7.2f} {m.p99_ms:>7.2f} {m.errors:>6} {ratio:>5.2f}x"
            f"  {', '.join(checks):<34} {cpu:>5.0f} us {cpu_ratio:>5.2f}x  {format_balance(sc.served)}"
        )
        rows.append(
            {
                "scenario": sc.name,
                "rps": round(m.rps),
                "p50_ms": m.p50_ms,
                "p99_ms": m.p99_ms,
                "errors": m.errors,
                "ratio": round(ratio, 3),
                "target_ratio": sc.target_ratio,
                "target_p99_ms": sc.target_p99_ms,
                "runs_rps": [round(r.rps) for r in sc.runs],
                "cpu_us_per_request": round(cpu, 1),
                "cpu_ratio": round(cpu_ratio, 3),
                "per_worker": sc.served,
            }
        )
    return rows


def add_load_args(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark here shares."""
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up per server (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads, the same for every app (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measured runs per app (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument("--links", type=int, default=10_000, help="links seeded and requested (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="one 3 s round after a 2 s warm-up")
    parser.add_argument("--json", type=Path, help="also write the results table to this file")


def load_from_args(args: argparse.Namespace) -> Load:
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 2.0, 1
    return Load(seconds=args.duration, connections=args.connections, threads=args.threads, rounds=args.rounds)


def describe(load: Load, workers: int, links: int, url: str) -> str:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        "unknown CPU",
    )
    return (
        f"machine   {os.cpu_count()} cores, {cpu}; Python {sys.version.split()[0]}\n"
        f"servers   redirector.serve: {workers} workers, SO_REUSEPORT, uvloop, httptools, no access log\n"
        f"load      wrk -t{load.threads} -c{load.connections} on loopback, {load.rounds} round(s) of "
        f"{load.seconds:.0f}s per app, interleaved; {links:,} links requested at random\n"
        f"redis     {url}"
    )


def write_json(path: Path, load: Load, rows: list[dict[str, object]], **extra: object) -> None:
    body = {"load": dataclasses.asdict(load), "results": rows, **extra}
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"results written to {path}")
