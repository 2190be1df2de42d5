"""
Scenario 9: boss group fan-out, heihei against the Node `ws` peer (issue 15).

One sender and N receivers in one boss group (seed 002): the group is created
through the group HTTP API (`creategrp`, then `addmembers` in calls of 500
ids), every member logs in with `login_<id>` (`[boss] insecure_login`), and the
sender sends `text_<group>_<stamp>_group_`. Each receiver gets
`text_<sender>_<stamp>_group_<group>_<timet>_`, and heihei confirms deliveries
with WebSocket pings that the load generator answers. The peer is the Node `ws`
broadcast server of scenario 1, sent the very frame heihei delivers (so every
frame has the same size); it also echoes to the sender, which heihei does not
(boss senders get no copy), and every delivery counts either way.

Modes (one CPU window each, the engine of bench/roomload.py):
  closed  one message in flight: the next goes when every receiver got the previous
  window  `inflight` (8) messages in flight, topped up as each completes

Figures: CPU µs per delivery of the node plus its redis-server (both pinned to
the server core) and of the node alone, deliveries/s, p50/p99/max latency,
deliveries missing. `--big` adds the issue's large-group check: a group of
100,000 members with 5,000 online (p99 of one message in flight), then an
offline member's login replaying 1,000 missed group messages (seconds from
`login_` to the last frame).

    /work/venv/bin/python bench/group_fanout.py --n 1000 5000 --runs 3
    /work/venv/bin/python bench/group_fanout.py --quick
    /work/venv/bin/python bench/group_fanout.py --big --servers heihei --n 5000 --runs 1

`--realm jim` measures a J-IM group (seed 003) instead: every member logs in
with `?username=` (`[jim] insecure_login`) and joins the group through
`[jim] default_groups` (J-IM has no group-creation API; each login also tells
every member online, cmd 9, which is setup time, not measured), and the sender
sends `{"cmd":11,"chatType":1,"groupId":...,"content":<stamp>}`; receivers get
J-IM's `{"command":11,"data":{chat}}`, the peer the same bytes. The sending
connection gets no copy (J-IM), its cmd 12 answers are not deliveries.

    /work/venv/bin/python bench/group_fanout.py --realm jim --n 1000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, roomload, wsload  # noqa: E402

API_KEY = "bench-api-key"
SENDER = "s0"
#: the stamp of a delivered group frame (heihei's and the peer's are the same bytes)
_STAMP = re.compile(rb"text_[^_]+_~(\d+)~(\d+)~")
MODES = ("closed", "window")
CHUNK = 500


#: the stamp of a delivered J-IM group frame (keys in fastjson's order: chatType, cmd, content)
_JIM_STAMP = re.compile(rb'\{"command":11,"data":\{"chatType":1,"cmd":11,"content":"~(\d+)~(\d+)~')
JIM_GROUP = "bench"


class GroupTally(roomload.Tally):
    """`roomload.Tally` for boss (or, with `stamp`, J-IM) frames."""

    stamp = _STAMP


def _api(target: common.Target, path: str, params: dict[str, str]) -> dict[str, Any]:
    url = target.cluster.nodes[0].url("boss", path, "http") + "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=120) as r:
        answer = json.loads(r.read())
    if answer.get("code") != 1:
        raise RuntimeError(f"{path} refused: {answer}")
    return answer


def create_group(target: common.Target, members: list[str]) -> str:
    """`creategrp` with the first chunk, `addmembers` for the rest (calls of at most 500 ids)."""
    group = _api(target, "/creategrp", {"creator": SENDER, "members": ",".join(members[:CHUNK]),
                                        "name": "bench"})["data"]["groupid"]
    for i in range(CHUNK, len(members), CHUNK):
        _api(target, "/addmembers", {"groupid": group, "members": ",".join(members[i:i + CHUNK])})
    return group


async def login(url: str, user: str) -> wsload.WSClient:
    conn = await wsload.WSClient.connect(url, timeout=60)
    conn.send_text(f"login_{user}")
    answer = await conn.next_text(60)
    if answer != b"ok":
        raise RuntimeError(f"boss login of {user} refused: {answer[:200]!r}")
    return conn


def config() -> str:
    return common.heihei_config(boss={"api_key": API_KEY, "max_group_members": 100000, "dead_after": 0,
                                      "heartbeat_interval": 0})


def jim_config() -> str:
    return common.heihei_config(jim={"api_key": API_KEY, "insecure_login": True, "default_groups": [JIM_GROUP],
                                     "heartbeat_timeout": 0, "auto_ping_interval_s": 0, "chat_rate_per_s": 1e9,
                                     "chat_burst": 1_000_000, "max_connections": 30000})


REALM = {"name": "boss"}


def start_target(kind: str) -> common.Target:
    if kind == "heihei" and REALM["name"] == "jim":
        return common.heihei_target(1, "jim", jim_config(), "/")
    if kind == "heihei":
        return common.heihei_target(1, "boss", config(), "/entry")
    return common.peer_target(kind)


async def jim_login(url: str, user: str) -> wsload.WSClient:
    conn = await wsload.WSClient.connect(f"{url}?username={user}&password=x", timeout=60)
    answer = await conn.next_text(60)
    while answer.startswith(b'{"command":9,'):  # another member's join notice may come first
        answer = await conn.next_text(60)
    if not answer.startswith(b'{"code":10007,'):
        raise RuntimeError(f"jim login of {user} refused: {answer[:200]!r}")
    return conn


def jim_frame(text: str) -> bytes:
    """What a J-IM receiver is sent (the peer sends these very bytes)."""
    return ('{"command":11,"data":{"chatType":1,"cmd":11,"content":"%s","createTime":%d,"from":"%s",'
            '"groupId":"%s","group_id":"%s","id":"%s","msgType":0}}'
            % (text, int(time.time() * 1000), SENDER, JIM_GROUP, JIM_GROUP, "0" * 32)).encode()


async def open_jim_group(target: common.Target, n: int) -> tuple[roomload.Room, str]:
    """The sender and N receivers in one J-IM group (heihei: `default_groups`)."""
    url = target.urls[0]
    heihei = target.kind == "heihei"

    async def one(i: int) -> wsload.WSClient:
        if heihei:
            return await jim_login(url, f"r{i}")
        return await wsload.WSClient.connect(url, timeout=60)

    receivers = await wsload.open_many(n, one, concurrency=50)
    sender = await (jim_login(url, SENDER) if heihei else wsload.WSClient.connect(url, timeout=30))
    if heihei:
        def make_payload(seq: int, ts: int) -> bytes:
            return ('{"cmd":11,"chatType":1,"groupId":"%s","content":"%s"}'
                    % (JIM_GROUP, roomload.message_text(seq, ts))).encode()
    else:
        def make_payload(seq: int, ts: int) -> bytes:
            return jim_frame(roomload.message_text(seq, ts))
    await asyncio.sleep(2.0)  # the join notices (cmd 9) of the last logins
    tally = GroupTally(expected=n if heihei else n + 1)
    tally.stamp = _JIM_STAMP
    room = roomload.Room(target, [sender], receivers, [make_payload], tally)
    for conn in room.conns:
        conn.drain_texts()
        conn.on_texts = tally.spans_sink_for(0)
    return room, JIM_GROUP


async def open_group(target: common.Target, n: int, members: int | None = None) -> tuple[roomload.Room, str]:
    """The sender and N receivers logged in (heihei: members of one group of `members` >= N)."""
    url = target.urls[0]
    heihei = target.kind == "heihei"
    group = "1"
    if heihei:
        ids = [f"r{i}" for i in range(members - 1 if members else n)]  # and the sender
        group = await asyncio.get_running_loop().run_in_executor(None, create_group, target, ids)

    async def one(i: int) -> wsload.WSClient:
        if heihei:
            return await login(url, f"r{i}")
        return await wsload.WSClient.connect(url, timeout=60)

    receivers = await wsload.open_many(n, one, concurrency=200)
    sender = await (login(url, SENDER) if heihei else wsload.WSClient.connect(url, timeout=30))
    if heihei:
        def make_payload(seq: int, ts: int) -> bytes:
            return f"text_{group}_{roomload.message_text(seq, ts)}_group_".encode()
    else:
        def make_payload(seq: int, ts: int) -> bytes:
            return f"text_{SENDER}_{roomload.message_text(seq, ts)}_group_{group}_{int(time.time())}_".encode()
    await asyncio.sleep(0.5)
    tally = GroupTally(expected=n if heihei else n + 1)
    room = roomload.Room(target, [sender], receivers, [make_payload], tally)
    for conn in room.conns:
        conn.drain_texts()
        conn.on_texts = tally.spans_sink_for(0)
    return room, group


async def measure(target: common.Target, n: int, modes: list[str], duration_s: float,
                  inflight: int) -> list[dict[str, Any]]:
    t = time.monotonic()
    room, _ = await (open_jim_group(target, n) if REALM["name"] == "jim" else open_group(target, n))
    setup_s = time.monotonic() - t
    try:
        warm = await roomload.run_phase(room, "warmup", 0.0, inflight=1, grace_s=60.0)
        if not warm["complete"]:
            raise RuntimeError(f"the warm-up message reached {warm['deliveries']} of {room.tally.expected}")
        results = []
        for mode in modes:
            await asyncio.sleep(0.5)
            r = await roomload.run_phase(room, mode, duration_s, inflight=1 if mode == "closed" else inflight,
                                         grace_s=20.0)
            r["setup_s"] = setup_s
            r["server_rss_bytes"] = target.rss()
            r["total_cpu_us_per_delivery"] = (r["cpu_us_per_delivery"] or 0) + (
                r.get("redis_cpu_us_per_delivery") or 0) if r["cpu_us_per_delivery"] else None
            results.append(r)
            print(f"    {target.kind:<8} N={n:<6} {mode:<6} total {common.fmt(r['total_cpu_us_per_delivery'])} "
                  f"µs/deliv (node {common.fmt(r['cpu_us_per_delivery'])})  {roomload.fmt_phase(r)}", flush=True)
        return results
    finally:
        await common.close_all(room.conns)


async def measure_big(target: common.Target, online: int, members: int, missed: int,
                      duration_s: float) -> dict[str, Any]:
    """The issue's large group: fan-out p99 with `online` of `members` logged in, then an offline
    member's login replaying `missed` messages."""
    t = time.monotonic()
    room, group = await open_group(target, online, members)
    setup_s = time.monotonic() - t
    try:
        warm = await roomload.run_phase(room, "warmup", 0.0, inflight=1, grace_s=60.0)
        if not warm["complete"]:
            raise RuntimeError(f"the warm-up message reached {warm['deliveries']} of {room.tally.expected}")
        fanout = await roomload.run_phase(room, "closed", duration_s, inflight=1, grace_s=20.0)
        print(f"    big group: {members} members, {online} online, closed: {roomload.fmt_phase(fanout)}", flush=True)
        await asyncio.sleep(1.0)
        # the latency of a message on its own: 4 messages a second (each reaches every member
        # before the next is sent)
        paced = await roomload.run_phase(room, "rate", max(duration_s, 10.0), rate=online * 4.0, grace_s=20.0)
        print(f"    big group, 4 messages/s: {roomload.fmt_phase(paced)}", flush=True)
    finally:
        await common.close_all(room.receivers)
    sender = room.sender
    sender.on_texts, sender.on_text = sender._texts_one_by_one, sender._queue_text  # answers to read again
    await asyncio.sleep(5.0)  # the node handles 5,000 disconnections (a Redis call each) first
    refused = 0
    for start in range(0, missed, 50):  # stored while the member is away (nobody else online either)
        while True:
            for seq in range(start, min(start + 50, missed)):
                sender.send_text(f"text_{group}_{roomload.message_text(seq, 0)}_group_".encode())
            sender.send_text(b"members_404")  # answered after the messages before it: within the
            answers = [await sender.next_text(120)]  # input queue's bound
            while answers[-1] != b"error_404_no such group 404":
                answers.append(await sender.next_text(120))
            if len(answers) == 1:
                break
            refused += len(answers) - 1  # e.g. 503: the whole batch again (a copy stored twice is
            await asyncio.sleep(1.0)     # replayed twice, and counted below)
    away = f"r{members - 2}"  # never logged in: its cursor is where it was added
    last = b"~%d~0~" % (missed - 1)
    t0 = time.monotonic()
    conn = await login(target.urls[0], away)
    got = 0
    while True:
        frame = await conn.next_text(30)
        if frame.startswith(b"text_"):
            got += 1
            if last in frame:
                break
    replay_s = time.monotonic() - t0
    await common.close_all([conn, sender])
    print(f"    offline member's login replayed {got} messages ({missed} sent while everyone was away, the rest "
          f"during the fan-out phases) in {replay_s:.3f} s; {refused} sends refused and sent again", flush=True)
    return {"mode": "big", "members": members, "online": online, "setup_s": setup_s, "missed": missed,
            "refused_while_storing": refused,
            "replayed": got, "replay_s": replay_s, **{f"fanout_{k}": v for k, v in fanout.items()},
            **{f"paced_{k}": v for k, v in paced.items()}}


METRICS = ("total_cpu_us_per_delivery", "cpu_us_per_delivery", "redis_cpu_us_per_delivery", "deliveries_per_s",
           "p50_ms", "p99_ms", "max_ms", "missing_deliveries", "server_rss_bytes", "client_cpu_util")


def report(records: list[dict[str, Any]], servers: list[str]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["server"], r["n"], r["mode"]), []).append(r)
    summaries, by = [], {}
    for (server, n, mode), rs in groups.items():
        s = {"type": "summary", "scenario": "group_fanout", "realm": REALM["name"], "server": server, "n": n,
             "mode": mode, "runs": len(rs),
             **{k: rs[0][k] for k in ("session", "commit", "heihei_dirty", "label")}}
        s.update(common.summarize_metrics(rs, METRICS))
        summaries.append(s)
        by[(server, n, mode)] = s
    rows = []
    for (server, n, mode), s in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        get = lambda k, d=2: common.fmt_range(s[k], d) if k in s else "-"  # noqa: E731
        ws = by.get(("ws", n, mode))
        ratio = common.ratio(s["total_cpu_us_per_delivery"]["median"],
                             ws["total_cpu_us_per_delivery"]["median"]) if ws and server != "ws" else None
        rate_ratio = common.ratio(s["deliveries_per_s"]["median"],
                                  ws["deliveries_per_s"]["median"]) if ws and server != "ws" else None
        rows.append([str(n), mode, server, get("total_cpu_us_per_delivery"), get("cpu_us_per_delivery"),
                     common.fmt(ratio) + "×" if ratio else "-", get("deliveries_per_s", 0),
                     common.fmt(rate_ratio) + "×" if rate_ratio else "-", get("p50_ms"), get("p99_ms"),
                     get("missing_deliveries", 0)])
    common.print_table(["N", "mode", "server", "CPU µs/deliv (node + redis)", "of which node", "vs ws",
                        "deliveries/s", "vs ws", "p50 ms", "p99 ms", "missing"], rows)
    return summaries


async def run(args) -> None:
    label, session = common.git_label(), common.session_id()
    records: list[dict[str, Any]] = []
    for n in args.n:
        for run_no in range(1, args.runs + 1):
            for kind in args.servers:
                load = common.loadavg()
                print(f"  run {run_no}/{args.runs}: {kind} N={n} load {load}", flush=True)
                target = await asyncio.get_running_loop().run_in_executor(None, start_target, kind)
                try:
                    phases = await measure(target, n, args.modes, args.duration, args.inflight)
                finally:
                    await asyncio.get_running_loop().run_in_executor(None, target.stop)
                for phase in phases:
                    records.append({"type": "run", "scenario": "group_fanout", "session": session, **label,
                                    "server": kind, "n": n, "run": run_no, "loadavg": load,
                                    "realm": REALM["name"], **phase})
    summaries = report(records, args.servers) if records else []
    if records:
        path = common.append_results("group_fanout", records + summaries)
        print(f"\nresults appended to {path} (session {session}, {label['label']})")
    records, summaries = [], []
    if args.big:
        load = common.loadavg()
        target = await asyncio.get_running_loop().run_in_executor(None, start_target, "heihei")
        try:
            big = await measure_big(target, args.big_online, args.big_members, args.big_missed, args.duration)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, target.stop)
        records.append({"type": "run", "scenario": "group_fanout", "session": session, **label, "server": "heihei",
                        "n": args.big_online, "loadavg": load, **big})
    if records:
        path = common.append_results("group_fanout", records)
        print(f"\nresults appended to {path} (session {session}, {label['label']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="*", default=[1000, 5000], help="receivers in the group")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", nargs="+", default=["heihei", "ws"], choices=["heihei", *common.PEER_KINDS])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per mode")
    parser.add_argument("--inflight", type=int, default=8, help="messages in flight in window mode")
    parser.add_argument("--realm", choices=["boss", "jim"], default="boss", help="whose groups (jim: seed 003)")
    parser.add_argument("--big", action="store_true", help="also the 100,000-member group (heihei, boss only)")
    parser.add_argument("--big-members", type=int, default=100000)
    parser.add_argument("--big-online", type=int, default=5000)
    parser.add_argument("--big-missed", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="N=200, 1 run, 1 s per mode (a smoke test)")
    parser.add_argument("--results", help="directory for the JSON lines (default bench/results; "
                                          "--quick writes to a temporary directory)")
    args = parser.parse_args(argv)
    REALM["name"] = args.realm
    if args.big and args.realm != "boss":
        parser.error("--big measures boss groups only")
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.n, args.runs, args.duration = [200], 1, 1.0
        args.big_members, args.big_online, args.big_missed = 2000, 200, 100
    print(f"group fan-out: N={args.n} runs={args.runs} servers={args.servers} {common.setup_client_process()}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
