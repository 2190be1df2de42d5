"""
Scenario 2 (issue 3's benchmark): one room, N receivers split across TWO
heihei nodes on one Redis, the senders on the first node.

Half the receivers are on the sender's node (delivered directly), half on
the other node (the message crosses Redis pub/sub once, then one prepared
frame for every local receiver). Measures deliveries per second and p50/p99
latency from send to receive, in the same modes as room_fanout.py;
server CPU is the sum over both nodes (Redis reported apart). Results in
bench/results/room_two_nodes.jsonl, plot in room_two_nodes.png.

    /work/venv/bin/python bench/room_two_nodes.py --n 1000 5000 10000 --runs 3
    /work/venv/bin/python bench/room_two_nodes.py --quick
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
    print(f"room on two nodes: N={args.n} runs={args.runs} {common.setup_client_process()}")
    _, summaries, _ = asyncio.run(roomload.run_scenario(
        "room_two_nodes", ["heihei"], args.n, args.runs, 2, args.modes, args.duration, args.rate, args.inflight))
    if not args.no_plot:
        print("plot:", plot.plot_room(summaries, os.path.join(common.RESULTS, "room_two_nodes.png"),
                                      "Room fan-out across two heihei nodes through Redis"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
