"""
Scenario 6 (issue 18): one heihei live room under a live show's mix.

N viewers (signed-in heihei users, one push-channel connection each, spread
round robin over the nodes) join one live at a fixed rate (`--join-rate`,
500/s), then the room gets, for `--duration` seconds:
- chat: `--chat-rate` (20) texts/s through /api/msg/send-msg from 20 senders,
- likes: `--like-rate` (200) /api/live/live-like/s from the viewers,
- gifts: `--gift-rate` (5) gift items/s and system items `--system-rate` (1)/s
  through /messageserver send-msg.action `toLive` (how issue 19's buy-gift and
  the back ends send them),
all over HTTP to the nodes, as the shipped client and back ends do.

Measured (the load generator's clock, CLOCK_MONOTONIC, stamps in the items:
`~c<seq>~<ns>~` in a text, `~g...` in a gift's gift_uuid, `~s...` in a system
text):
- join-live → first room item (the online count each joiner gets) p50/p99;
- per kind: deliveries (each item reaching each viewer), and for gifts and
  system items that every viewer got every one (100%), latency p50/p99/max;
- likes: like items delivered and the likes they carry (coalesced: count);
- node CPU over the mixed phase (each node's utime+stime; % of one core) and
  per item delivery; frames per viewer per second.
Viewers' heart-beats are left out of the mix (heartbeat_timeout_s is raised):
the goals name chat, likes and gifts.

The same delivered mix against Node `ws` (`--servers heihei ws`): a producer
connection sends what heihei's lanes let through (chat within the budget, one
like item per second, every gift and system item), one frame per item, and ws
broadcasts each to every client. CPU per delivery is compared.

Layout as bench/README.md: servers and redis-server on CPU 0, this process on CPU 1.

    /work/venv/bin/python bench/live_room.py --n 10000 --runs 3
    /work/venv/bin/python bench/live_room.py --n 50000 --nodes 4 --servers heihei --runs 1
    /work/venv/bin/python bench/live_room.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from array import array
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, wsload  # noqa: E402
from bench.httpload import HttpPool  # noqa: E402

SCENARIO = "live_room"
SECRET = "bench-server-secret"
STAMP = re.compile(rb"~([cgs])(\d+)~(\d+)~")
LIKE = re.compile(rb'"msgType":"like"[^{}]*?"count":(\d+)')
KINDS = ("c", "g", "s")
KIND_NAMES = {"c": "chat", "g": "gift", "s": "system"}
CHAT_SENDERS = 20
TEXT_CHARS = 40


def stamp(kind: str, seq: int) -> str:
    head = f"~{kind}{seq}~{time.monotonic_ns()}~"
    return head + "x" * max(0, TEXT_CHARS - len(head))


class LiveTally:
    """What the viewers received, from the load generator's reads.

    Every connection counts the items it gets (a byte count per kind, cheap); one connection in
    `sample_every` also reads each item's stamp for its latency and keeps per-item counts, so the
    load generator's own CPU stays well below its core (its queueing would be charged to the server)."""

    def __init__(self, n: int, sample_every: int = 10) -> None:
        self.n = n
        self.sample_every = max(1, sample_every)
        self.sampled = len(range(0, n, self.sample_every))
        self.join_sent = array("q", [0]) * n
        self.join_lat = array("q")
        self.joined = bytearray(n)
        self.counting = False
        self.reset()

    def reset(self) -> None:
        self.frames = 0
        self.deliveries = {k: 0 for k in KINDS}
        self.latencies = {k: array("q") for k in KINDS}
        self.per_item = {k: {} for k in KINDS}
        self.like_items = 0
        self.like_sum = 0
        self.sampled_like_sum = 0
        self.others = 0

    def sink(self, i: int):
        finditer, like = STAMP.finditer, LIKE.finditer
        sampled = i % self.sample_every == 0
        marks = [(k, b"~" + k.encode()) for k in KINDS]

        def on_texts(data: bytes, spans, t: int) -> None:
            for start, end in spans:
                if self.join_sent[i] and not self.joined[i] and data.find(b'"live-users"', start, end) >= 0:
                    self.joined[i] = 1
                    self.join_lat.append(t - self.join_sent[i])
                if not self.counting:
                    continue
                self.frames += 1
                if not sampled:
                    found = 0
                    for kind, mark in marks:
                        n = data.count(mark, start, end)
                        self.deliveries[kind] += n
                        found += n
                    likes = data.count(b'"msgType":"like"', start, end)
                    self.like_items += likes
                    if not found and not likes:
                        self.others += 1
                    continue
                found = False
                for m in finditer(data, start, end):
                    found = True
                    kind = m.group(1).decode()
                    self.deliveries[kind] += 1
                    self.latencies[kind].append(t - int(m.group(3)))
                    seen = self.per_item[kind]
                    seq = int(m.group(2))
                    seen[seq] = seen.get(seq, 0) + 1
                for m in like(data, start, end):
                    found = True
                    self.like_items += 1
                    self.sampled_like_sum += int(m.group(1))
                if not found:
                    self.others += 1

        return on_texts


# -- heihei ---------------------------------------------------------------------------------------------

def heihei_config(wechat_url: str, lane_flush_s: float) -> str:
    return common.heihei_config(
        wechat_url,
        heihei={"server_secret": SECRET, "wechat_api_url": wechat_url, "im_rate_per_second": 1000.0,
                "im_rate_burst": 100000},
        channel={"max_connections": 60000},
        lives={"heartbeat_timeout_s": 86400.0, "lane_flush_s": lane_flush_s, "count_interval_s": 2.0})


async def sign_in(pool: HttpPool, name: str) -> tuple[str, str]:
    body = await pool.post("/api/user/sign-in", {"accountSource": "Wechat", "accountToken": f"AT-{name}",
                                                 "openId": f"o-{name}"})
    if body.get("errorcode") != 0:
        raise RuntimeError(f"sign-in of {name} failed: {body}")
    return body["token"], str(body["userInfo"]["id"])


async def bounded(n: int, make, concurrency: int) -> list:
    gate = asyncio.Semaphore(concurrency)
    out: list = [None] * n

    async def one(i: int) -> None:
        async with gate:
            out[i] = await make(i)

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def at_rate(rate: float, duration_s: float, fire) -> int:
    """Call fire(k) rate times per second for duration_s (each call's work in its own task)."""
    if rate <= 0:
        return 0
    loop = asyncio.get_running_loop()
    start, period, k = loop.time(), 1.0 / rate, 0
    tasks = set()
    while True:
        at = start + k * period
        if at - start >= duration_s:
            break
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(fire(k))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        k += 1
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    return k


def message_server_body(data: dict[str, Any]) -> dict[str, str]:
    from heihei.web.kit.auth import sign

    params = {"data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}
    params["signature"] = sign(SECRET, params)
    return params


async def run_heihei(args, n: int) -> dict[str, Any]:
    wechat = await common.FakeWeChat().start()
    target = common.heihei_target(args.nodes, "http", heihei_config(wechat.url, args.lane_flush), "/ws/channel")
    cluster = target.cluster
    if args.redis_cpu is not None:
        common.pin(cluster.redis.pid, args.redis_cpu)
    # one pool per kind of caller (viewers' likes, chat senders, the back end's gifts): a caller waits for
    # the server, never for another kind's requests in this process
    pools = [HttpPool(node.url("http", "/", "http"), size=48) for node in cluster.nodes]
    like_pools = [HttpPool(node.url("http", "/", "http"), size=48) for node in cluster.nodes]
    chat_pools = [HttpPool(node.url("http", "/", "http"), size=16) for node in cluster.nodes]
    server_pools = [HttpPool(node.url("http", "/", "http"), size=16) for node in cluster.nodes]
    answered = {"chat": array("q"), "like": array("q"), "gift": array("q"), "system": array("q")}
    conns: list = []
    try:
        tag = f"{int(time.time())}{random.randrange(1000)}"
        anchor_token, anchor = await sign_in(pools[0], f"anchor{tag}")
        live = (await pools[0].post("/api/live/create-live", {"token": anchor_token, "title": "bench"}))["live"]
        live_id = live["liveId"]
        await pools[0].post("/api/live/start-live", {"token": anchor_token, "liveId": live_id})
        t_setup = time.monotonic()
        viewers = await bounded(n, lambda i: sign_in(pools[i % len(pools)], f"v{tag}-{i}"), 64)
        senders = await bounded(CHAT_SENDERS, lambda i: sign_in(pools[i % len(pools)], f"s{tag}-{i}"), 16)
        for k, (token, _) in enumerate(senders):
            await pools[k % len(pools)].post("/api/live/join-live", {"token": token, "liveId": live_id})
        sign_in_s = time.monotonic() - t_setup
        urls = target.urls
        tally = LiveTally(n, args.sample_every)

        async def connect(i: int):
            conn = await wsload.WSClient.connect(f"{urls[i % len(urls)]}?token={viewers[i][0]}", timeout=60)
            await conn.next_text(60)  # the unread count every connection starts with
            conn.on_texts = tally.sink(i)
            return conn

        conns = await wsload.open_many(n, connect, concurrency=200)

        # joins at a fixed rate; each joiner's first room item (its online count) is timed
        async def join(k: int) -> None:
            tally.join_sent[k] = time.monotonic_ns()
            body = await pools[k % len(pools)].post("/api/live/join-live",
                                                    {"token": viewers[k][0], "liveId": live_id})
            if body.get("errorcode") != 0:
                raise RuntimeError(f"join-live refused: {body}")

        t_join = time.monotonic()
        joins = await at_rate(args.join_rate, n / args.join_rate, join)
        join_wall = time.monotonic() - t_join
        await asyncio.sleep(3.0)  # the last joins' counts, and the room's count pushes, pass
        joined = sum(tally.joined)

        # the mixed phase
        counters = {"chat": 0, "likes": 0, "gifts": 0, "system": 0, "refused": 0}

        async def chat(k: int) -> None:
            token = senders[k % CHAT_SENDERS][0]
            t = time.monotonic_ns()
            body = await chat_pools[k % len(pools)].post("/api/msg/send-msg", {"token": token, "roomId": live_id,
                                                                               "text": stamp("c", k)})
            answered["chat"].append(time.monotonic_ns() - t)
            counters["chat" if body.get("errorcode") == 0 else "refused"] += 1

        async def like(k: int) -> None:
            i = random.randrange(n)
            t = time.monotonic_ns()
            body = await like_pools[i % len(pools)].post("/api/live/live-like", {"token": viewers[i][0],
                                                                                 "liveId": live_id, "type": 1})
            answered["like"].append(time.monotonic_ns() - t)
            counters["likes" if body.get("errorcode") == 0 else "refused"] += 1

        def server_item(kind: str, k: int) -> dict[str, Any]:
            if kind == "g":
                return {"msgType": "gift", "amount": 1, "giftId": 7, "roomId": live_id, "fromUserId": int(anchor),
                        "fromUserName": "bench", "gender": "Male", "totalTicket": k, "gift_uuid": stamp("g", k),
                        "msgId": k}
            return {"msgType": "system", "text": stamp("s", k), "msgId": k}

        async def to_live(kind: str, k: int) -> None:
            data = {"timeStamp": int(time.time() * 1000), "type": "toLive", "liveId": str(live_id),
                    "msg": server_item(kind, k)}
            t = time.monotonic_ns()
            body = await server_pools[k % len(pools)].post("/messageserver/api/msg/send-msg.action",
                                                           message_server_body(data))
            answered["gift" if kind == "g" else "system"].append(time.monotonic_ns() - t)
            counters["gifts" if kind == "g" else "system"] += body.get("errorcode") == 0
            if body.get("errorcode") != 0:
                counters["refused"] += 1

        tally.reset()
        tally.counting = True
        series = asyncio.ensure_future(cpu_series([node.pid for node in cluster.nodes]))
        cpu0 = {node.name: common.cpu_seconds(node.pid) for node in cluster.nodes}
        redis0 = common.cpu_seconds(cluster.redis.pid)
        client0 = common.self_cpu()
        t0 = time.monotonic()
        await asyncio.gather(
            at_rate(args.chat_rate, args.duration, chat), at_rate(args.like_rate, args.duration, like),
            at_rate(args.gift_rate, args.duration, lambda k: to_live("g", k)),
            at_rate(args.system_rate, args.duration, lambda k: to_live("s", k)))
        sending_s = time.monotonic() - t0
        await asyncio.sleep(2.0 + args.lane_flush)  # the last items (and the last like interval) arrive
        elapsed = time.monotonic() - t0
        cpu = {node.name: common.cpu_seconds(node.pid) - cpu0[node.name] for node in cluster.nodes}
        redis_cpu = common.cpu_seconds(cluster.redis.pid) - redis0
        client_util = (common.self_cpu() - client0) / elapsed
        tally.counting = False
        series.cancel()
        return summarize("heihei", args, n, tally, counters, cpu, redis_cpu, client_util, elapsed, sending_s,
                         extra={"cpu_pct_per_s": SERIES.pop(), **{f"http_{k}_{m}": v for k, lat in answered.items()
                                   for m, v in common.latency_summary(lat).items()},
                                "joins": joins, "joined": joined, "join_wall_s": join_wall,
                                "join_rate_achieved": joins / join_wall if join_wall else None,
                                "sign_in_s": sign_in_s, **prefixed("join_", common.latency_summary(tally.join_lat))})
    finally:
        await common.close_all(conns)
        for pool in pools + like_pools + chat_pools + server_pools:
            pool.close()
        target.stop()
        await wechat.stop()


SERIES: list = []


async def cpu_series(pids: list[int]) -> None:
    """Each node's and this process's CPU % per second while the phase runs (SERIES[-1])."""
    out: dict[str, list[float]] = {"client": [], **{str(p): [] for p in pids}}
    SERIES.append(out)
    last = {p: common.cpu_seconds(p) for p in pids}
    last_client = common.self_cpu()
    while True:
        await asyncio.sleep(1.0)
        for p in pids:
            now = common.cpu_seconds(p)
            out[str(p)].append(round((now - last[p]) * 100))
            last[p] = now
        now = common.self_cpu()
        out["client"].append(round((now - last_client) * 100))
        last_client = now


def prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {prefix + k: v for k, v in values.items()}


def summarize(server: str, args, n: int, tally: LiveTally, counters: dict, cpu: dict[str, float], redis_cpu,
              client_util: float, elapsed: float, sending_s: float, extra: dict | None = None) -> dict[str, Any]:
    item_deliveries = sum(tally.deliveries.values()) + tally.like_items
    total_cpu = sum(cpu.values())
    record: dict[str, Any] = {
        "server": server, "n": n, "nodes": len(cpu), "duration_s": args.duration, "elapsed_s": elapsed,
        "sending_s": sending_s, "sent": counters, "frames": tally.frames, "other_frames": tally.others,
        "frames_per_viewer_per_s": tally.frames / n / elapsed if n else None,
        "item_deliveries": item_deliveries, "like_items": tally.like_items,
        "likes_per_viewer": tally.sampled_like_sum / tally.sampled if tally.sampled else None,
        "latency_sample": tally.sampled,
        "server_cpu_s": total_cpu, "node_cpu_pct": {k: round(v / elapsed * 100, 1) for k, v in cpu.items()},
        "max_node_cpu_pct": max(v / elapsed * 100 for v in cpu.values()) if cpu else None,
        "cpu_us_per_delivery": total_cpu / item_deliveries * 1e6 if item_deliveries else None,
        "cpu_us_per_frame": total_cpu / tally.frames * 1e6 if tally.frames else None,
        "redis_cpu_s": redis_cpu, "client_cpu_util": client_util,
        "redis_pinned_cpu": getattr(args, "redis_cpu", None) if server == "heihei" else None,
    }
    for kind in KINDS:
        name = KIND_NAMES[kind]
        sent = counters.get({"c": "chat", "g": "gifts", "s": "system"}[kind], 0)
        seen = tally.per_item[kind]
        record[f"{name}_deliveries"] = tally.deliveries[kind]
        record[f"{name}_items_seen"] = len(seen)
        record[f"{name}_complete_in_sample"] = sum(1 for v in seen.values() if v >= tally.sampled)
        record[f"{name}_delivered_pct"] = (100.0 * tally.deliveries[kind] / (sent * n)) if sent and n else None
        record.update(prefixed(f"{name}_", common.latency_summary(tally.latencies[kind])))
    record.update(extra or {})
    return record


# -- Node ws with the delivered mix -------------------------------------------------------------------------

def peer_item(kind: str, k: int) -> bytes:
    """One item as heihei frames it (`[{"msg": ..., "timeStamp": ...}]`), the same size."""
    if kind == "c":
        msg = {"msgType": "text", "fromUserId": 10021, "fromUserName": "s1-1", "gender": "Unspecified",
               "birthDay": "", "coverUrl": "", "text": stamp("c", k), "msgId": 1872341234567890000 + k,
               "roomId": 1000000001}
    elif kind == "g":
        msg = {"msgType": "gift", "amount": 1, "giftId": 7, "roomId": 1000000001, "fromUserId": 10001,
               "fromUserName": "bench", "gender": "Male", "totalTicket": k, "gift_uuid": stamp("g", k), "msgId": k}
    elif kind == "s":
        msg = {"msgType": "system", "text": stamp("s", k), "msgId": k}
    else:
        msg = {"msgType": "like", "text": "点亮了", "type": 1, "fromUserId": 10021, "fromUserName": "v1-1",
               "gender": "Unspecified", "birthDay": "", "coverUrl": "", "roomId": 1000000001, "count": 200}
    return json.dumps([{"msg": msg, "timeStamp": int(time.time())}], ensure_ascii=False,
                      separators=(",", ":")).encode()


async def run_ws(args, n: int, delivered_chat_rate: float) -> dict[str, Any]:
    target = common.peer_target("ws")
    conns: list = []
    try:
        tally = LiveTally(n, args.sample_every)
        conns = await wsload.open_many(n, lambda i: wsload.WSClient.connect(target.urls[0], timeout=60), 200)
        producer = await wsload.WSClient.connect(target.urls[0], timeout=30)
        producer.on_texts = lambda data, spans, t: None
        for i, conn in enumerate(conns):
            conn.on_texts = tally.sink(i)
        await asyncio.sleep(1.0)
        counters = {"chat": 0, "likes": 0, "gifts": 0, "system": 0, "refused": 0}

        def sender(kind: str, counter: str):
            async def fire(k: int) -> None:
                producer.send_text(peer_item(kind, k))
                counters[counter] += 1
            return fire

        tally.reset()
        tally.counting = True
        cpu0, client0, t0 = target.cpu(), common.self_cpu(), time.monotonic()
        await asyncio.gather(
            at_rate(delivered_chat_rate, args.duration, sender("c", "chat")),
            at_rate(1.0, args.duration, sender("l", "likes")),
            at_rate(args.gift_rate, args.duration, sender("g", "gifts")),
            at_rate(args.system_rate, args.duration, sender("s", "system")))
        sending_s = time.monotonic() - t0
        await asyncio.sleep(2.0)
        elapsed = time.monotonic() - t0
        cpu = {"ws": target.cpu() - cpu0}
        client_util = (common.self_cpu() - client0) / elapsed
        tally.counting = False
        return summarize("ws", args, n, tally, counters, cpu, None, client_util, elapsed, sending_s)
    finally:
        await common.close_all(conns)
        target.stop()


# -- the runs --------------------------------------------------------------------------------------------

METRICS = ("sending_s", "http_like_p99_ms", "http_gift_p99_ms", "cpu_us_per_delivery", "cpu_us_per_frame",
           "max_node_cpu_pct", "gift_p50_ms", "gift_p99_ms", "gift_max_ms", "gift_delivered_pct", "system_p99_ms", "system_delivered_pct", "chat_p50_ms",
           "chat_p99_ms", "chat_deliveries", "item_deliveries", "frames_per_viewer_per_s", "likes_per_viewer",
           "join_p50_ms", "join_p99_ms", "join_rate_achieved", "client_cpu_util", "redis_cpu_s")


async def main_async(args) -> list[dict[str, Any]]:
    session = common.session_id()
    label = common.git_label()
    records = []
    for run in range(args.runs):
        for server in args.servers:
            for n in args.n:
                load = common.loadavg()
                if server == "heihei":
                    record = await run_heihei(args, n)
                else:
                    # what heihei's lanes let through: the chat within the room's budget
                    record = await run_ws(args, n, min(args.chat_rate, 20.0))
                record.update({"type": "run", "scenario": SCENARIO, "session": session, "run": run, "load": load,
                               "lane_flush_s": args.lane_flush, "rates": {
                                   "chat": args.chat_rate, "like": args.like_rate, "gift": args.gift_rate,
                                   "system": args.system_rate, "join": args.join_rate}, **label, **common.machine()})
                records.append(record)
                print(json.dumps({k: record.get(k) for k in ("server", "n", "nodes", *METRICS)}, default=str),
                      flush=True)
                common.append_results(SCENARIO, [record])
    summaries = []
    for server in args.servers:
        for n in args.n:
            runs = [r for r in records if r["server"] == server and r["n"] == n]
            summaries.append({"type": "summary", "scenario": SCENARIO, "session": session, "server": server, "n": n,
                              "nodes": runs[0]["nodes"], **common.summarize_metrics(runs, METRICS), **label})
    common.append_results(SCENARIO, summaries)
    rows = []
    for s in summaries:
        rows.append([s["server"], str(s["n"]), str(s["nodes"])] + [
            common.fmt_range(s[m]) if m in s else "-" for m in
            ("cpu_us_per_delivery", "max_node_cpu_pct", "gift_delivered_pct", "gift_p99_ms", "system_p99_ms",
             "chat_p99_ms", "frames_per_viewer_per_s", "join_p99_ms", "client_cpu_util")])
    common.print_table(["server", "N", "nodes", "CPU µs/item delivery", "max node CPU %", "gifts delivered %",
                        "gift p99 ms", "system p99 ms", "chat p99 ms", "frames/viewer/s", "join→item p99 ms",
                        "client CPU"], rows)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10000], help="viewers in the room")
    parser.add_argument("--nodes", type=int, default=1, help="heihei nodes (viewers round robin over them)")
    parser.add_argument("--servers", nargs="+", default=["heihei", "ws"], choices=["heihei", "ws"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of the mixed phase")
    parser.add_argument("--chat-rate", type=float, default=20.0)
    parser.add_argument("--like-rate", type=float, default=200.0)
    parser.add_argument("--gift-rate", type=float, default=5.0)
    parser.add_argument("--system-rate", type=float, default=1.0)
    parser.add_argument("--join-rate", type=float, default=500.0)
    parser.add_argument("--redis-cpu", type=int, default=None,
                        help="pin redis-server to this CPU (default: the servers' CPU 0; 1 = with the load "
                             "generator, so one node has CPU 0 to itself)")
    parser.add_argument("--lane-flush", type=float, default=0.25, help="[lives] lane_flush_s of the nodes")
    parser.add_argument("--sample-every", type=int, default=10,
                        help="one viewer connection in this many reads stamps (latency); all count items")
    parser.add_argument("--quick", action="store_true", help="N=300, 1 run, 5 s (a smoke test)")
    parser.add_argument("--results", help="directory for the JSON lines (default bench/results)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.n, args.runs, args.duration = [300], 1, 5.0
    print(f"live room: N={args.n} nodes={args.nodes} runs={args.runs} {common.setup_client_process()}", flush=True)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
