"""
Scenario 9 (issue 20): the 1:1 chat's match queue across two nodes, with a
node killed (SIGKILL) in the middle.

N signed-in heihei users, each with a push-channel connection (round robin
over the nodes), enter the match queue (`/api/chat/match-chat`, requests
round robin over the nodes) at `--rate` (500) per second. A matched pair gets
`join-chat` pushes; the first of the two to hear it ends the chat at once
(`stop-chat`), so both are free again. Unmatched users leave the queue when
their match expires (`[chat] match_expire_s`, 15 s). Unless `--no-kill`, the
second node is killed with SIGKILL when `--kill-at` (0.5) of the users have
entered: its users' channels die with it and every later request goes to the
first node; what it had armed (match expiries, join timeouts) is left to the
first node to fire.

Measured:
- time to join-chat: for each chat whose push reached a user, from the later
  of the two match-chat requests (the one that found a waiting partner) to
  the push, p50/p99/max (the load generator's CLOCK_MONOTONIC);
- from Redis, once every countdown has run: the chats made, that no user is
  in two chats and none matched with itself (each user entered once:
  "matched or expired exactly once"), users matched and expired, and users
  still busy (a `chatu` key left) — the goal is 0 — and how long after the
  last entry the last one was released;
- node CPU over the entry phase, the load averages (the box is shared).

    /work/venv/bin/python bench/match.py --n 10000 --runs 1
    /work/venv/bin/python bench/match.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time
from array import array
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, wsload  # noqa: E402
from bench.cluster import cpu_seconds  # noqa: E402
from bench.httpload import HttpPool  # noqa: E402
from bench.live_room import at_rate, bounded, sign_in  # noqa: E402

SCENARIO = "match"
SECRET = "bench-server-secret"
JOIN_CHAT = b'"action":"join-chat"'
METRICS = ("join_p50_ms", "join_p99_ms", "join_max_ms", "pushes_seen", "chats", "matched", "expired",
           "busy_after", "double_matched", "self_matched", "errors", "retried", "refused", "refused_codes",
           "release_s", "max_node_cpu_pct")


class Resp:
    """Just enough RESP over a socket to read the chat state out of Redis (no client library needed)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return int(rest) if kind == b":" else rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            return data.decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def call(self, *args):
        parts = [str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return self._reply()

    def scan(self, pattern: str) -> list[str]:
        cursor, out = "0", []
        while True:
            cursor, keys = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            out.extend(keys)
            if cursor == "0":
                return out


def heihei_config(wechat_url: str, args) -> str:
    return common.heihei_config(
        wechat_url,
        heihei={"server_secret": SECRET, "wechat_api_url": wechat_url},
        channel={"max_connections": 60000},
        chat={"match_expire_s": args.match_expire, "join_timeout_s": float(args.join_timeout),
              "idle_sweep_s": 2.0})


def chat_state(redis: Resp, uids: set[str]) -> dict[str, Any]:
    """What Redis says: chats, who was in them, who is still busy."""
    seen: dict[str, int] = {}
    chats = self_matched = 0
    for k in redis.scan("hh:chat:heihei:*"):
        a, b = redis.call("HMGET", k, "a", "b")
        if a is None:
            continue
        chats += 1
        if a == b:
            self_matched += 1
        for u in (a, b):
            seen[u] = seen.get(u, 0) + 1
    busy = [k for k in redis.scan("hh:chatu:heihei:*") if k.rsplit(":", 1)[1] in uids]
    matched = {u for u in seen if u in uids}
    return {"chats": chats, "matched": len(matched), "expired": len(uids - matched),
            "double_matched": sum(1 for u in matched if seen[u] > 1), "self_matched": self_matched,
            "busy_after": len(busy)}


async def run(args, n: int) -> dict[str, Any]:
    wechat = await common.FakeWeChat().start()
    target = common.heihei_target(2, "http", heihei_config(wechat.url, args), "/ws/channel")
    cluster = target.cluster
    pools = [HttpPool(node.url("http", "/", "http"), size=48) for node in cluster.nodes]
    stop_pools = [HttpPool(node.url("http", "/", "http"), size=16) for node in cluster.nodes]
    conns: list = []
    alive = [True, True]
    try:
        tag = f"{int(time.time())}{random.randrange(1000)}"
        users = await bounded(n, lambda i: sign_in(pools[i % 2], f"m{tag}-{i}"), 64)
        uids = {u for _, u in users}
        sent = array("q", [0]) * n  # when user i's match-chat left (ns)
        heard: dict[int, tuple[int, int]] = {}  # chatId -> (first push ns, user index)
        chat_users: dict[int, set[int]] = {}
        counters = {"errors": 0, "pushes": 0, "stopped": 0, "retried": 0, "refused": 0}
        codes: dict[Any, int] = {}

        def pool_for(k: int, kind=pools) -> HttpPool:
            return kind[k % 2] if alive[k % 2] else kind[0]

        async def stop_chat(i: int, chat_id: int) -> None:
            try:
                body = await pool_for(i, stop_pools).post("/api/chat/stop-chat",
                                                          {"token": users[i][0], "chatId": chat_id})
                counters["stopped"] += body.get("errorcode") == 0
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass

        def sink(i: int):
            def on_texts(data: bytes, spans, t: int) -> None:
                for start, end in spans:
                    payload = data[start:end]
                    if JOIN_CHAT not in payload:
                        continue
                    for item in json.loads(payload):
                        msg = item.get("msg") or {}
                        if msg.get("action") != "join-chat":
                            continue
                        counters["pushes"] += 1
                        chat_id = msg["chatid"]
                        chat_users.setdefault(chat_id, set()).add(i)
                        if chat_id not in heard:
                            heard[chat_id] = (t, i)
                            asyncio.ensure_future(stop_chat(i, chat_id))
            return on_texts

        urls = target.urls

        async def connect(i: int):
            conn = await wsload.WSClient.connect(f"{urls[i % 2]}?token={users[i][0]}", timeout=60)
            await conn.next_text(60)
            conn.on_texts = sink(i)
            return conn

        conns = await wsload.open_many(n, connect, concurrency=200)
        kill_at = int(n * args.kill_at) if args.kill else None
        cpu_before = {node.name: cpu_seconds(node.pid) for node in cluster.nodes}
        cpu_end: dict[str, float] = {}

        async def enter(k: int) -> None:
            if kill_at is not None and k == kill_at and alive[1]:
                alive[1] = False
                cpu_end[cluster.nodes[1].name] = cpu_seconds(cluster.nodes[1].pid)
                cluster.nodes[1].proc.kill()  # SIGKILL: no clean-up of any kind
            sent[k] = time.monotonic_ns()
            for attempt in range(2):
                try:
                    body = await pool_for(k).post("/api/chat/match-chat", {"token": users[k][0]})
                except (ConnectionError, OSError, asyncio.TimeoutError):
                    # in flight to the node killed: the app tries again, now on the node that is up
                    if attempt == 0 and not alive[k % 2]:
                        counters["retried"] += 1
                        continue
                    counters["errors"] += 1
                    return
                if body.get("errorcode") != 0:
                    counters["refused"] += 1
                    codes[body.get("errorcode")] = codes.get(body.get("errorcode"), 0) + 1
                return

        t0 = time.monotonic()
        entered = await at_rate(args.rate, n / args.rate, enter)
        entry_s = time.monotonic() - t0
        for node in cluster.nodes:
            if node.name not in cpu_end:
                cpu_end[node.name] = cpu_seconds(node.pid)
        cpu_pct = max((cpu_end[name] - cpu_before[name]) / entry_s * 100 for name in cpu_before)

        # the countdowns: match expiry, then the join timeout of chats nobody stopped, lease and sweep slack
        redis = Resp(cluster.redis_port)
        t_last = time.monotonic()
        deadline = t_last + args.match_expire + args.join_timeout + 30
        state = chat_state(redis, uids)
        while state["busy_after"] and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            state = chat_state(redis, uids)
        release_s = time.monotonic() - t_last
        redis.close()

        lat = array("q")
        for chat_id, (t, _) in heard.items():
            members = chat_users.get(chat_id, set())
            later = max((sent[i] for i in members), default=0)
            if later:
                lat.append(t - later)
        summary = common.latency_summary(lat)
        return {"server": "heihei", "n": n, "nodes": 2, "entered": entered, "entry_s": round(entry_s, 2),
                "rate_achieved": round(entered / entry_s, 1), "killed": kill_at is not None,
                "kill_at": kill_at, "pushes_seen": counters["pushes"], "chats_heard": len(heard),
                "stopped": counters["stopped"], "errors": counters["errors"], "retried": counters["retried"],
                "refused": counters["refused"], "refused_codes": codes, "release_s": round(release_s, 1),
                "join_p50_ms": summary["p50_ms"], "join_p99_ms": summary["p99_ms"], "join_max_ms": summary["max_ms"],
                "max_node_cpu_pct": round(cpu_pct, 1), **state}
    finally:
        await common.close_all(conns)
        target.stop()
        await wechat.stop()


async def main_async(args) -> list[dict[str, Any]]:
    session = common.session_id()
    label = common.git_label()
    records = []
    for r in range(args.runs):
        for n in args.n:
            load = common.loadavg()
            record = await run(args, n)
            record.update({"type": "run", "scenario": SCENARIO, "session": session, "run": r, "load": load,
                           "load_after": common.loadavg(), "rate": args.rate, "match_expire_s": args.match_expire,
                           "join_timeout_s": args.join_timeout, **label, **common.machine()})
            records.append(record)
            print(json.dumps({k: record.get(k) for k in ("n", "load", *METRICS)}, default=str), flush=True)
            common.append_results(SCENARIO, [record])
    rows = [[str(r["n"]), str(r["run"]), "yes" if r["killed"] else "no", str(r["chats"]), str(r["matched"]),
             str(r["expired"]), str(r["double_matched"]), str(r["busy_after"]), common.fmt(r["join_p50_ms"]),
             common.fmt(r["join_p99_ms"]), common.fmt(r["join_max_ms"]), f"{r['errors']}/{r['retried']}/{r['refused']}",
             str(r["release_s"]),
             " ".join(f"{x:.2f}" for x in r["load"])] for r in records]
    common.print_table(["N", "run", "kill -9", "chats", "matched", "expired", "in 2 chats", "busy after",
                        "join p50 ms", "join p99 ms", "join max ms", "failed/retried/refused", "released after s",
                        "load"], rows)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10000], help="users entering the match queue")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=500.0, help="match-chat requests per second")
    parser.add_argument("--kill-at", type=float, default=0.5, help="kill the second node after this share entered")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="keep both nodes up")
    parser.add_argument("--match-expire", type=int, default=15, help="[chat] match_expire_s")
    parser.add_argument("--join-timeout", type=int, default=20, help="[chat] join_timeout_s")
    parser.add_argument("--quick", action="store_true", help="N=400, 1 run (a smoke test)")
    parser.add_argument("--results", help="directory for the JSON lines (default bench/results)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.n, args.runs = [400], 1
    print(f"match: N={args.n} rate={args.rate}/s kill={args.kill} {common.setup_client_process()}", flush=True)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
