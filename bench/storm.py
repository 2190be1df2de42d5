"""
Scenario 4: connection storm. Time to connect and authenticate N clients
(default 10,000) at once against one heihei node (boss login, see
connload.py), and the same number of plain WebSocket handshakes against each
peer for reference (the peers have no authentication step). Reports the time
until every client was ready, connections/s, per-client p50/p99 time from
connect to ready, server CPU µs per connection and every error.

    /work/venv/bin/python bench/storm.py --n 10000 --runs 3
    /work/venv/bin/python bench/storm.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, connload  # noqa: E402

METRICS = ("all_ready_s", "connections_per_s", "ready_p50_ms", "ready_p99_ms", "handshake_p50_ms",
           "handshake_p99_ms", "cpu_us_per_connection", "redis_cpu_us_per_connection", "error_count")


async def run(args) -> None:
    label, session = common.git_label(), common.session_id()
    records: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    for run_no in range(1, args.runs + 1):
        for kind in args.servers:
            load = common.loadavg()
            target = await loop.run_in_executor(None, connload.start_target, kind)
            try:
                await connload.warm_up(target)
                storm = await connload.connect_clients(target, args.n, args.concurrency)
                r = storm["result"]
                await common.close_all(storm["conns"])
            finally:
                await loop.run_in_executor(None, target.stop)
            print(f"  run {run_no}/{args.runs} {kind:<10} {r['ready']}/{args.n} ready in {common.fmt(r['all_ready_s'])} s "
                  f"({common.fmt(r['connections_per_s'], 0)}/s), p50 {common.fmt(r['ready_p50_ms'])} "
                  f"p99 {common.fmt(r['ready_p99_ms'])} ms, {common.fmt(r['cpu_us_per_connection'], 0)} µs CPU/conn, "
                  f"errors {r['errors'] or 0}", flush=True)
            records.append({"type": "run", "scenario": "storm", "session": session, **label, "server": kind,
                            "run": run_no, "loadavg": load, **r})
    summaries = []
    for kind in args.servers:
        rs = [r for r in records if r["server"] == kind]
        s = {"type": "summary", "scenario": "storm", "session": session, **label, "server": kind, "n": args.n,
             "concurrency": args.concurrency, "runs": len(rs), "authenticated": kind == "heihei"}
        s.update(common.summarize_metrics(rs, METRICS))
        summaries.append(s)
    path = common.append_results("storm", records + summaries)
    print(f"\nresults appended to {path} (session {session}, {label['label']})\n")
    rows = []
    for s in summaries:
        g = lambda k, d=2: common.fmt_range(s[k], d) if k in s else "-"  # noqa: E731
        rows.append([common.SERVER_LABELS.get(s["server"], s["server"]),
                     "connect + login" if s["authenticated"] else "connect only", str(args.n),
                     g("all_ready_s"), g("connections_per_s", 0), g("handshake_p50_ms"), g("ready_p50_ms"),
                     g("ready_p99_ms"),
                     g("cpu_us_per_connection", 0), g("error_count", 0)])
    common.print_table(["server", "work", "clients", "all ready s", "conn/s", "handshake p50 ms", "ready p50 ms",
                        "ready p99 ms",
                        "CPU µs/conn", "errors"], rows)
    by = {s["server"]: s for s in summaries}
    if "heihei" in by:
        for peer in [k for k in args.servers if k != "heihei"]:
            r = common.ratio(by["heihei"]["all_ready_s"]["median"], by[peer]["all_ready_s"]["median"])
            c = common.ratio(by["heihei"]["cpu_us_per_connection"]["median"],
                             by[peer]["cpu_us_per_connection"]["median"])
            print(f"heihei/{common.SERVER_LABELS[peer]}: time {common.fmt(r)}×, CPU/conn {common.fmt(c)}× "
                  f"(heihei also authenticates; the peer does not)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=2000, help="clients connecting at the same time")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", nargs="+", default=["heihei", *common.PEER_KINDS],
                        choices=["heihei", *common.PEER_KINDS])
    parser.add_argument("--quick", action="store_true", help="1,000 clients, 1 run")
    parser.add_argument("--results", help="directory for the JSON lines and plots (default bench/results; "
                                          "--quick writes to a temporary directory)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.n, args.runs = 1000, 1
    print(f"connection storm: {args.n} clients, {args.concurrency} at once, {args.runs} runs "
          f"{common.setup_client_process()}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
