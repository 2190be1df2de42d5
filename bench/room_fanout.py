"""
Scenario 1: room fan-out, heihei against the reference peers (issue 8).

Eight senders and N receivers in one room (heihei: a live activity, seed 000;
peers: a broadcast server on Node `ws` and on `websockets` + uvloop, sent the
very frame heihei delivers). Per N and server: closed loop, bursts (one
message from each sender at once), a window of 8 in flight, and a fixed
offered load of 20,000 deliveries/s for latency. Server
CPU µs per delivery is the primary figure. Median of --runs runs with the
range; results in bench/results/room_fanout.jsonl, plot in room_fanout.png.

    /work/venv/bin/python bench/room_fanout.py --n 1000 5000 --runs 3
    /work/venv/bin/python bench/room_fanout.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, plot, roomload  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000, 10000], help="receivers in the room")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", nargs="+", default=["heihei", *common.PEER_KINDS],
                        choices=["heihei", *common.PEER_KINDS])
    parser.add_argument("--modes", nargs="+", default=list(roomload.MODES), choices=list(roomload.MODES))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per mode")
    parser.add_argument("--rate", type=float, default=20000.0, help="deliveries/s offered in the rate mode")
    parser.add_argument("--inflight", type=int, default=8,
                        help="senders in the room (a burst is one message from each); messages in flight in window")
    parser.add_argument("--quick", action="store_true", help="N=200, 1 run, 1 s per mode (a smoke test)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--results", help="directory for the JSON lines and plots (default bench/results; "
                                          "--quick writes to a temporary directory)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.n, args.runs, args.duration = [200], 1, 1.0
    print(f"room fan-out: N={args.n} runs={args.runs} servers={args.servers} {common.setup_client_process()}")
    _, summaries, _ = asyncio.run(roomload.run_scenario(
        "room_fanout", args.servers, args.n, args.runs, 1, args.modes, args.duration, args.rate, args.inflight))
    if not args.no_plot:
        print("plot:", plot.plot_room(summaries, os.path.join(common.RESULTS, "room_fanout.png"),
                                      "Room fan-out, one node (heihei) vs peers"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
