"""
Scenario 5: memory per idle authenticated connection. N clients (default
10,000) connect and log in to one heihei node (boss login, see
connload.py) and stay idle; the node's RSS growth over its warmed-up
baseline, divided by N, is the figure (Redis's own growth, for the
presence entries, is reported apart). The peers hold the same number of
plain WebSocket connections for reference. Goal (issue 8): <= 12 kB per
connection on heihei, 10,000 connections with no errors.

    /work/venv/bin/python bench/idle_memory.py --n 10000 --runs 3
    /work/venv/bin/python bench/idle_memory.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, connload  # noqa: E402
from bench.cluster import rss_bytes  # noqa: E402

GOAL_BYTES = 12 * 1024
METRICS = ("rss_per_connection_bytes", "redis_rss_per_connection_bytes", "baseline_rss_bytes", "loaded_rss_bytes",
           "error_count")


async def measure(target: common.Target, n: int, concurrency: int, idle_s: float) -> dict[str, Any]:
    await connload.warm_up(target)
    base = target.rss()
    redis_base = {k: rss_bytes(pid) for k, pid in target.aux_pids.items()}
    storm = await connload.connect_clients(target, n, concurrency)
    await asyncio.sleep(idle_s)  # idle: only the protocol's own timers run
    loaded = target.rss()
    ready = storm["result"]["ready"]
    result = {"n": n, "ready": ready, "errors": storm["result"]["errors"],
              "error_count": storm["result"]["error_count"], "idle_s": idle_s, "baseline_rss_bytes": base,
              "loaded_rss_bytes": loaded,
              "rss_per_connection_bytes": (loaded - base) / ready if ready else None,
              "authenticated": target.kind == "heihei"}
    for name, pid in target.aux_pids.items():
        result[f"{name}_rss_per_connection_bytes"] = (rss_bytes(pid) - redis_base[name]) / ready if ready else None
    await common.close_all(storm["conns"])
    return result


async def run(args) -> None:
    label, session = common.git_label(), common.session_id()
    records: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    for run_no in range(1, args.runs + 1):
        for kind in args.servers:
            load = common.loadavg()
            target = await loop.run_in_executor(None, connload.start_target, kind)
            try:
                r = await measure(target, args.n, args.concurrency, args.idle)
            finally:
                await loop.run_in_executor(None, target.stop)
            print(f"  run {run_no}/{args.runs} {kind:<10} {r['ready']}/{args.n} connections: "
                  f"{r['rss_per_connection_bytes'] / 1024:.2f} kB RSS each "
                  f"(baseline {r['baseline_rss_bytes'] / 2**20:.1f} MiB -> {r['loaded_rss_bytes'] / 2**20:.1f} MiB), "
                  f"errors {r['errors'] or 0}", flush=True)
            records.append({"type": "run", "scenario": "idle_memory", "session": session, **label, "server": kind,
                            "run": run_no, "loadavg": load, **r})
    summaries = []
    for kind in args.servers:
        rs = [r for r in records if r["server"] == kind]
        s = {"type": "summary", "scenario": "idle_memory", "session": session, **label, "server": kind,
             "n": args.n, "runs": len(rs), "authenticated": kind == "heihei"}
        s.update(common.summarize_metrics(rs, METRICS))
        summaries.append(s)
    path = common.append_results("idle_memory", records + summaries)
    print(f"\nresults appended to {path} (session {session}, {label['label']})\n")
    kb = lambda stat: {k: (v / 1024 if isinstance(v, (int, float)) else v) for k, v in stat.items()}  # noqa: E731
    rows = []
    for s in summaries:
        kb_runs = {**kb(s["rss_per_connection_bytes"]),
                   "runs": [v / 1024 for v in s["rss_per_connection_bytes"]["runs"] if v is not None]}
        redis = s.get("redis_rss_per_connection_bytes")
        rows.append([common.SERVER_LABELS.get(s["server"], s["server"]),
                     "logged in" if s["authenticated"] else "handshake only", str(args.n),
                     common.fmt_range(kb_runs), common.fmt(redis["median"] / 1024) if redis else "-",
                     common.fmt(s["error_count"]["median"], 0)])
    common.print_table(["server", "connections", "N", "RSS kB/conn", "redis kB/conn", "errors"], rows)
    by = {s["server"]: s for s in summaries}
    if "heihei" in by:
        per = by["heihei"]["rss_per_connection_bytes"]["median"]
        print(f"\ngoal (issue 8): <= {GOAL_BYTES // 1024} kB per idle authenticated connection: "
              f"{'met' if per is not None and per <= GOAL_BYTES else 'NOT met'}")
        for peer in [k for k in args.servers if k != "heihei"]:
            r = common.ratio(per, by[peer]["rss_per_connection_bytes"]["median"])
            print(f"heihei/{common.SERVER_LABELS[peer]}: {common.fmt(r)}× RSS per connection")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before measuring")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", nargs="+", default=["heihei", *common.PEER_KINDS],
                        choices=["heihei", *common.PEER_KINDS])
    parser.add_argument("--quick", action="store_true", help="1,000 connections, 1 run")
    parser.add_argument("--results", help="directory for the JSON lines and plots (default bench/results; "
                                          "--quick writes to a temporary directory)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.n, args.runs, args.idle = 1000, 1, 1.0
    print(f"idle memory: {args.n} connections, {args.runs} runs {common.setup_client_process()}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
