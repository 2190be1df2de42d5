"""
Scenario 3: 1:1 messages between users on two different heihei nodes,
through Redis, at a fixed rate (default 1,000 messages/s), for latency.

Uses the boss protocol (seed 002, `[boss] insecure_login = true` in the bench
config): P pairs of users; in each pair the sender is on one node and the
receiver on the other (half the pairs each way, so both nodes send and
receive). Senders log in with `login_<id>` and send
`text_<to>_~<seq>~<send ns>~<padding>_unicast_{}`; a receiver gets
`text_<from>_<content>_unicast_<from>_<timet>_{}` and heihei confirms the
delivery with a WebSocket ping (answered by the load generator) before it
drops the message from the receiver's inbox. The whole path is measured:
sender's node (history, presence lookup, inbox) -> Redis pub/sub -> the
receiver's node -> the receiver. Latency from send to receive, p50/p99/max,
and server CPU per message (both nodes; Redis apart). Messages heihei refuses
(`error_429` when a sender's frames queue up faster than its node handles
them) are counted as refused, never as lost. Goals (issue 8):
p50 <= 1 ms, p99 <= 5 ms.

    /work/venv/bin/python bench/unicast.py --runs 3
    /work/venv/bin/python bench/unicast.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from array import array
from collections import Counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, wsload  # noqa: E402

TEXT_CHARS = 64
MARK = b"_~"
GOALS = {"p50_ms": 1.0, "p99_ms": 5.0}


def content(seq: int, ts_ns: int, chars: int = TEXT_CHARS) -> str:
    head = f"~{seq}~{ts_ns}~"
    return head + "x" * max(0, chars - len(head))


def parse_delivery(payload: bytes) -> tuple[int, int] | None:
    """(seq, send ns) of a delivered `text_<from>_~seq~ns~..._unicast_...` frame, else None."""
    if not payload.startswith(b"text_"):
        return None
    i = payload.find(MARK)
    if i < 0:
        return None
    j = payload.find(b"~", i + 2)
    k = payload.find(b"~", j + 1)
    if j < 0 or k < 0:
        return None
    return int(payload[i + 2:j]), int(payload[j + 1:k])


async def login(url: str, user: str) -> wsload.WSClient:
    conn = await wsload.WSClient.connect(url, timeout=30)
    conn.send_text(f"login_{user}")
    answer = await conn.next_text(30)
    if answer != b"ok":
        raise RuntimeError(f"boss login of {user} refused: {answer[:200]!r}")
    return conn


async def measure(target: common.Target, pairs: int, rate: float, duration_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    urls = target.urls
    senders, receivers = [], []
    for i in range(pairs):
        a, b = (0, 1) if i % 2 == 0 else (1, 0)
        senders.append(await login(urls[a], f"bs{i}"))
        receivers.append(await login(urls[b], f"br{i}"))
    await asyncio.sleep(0.5)
    latencies = array("q")
    state = {"delivered": 0, "others": 0, "last_t": 0, "seen": set()}
    refusals: Counter = Counter()
    waiters: dict[int, asyncio.Future] = {}

    def sink(payload: bytes, t: int) -> None:
        stamp = parse_delivery(payload)
        if stamp is None:
            if payload.startswith(b"error_"):
                refusals[payload[:80].decode("utf-8", "replace")] += 1  # heihei said no (e.g. 429)
            else:
                state["others"] += 1
            return
        seq, ts = stamp
        if seq in state["seen"]:
            state["others"] += 1  # a duplicate would show here
            return
        state["seen"].add(seq)
        latencies.append(t - ts)
        state["delivered"] += 1
        state["last_t"] = t
        waiter = waiters.pop(seq, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    for conn in senders + receivers:
        conn.drain_texts()
        conn.on_text = sink
    seq = 0

    def send(pair: int) -> int:
        nonlocal seq
        seq += 1
        senders[pair].send_text(f"text_br{pair}_{content(seq, time.monotonic_ns())}_unicast_{{}}")
        return seq

    # warm-up: one message per pair, each delivered before the measurement starts
    for pair in range(pairs):
        waiters[send(pair)] = loop.create_future()
    await asyncio.wait_for(asyncio.gather(*waiters.values()), 30)
    del latencies[:]
    state.update(delivered=0, others=0, seen=set())
    refusals.clear()

    first_seq = seq + 1
    period = 1.0 / rate
    total = int(rate * duration_s)
    done = loop.create_future()
    redis_port = target.cluster.redis_port
    calls0 = common.redis_command_calls(redis_port)
    cpu0, aux0, client0 = target.cpu(), target.aux_cpu(), common.self_cpu()
    t0 = time.monotonic_ns()
    start = loop.time()

    def tick(k: int) -> None:
        # catch up if the loop was late: the offered rate stays `rate`
        now = loop.time()
        while k < total and start + k * period <= now + 0.0005:
            send(k % pairs)
            k += 1
        if k < total:
            loop.call_at(start + k * period, tick, k)
        elif not done.done():
            done.set_result(None)

    tick(0)
    await done
    deadline = time.monotonic() + 30
    while state["delivered"] < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu1, aux1, client1 = target.cpu(), target.aux_cpu(), common.self_cpu()
    t_end = time.monotonic_ns()
    delivered = state["delivered"]
    calls = common.calls_delta(calls0, common.redis_command_calls(redis_port), delivered)
    elapsed = ((state["last_t"] or t_end) - t0) / 1e9
    result = {
        "pairs": pairs, "offered_rate": rate, "messages": total, "delivered": delivered,
        "missing": total - delivered, "refused": sum(refusals.values()),
        "lost": total - delivered - sum(refusals.values()), "refusals": dict(refusals.most_common(5)),
        "other_frames": state["others"], "first_seq": first_seq,
        "elapsed_s": elapsed, "delivered_per_s": delivered / elapsed if elapsed > 0 else None,
        "server_cpu_s": cpu1 - cpu0, "cpu_us_per_message": (cpu1 - cpu0) / delivered * 1e6 if delivered else None,
        "client_cpu_util": (client1 - client0) / ((t_end - t0) / 1e9),
        "redis_calls_per_message": round(sum(calls.values()), 2), "redis_calls": calls,
        **common.latency_summary(latencies),
    }
    for name, before in aux0.items():
        result[f"{name}_cpu_us_per_message"] = (aux1[name] - before) / delivered * 1e6 if delivered else None
    await common.close_all(senders + receivers)
    return result


METRICS = ("p50_ms", "p99_ms", "max_ms", "cpu_us_per_message", "redis_cpu_us_per_message", "delivered_per_s",
           "missing", "refused", "client_cpu_util", "redis_calls_per_message")


async def run(args) -> list[dict[str, Any]]:
    label, session = common.git_label(), common.session_id()
    records = []
    for run_no in range(1, args.runs + 1):
        load = common.loadavg()
        target = await asyncio.get_running_loop().run_in_executor(
            None, common.heihei_target, 2, "boss", common.heihei_config(), "/entry")
        try:
            r = await measure(target, args.pairs, args.rate, args.duration)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, target.stop)
        print(f"  run {run_no}/{args.runs}: p50 {common.fmt(r['p50_ms'])} p99 {common.fmt(r['p99_ms'])} "
              f"max {common.fmt(r['max_ms'])} ms, {common.fmt(r['cpu_us_per_message'])} µs CPU/message, "
              f"{r['delivered']}/{r['messages']} delivered, {r['refused']} refused {r['refusals'] or ''}\n"
              f"    Redis calls per delivered message: {r['redis_calls_per_message']} {r['redis_calls']}", flush=True)
        records.append({"type": "run", "scenario": "unicast", "session": session, **label, "server": "heihei",
                        "nodes": 2, "run": run_no, "protocol": "boss", "loadavg": load, **r})
    summary = {"type": "summary", "scenario": "unicast", "session": session, **label, "server": "heihei",
               "nodes": 2, "runs": len(records), "pairs": args.pairs, "offered_rate": args.rate,
               "duration_s": args.duration}
    for metric in METRICS:
        summary[metric] = common.median_range([r.get(metric) for r in records])
    summary["goals_met"] = {k: summary[k]["median"] is not None and summary[k]["median"] <= v
                            for k, v in GOALS.items()}
    path = common.append_results("unicast", records + [summary])
    print(f"\nresults appended to {path} (session {session}, {label['label']})\n")
    common.print_table(
        ["messages/s", "pairs", "p50 ms", "p99 ms", "max ms", "CPU µs/message (2 nodes)", "redis µs/message",
         "missing", "refused"],
        [[common.fmt(args.rate, 0), str(args.pairs), common.fmt_range(summary["p50_ms"]),
          common.fmt_range(summary["p99_ms"]), common.fmt_range(summary["max_ms"]),
          common.fmt_range(summary["cpu_us_per_message"]), common.fmt_range(summary["redis_cpu_us_per_message"]),
          common.fmt(summary["missing"]["median"], 0), common.fmt(summary["refused"]["median"], 0)]])
    print("\ngoals (issue 8): " + ", ".join(f"{k} <= {v} ms: {'met' if summary['goals_met'][k] else 'NOT met'}"
                                            for k, v in GOALS.items()))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second, all pairs together")
    parser.add_argument("--pairs", type=int, default=20, help="sender/receiver pairs (each on two nodes)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s, 1 run")
    parser.add_argument("--results", help="directory for the JSON lines and plots (default bench/results; "
                                          "--quick writes to a temporary directory)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.runs, args.duration = 1, 2.0
    print(f"1:1 across two nodes: {args.rate:g} msg/s, {args.pairs} pairs, {args.duration:g} s, "
          f"{args.runs} runs {common.setup_client_process()}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
