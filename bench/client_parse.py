"""
The load generator's own Python per read, without a server or sockets.

Why: in `burst` against heihei the load generator's core, not the server,
sets the pace (bench/README.md, "The load generator"), so its cost per read
is a figure of the harness worth keeping an eye on. This feeds a WSClient
with a fan-out read of `--frames` message frames (what a room member gets in
one `send` of a burst) and with a single frame, both counted by a room Tally,
and prints the microseconds of Python per read.

    /work/venv/bin/python bench/client_parse.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import roomload, wsload  # noqa: E402


def _upgraded_client(tally: roomload.Tally) -> wsload.WSClient:
    client = wsload.WSClient.__new__(wsload.WSClient)  # no event loop needed: nothing is awaited
    client._buf = b""
    client.upgraded = True
    client.closed = False
    client.on_texts = tally.spans_sink_for(0)
    return client


def us_per_read(read: bytes, reads: int) -> float:
    tally = roomload.Tally(expected=reads + 1)  # never completes: the count of every message grows
    client = _upgraded_client(tally)
    start = time.perf_counter()
    for _ in range(reads):
        client.data_received(read)
    elapsed = time.perf_counter() - start
    if tally.deliveries != reads * len(wsload.scan_frames(read)[0]):
        raise SystemExit("the tally missed deliveries")
    return elapsed / reads * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=roomload.SENDERS, help="message frames in a burst read")
    parser.add_argument("--reads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    now = time.monotonic_ns()
    frames = [wsload.server_frame(wsload.OP_TEXT, roomload.peer_message(roomload.message_text(k + 1, now)))
              for k in range(args.frames)]
    for name, read in ((f"read of {args.frames} frames", b"".join(frames)), ("read of 1 frame", frames[0])):
        figures = sorted(us_per_read(read, args.reads) for _ in range(args.runs))
        print(f"{name:>20}: {figures[len(figures) // 2]:.2f} µs of Python per read "
              f"(median of {args.runs}: {', '.join(f'{f:.2f}' for f in figures)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
