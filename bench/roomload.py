"""
The room fan-out engine shared by `room_fanout.py` (heihei against the peers)
and `room_two_nodes.py` (issue 3: receivers on two heihei nodes).

Senders (8) and N receivers share one room. heihei's room is a live activity
(seed 000): every receiver sends `Open`, each sender `Open`s too and logs in
with a WeChat code (answered by the fake WeChat in common.py), then sends
`Message` frames. A peer broadcasts whatever a client sends to every client,
so a sender sends it the very JSON heihei would deliver (same size, same
shape). Either way every message is delivered to all N + senders members (a
sender gets its own copy: heihei's `my` "1" variant), and every delivery
counts. `closed`, `window` and `rate` send from the first sender only; a
`burst` is one message from each at the same moment (a chat storm in a live
room).

Each message text starts `~<seq>~<send time ns>~` (padded to a fixed length):
a receiver takes the clock once per read, so each delivery's latency is
"bytes in our process" minus "sender wrote the frame", on one CLOCK_MONOTONIC.
Frames that are not messages (live's coalesced `Total` pushes) are counted
apart and never measured.

Modes (one CPU window each):
  closed  one message in flight: the next goes when every member got the previous
  burst   one message from each of the senders at once; the next burst goes
          when every member got all of them
  window  `inflight` (8) messages in flight, topped up as each completes (a
          sliding window: it clocks itself to about one message per
          completion, so it measures close to `closed`)
  rate    a fixed offered load of `rate` deliveries/s (rate/(N+senders) messages/s)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from array import array
from dataclasses import dataclass
from typing import Any, Callable

from bench import common, wsload
from bench.common import Target

#: characters of every message text (the stamp plus padding)
TEXT_CHARS = 64
MARK = b'{"code":1,"msg":"~'
#: a delivered message frame: MARK, then the stamp's seq and send time
_STAMP = re.compile(re.escape(MARK) + rb"(\d+)~(\d+)~")
#: what heihei's sender looks like, so the peers' frames are byte-for-byte the same size
SENDER_CODE = "bench-sender"
#: how many senders a room has (the burst size)
SENDERS = 8
HEAD_PIC = "https://img.example/bench.png"
TIME_SHAPE = "2025-01-01 00:00:00"


def message_text(seq: int, ts_ns: int, chars: int = TEXT_CHARS) -> str:
    head = f"~{seq}~{ts_ns}~"
    return head + "x" * max(0, chars - len(head))


def parse_stamp(payload: bytes) -> tuple[int, int] | None:
    """(seq, send time ns) of a delivered message frame; None for any other frame."""
    m = _STAMP.match(payload)
    return (int(m[1]), int(m[2])) if m else None


def heihei_message(text: str, token: str) -> bytes:
    return json.dumps({"cmd": "Message", "data": {"activityId": common.ACTIVITY, "msg": text, "token": token}},
                      ensure_ascii=False, separators=(",", ":")).encode()


def peer_message(text: str) -> bytes:
    """The frame heihei delivers to a receiver, as a peer must broadcast it."""
    return json.dumps({"code": 1, "msg": text, "cmd": "Message",
                       "data": {"userName": SENDER_CODE, "headPic": HEAD_PIC, "my": "0", "time": TIME_SHAPE,
                                "msg": text}}, ensure_ascii=False, separators=(",", ":")).encode()


class Tally:
    """Counts deliveries per message and keeps every latency; shared by all connections.

    `groups` > 1 keeps latencies apart per group (per node in a cluster): each
    connection gets the sink of its group from `spans_sink_for`. `stamp` finds a frame's
    (sequence, sent ns) at its start (a subclass for another wire format sets its own)."""

    stamp = _STAMP

    def __init__(self, expected: int, groups: int = 1) -> None:
        self.expected = expected
        #: deliveries so far of each message not yet complete, by its seq as it reads in the text
        self.counts: dict[bytes, int] = {}
        self.on_complete: Callable[[int, int], None] = lambda seq, t: None
        self.group_latencies = [array("q") for _ in range(groups)]
        self.reset()

    @property
    def latencies(self) -> array:
        if len(self.group_latencies) == 1:
            return self.group_latencies[0]
        merged = array("q")
        for lat in self.group_latencies:
            merged.extend(lat)
        return merged

    def reset(self) -> None:
        for lat in self.group_latencies:
            del lat[:]
        self.deliveries = 0
        self.others = 0
        self.last_t = 0

    def spans_sink_for(self, group: int) -> Callable[[bytes, Any, int], None]:
        """A connection's `on_texts`: every text of one read, as spans of its bytes."""
        lat = self.group_latencies[group]
        count = self._count
        return lambda data, spans, t: count(data, spans, t, lat)

    def _count(self, data: bytes, spans, t: int, lat: array) -> None:
        # the load generator's hot path (its CPU caps `burst` deliveries/s): the stamp is matched in
        # place, no payload is copied, and the counters stay in locals until the read is done
        match = self.stamp.match
        counts, expected = self.counts, self.expected
        delivered, complete = 0, None
        for start, end in spans:
            m = match(data, start, end)
            if m is None:
                self.others += 1
                continue
            seq_text, sent_ns = m.groups()
            lat.append(t - int(sent_ns))
            delivered += 1
            count = counts.get(seq_text, 0) + 1
            if count < expected:
                counts[seq_text] = count
            else:
                del counts[seq_text]
                if complete is None:
                    complete = []
                complete.append(int(seq_text))
        if delivered:
            self.deliveries += delivered
            self.last_t = t
        if complete:
            for seq in complete:
                self.on_complete(seq, t)


def sender_code(k: int) -> str:
    """The k-th sender's WeChat code (its nickname): all as long as SENDER_CODE, so frames keep their size."""
    return SENDER_CODE if k == 0 else f"bench-s{k:05d}"


@dataclass
class Room:
    target: Target
    senders: list[wsload.WSClient]
    receivers: list[wsload.WSClient]
    #: per sender: (seq, send ns) -> the frame it sends
    make_payloads: list[Callable[[int, int], bytes]]
    tally: Tally
    seq: int = 0

    @property
    def sender(self) -> wsload.WSClient:
        return self.senders[0]

    def make_payload(self, seq: int, ts: int) -> bytes:
        return self.make_payloads[0](seq, ts)

    @property
    def conns(self) -> list[wsload.WSClient]:
        return [*self.senders, *self.receivers]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


async def _heihei_call(conn: wsload.WSClient, cmd: str, data: dict[str, Any], timeout: float = 30.0) -> dict:
    """Send a live command and wait for its answer (pushes in between are skipped)."""
    conn.send_text(json.dumps({"cmd": cmd, "data": data}, separators=(",", ":")))
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await conn.next_text(max(0.1, deadline - time.monotonic())))
        if frame.get("cmd") == cmd:
            if frame.get("code") != 1:
                raise RuntimeError(f"live {cmd} refused: {frame}")
            return frame


async def open_room(target: Target, n: int, concurrency: int = 200, settle_s: float = 2.0,
                    senders: int = SENDERS) -> Room:
    """Connect the senders and N receivers (round robin over the target's nodes) into the room."""
    urls = target.urls
    heihei = target.kind == "heihei"

    async def one(i: int) -> wsload.WSClient:
        conn = await wsload.WSClient.connect(urls[i % len(urls)], timeout=60)
        if heihei:
            await _heihei_call(conn, "Open", {"activityId": common.ACTIVITY}, timeout=60)
        return conn

    receivers = await wsload.open_many(n, one, concurrency=concurrency)
    sending, make_payloads = [], []
    for k in range(senders):
        sender = await wsload.WSClient.connect(urls[0], timeout=30)
        if heihei:
            await _heihei_call(sender, "Open", {"activityId": common.ACTIVITY})
            login = await _heihei_call(sender, "Login", {"type": "wechat", "code": sender_code(k)})
            token = login["data"]["token"]

            def make_payload(seq: int, ts: int, token=token) -> bytes:
                return heihei_message(message_text(seq, ts), token)
        else:
            def make_payload(seq: int, ts: int) -> bytes:
                return peer_message(message_text(seq, ts))
        sending.append(sender)
        make_payloads.append(make_payload)

    # heihei pushes one coalesced Total per second while the room fills: let the last one pass
    await asyncio.sleep(settle_s)
    tally = Tally(expected=n + senders, groups=len(urls))
    room = Room(target, sending, receivers, make_payloads, tally)
    for sender in sending:
        sender.drain_texts()
        sender.on_texts = tally.spans_sink_for(0)
    for i, conn in enumerate(receivers):
        conn.drain_texts()
        conn.on_texts = tally.spans_sink_for(i % len(urls))
    return room


async def run_phase(room: Room, mode: str, duration_s: float, *, inflight: int = 1, rate: float | None = None,
                    together: bool = False, grace_s: float = 30.0) -> dict[str, Any]:
    """One measured phase; returns its figures (CPU window = first send to last delivery).

    `together`: one message from every sender at once, the next burst when all are delivered;
    otherwise `inflight` messages from the first sender, topped up as each completes."""
    loop = asyncio.get_running_loop()
    tally, target = room.tally, room.target
    expected = tally.expected
    tally.reset()
    done = loop.create_future()
    state = {"sending": True, "outstanding": 0, "sent": 0}

    def send() -> None:
        room.sender.send_text(room.make_payload(room.next_seq(), time.monotonic_ns()))
        state["outstanding"] += 1
        state["sent"] += 1

    def send_burst() -> None:
        now = time.monotonic_ns()
        for sender, make_payload in zip(room.senders, room.make_payloads):
            sender.send_text(make_payload(room.next_seq(), now))
        state["outstanding"] += len(room.senders)
        state["sent"] += len(room.senders)

    def finish_if_idle() -> None:
        if not state["sending"] and state["outstanding"] == 0 and not done.done():
            done.set_result(None)

    def on_complete(seq: int, t: int) -> None:
        state["outstanding"] -= 1
        if rate is None and state["sending"]:
            if time.monotonic_ns() >= deadline:
                state["sending"] = False
            elif not together:
                send()
                return
            elif state["outstanding"] == 0:
                send_burst()
                return
        finish_if_idle()

    tally.on_complete = on_complete
    redis_port = target.cluster.redis_port if target.cluster is not None else None
    calls0 = common.redis_command_calls(redis_port) if redis_port else {}
    cpu0, aux0, client0 = target.cpu(), target.aux_cpu(), common.self_cpu()
    t0 = time.monotonic_ns()
    deadline = t0 + int(duration_s * 1e9)
    if rate is None:
        if together:
            send_burst()
        else:
            for _ in range(inflight):
                send()
    else:
        period_s = expected / rate
        start = loop.time()

        def tick(k: int) -> None:
            if not state["sending"]:  # the phase timed out meanwhile
                return
            send()
            next_at = start + (k + 1) * period_s
            if next_at - start >= duration_s:
                state["sending"] = False
                finish_if_idle()
            else:
                loop.call_at(next_at, tick, k + 1)

        tick(0)
    try:
        await asyncio.wait_for(asyncio.shield(done), duration_s + grace_s)
        complete = True
    except asyncio.TimeoutError:
        complete = False
        state["sending"] = False
    cpu1, aux1, client1 = target.cpu(), target.aux_cpu(), common.self_cpu()
    t_end = time.monotonic_ns()
    tally.on_complete = lambda seq, t: None
    elapsed_s = ((tally.last_t or t_end) - t0) / 1e9
    deliveries = tally.deliveries
    missing = state["outstanding"] * expected - sum(tally.counts.values())
    tally.counts.clear()
    cpu_s = cpu1 - cpu0
    calls = common.calls_delta(calls0, common.redis_command_calls(redis_port), state["sent"]) if redis_port else {}
    result = {
        "mode": mode, "messages": state["sent"], "deliveries": deliveries, "expected_deliveries": state["sent"] * expected,
        "missing_deliveries": missing, "complete": complete, "other_frames": tally.others,
        "elapsed_s": elapsed_s, "deliveries_per_s": deliveries / elapsed_s if elapsed_s > 0 else None,
        "server_cpu_s": cpu_s, "cpu_us_per_delivery": cpu_s / deliveries * 1e6 if deliveries else None,
        "client_cpu_util": (client1 - client0) / ((t_end - t0) / 1e9),
        "inflight": inflight if rate is None else None, "offered_rate": rate,
        "redis_calls_per_message": round(sum(calls.values()), 2) if redis_port else None, "redis_calls": calls,
        **common.latency_summary(tally.latencies),
    }
    if len(tally.group_latencies) > 1:
        for g, lat in enumerate(tally.group_latencies):
            for k, v in common.latency_summary(lat).items():
                result[f"node{g}_{k}"] = v
    for name, before in aux0.items():
        result[f"{name}_cpu_us_per_delivery"] = (aux1[name] - before) / deliveries * 1e6 if deliveries else None
    return result


MODES = ("closed", "burst", "window", "rate")


async def measure_room(target: Target, n: int, modes: list[str], *, duration_s: float, rate: float,
                       inflight: int, settle_s: float) -> list[dict[str, Any]]:
    """Fill the room, warm up, then one phase per mode."""
    t = time.monotonic()
    room = await open_room(target, n, settle_s=settle_s, senders=inflight)
    setup_s = time.monotonic() - t
    try:
        warm = await run_phase(room, "warmup", 0.0, inflight=1, grace_s=60.0)
        if not warm["complete"]:
            got = [len(lat) for lat in room.tally.group_latencies]
            senders = len(room.senders)
            members = [sum(1 for i in range(n) if i % len(got) == g) + senders * (g == 0) for g in range(len(got))]
            raise RuntimeError(f"the warm-up message reached {warm['deliveries']} of {n + senders} room members "
                               f"(per node: got {got} of {members}); a node that gets none is not "
                               f"subscribed to the room")
        results = []
        for mode in modes:
            await asyncio.sleep(0.5)
            if mode == "closed":
                r = await run_phase(room, mode, duration_s, inflight=1)
            elif mode == "burst":
                r = await run_phase(room, mode, duration_s, inflight=inflight, together=True)
            elif mode == "window":
                r = await run_phase(room, mode, duration_s, inflight=inflight)
            elif mode == "rate":
                # enough messages for stable percentiles even when N is large
                phase_s = max(duration_s, 20 * (n + 1) / rate)
                r = await run_phase(room, mode, phase_s, rate=rate)
            else:
                raise ValueError(mode)
            r["setup_s"] = setup_s
            r["server_rss_bytes"] = target.rss()
            results.append(r)
            print(f"    {target.kind:<10} N={n:<6} {mode:<6} {fmt_phase(r)}", flush=True)
        return results
    finally:
        await common.close_all(room.conns)


def fmt_phase(r: dict[str, Any]) -> str:
    flag = "" if r["complete"] and not r["missing_deliveries"] else f"  INCOMPLETE missing={r['missing_deliveries']}"
    return (f"cpu {common.fmt(r['cpu_us_per_delivery'])} µs/deliv  {common.fmt(r['deliveries_per_s'], 0)} deliv/s  "
            f"p50 {common.fmt(r['p50_ms'])} p99 {common.fmt(r['p99_ms'])} max {common.fmt(r['max_ms'])} ms  "
            f"client {r['client_cpu_util'] * 100:.0f}%{flag}")


def start_target(kind: str, nodes: int, wechat_url: str) -> Target:
    if kind == "heihei":
        target = common.heihei_target(nodes, "live", common.heihei_config(wechat_url))
        common.admin_put_activity(target.cluster)
        return target
    return common.peer_target(kind)


METRICS = ("cpu_us_per_delivery", "deliveries_per_s", "p50_ms", "p99_ms", "max_ms", "client_cpu_util",
           "redis_cpu_us_per_delivery", "server_rss_bytes", "missing_deliveries", "other_frames",
           "node0_p50_ms", "node0_p99_ms", "node0_max_ms", "node1_p50_ms", "node1_p99_ms", "node1_max_ms")


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["server"], r["n"], r["mode"]), []).append(r)
    out = []
    for (server, n, mode), rs in groups.items():
        summary = {"type": "summary", "server": server, "n": n, "mode": mode, "runs": len(rs),
                   **{k: rs[0][k] for k in ("scenario", "session", "commit", "heihei_dirty", "label", "nodes")}}
        summary.update(common.summarize_metrics(rs, METRICS))
        out.append(summary)
    return out


def report(summaries: list[dict[str, Any]], servers: list[str]) -> str:
    """The figures table and the heihei/peer ratios (Markdown, printed and returned)."""
    by = {(s["server"], s["n"], s["mode"]): s for s in summaries}
    ns = sorted({s["n"] for s in summaries})
    modes = [m for m in MODES if any(s["mode"] == m for s in summaries)]
    rows = []
    for n in ns:
        for mode in modes:
            for server in servers:
                s = by.get((server, n, mode))
                if s is None:
                    continue
                get = lambda k, d=2: common.fmt_range(s[k], d) if k in s else "-"  # noqa: E731
                rows.append([str(n), mode, common.SERVER_LABELS.get(server, server), get("cpu_us_per_delivery"),
                             get("deliveries_per_s", 0), get("p50_ms"), get("p99_ms"), get("max_ms"),
                             get("redis_cpu_us_per_delivery"),
                             common.fmt(s["client_cpu_util"]["median"] * 100, 0) + "%"])
    text = common.print_table(["N", "mode", "server", "CPU µs/delivery", "deliveries/s", "p50 ms", "p99 ms",
                               "max ms", "redis µs/deliv", "client CPU"], rows)
    if any("node1_p50_ms" in s for s in summaries):
        rows = []
        for n in ns:
            for mode in modes:
                s = by.get(("heihei", n, mode))
                if s is None or "node1_p50_ms" not in s:
                    continue
                rows.append([str(n), mode] + [common.fmt_range(s[f"node{g}_{k}"]) for g in (0, 1)
                                              for k in ("p50_ms", "p99_ms", "max_ms")])
        print()
        text += "\n\nlatency by receiver node (node 0 = the sender's, node 1 = across Redis):\n\n" + common.print_table(
            ["N", "mode", "node 0 p50", "node 0 p99", "node 0 max", "node 1 p50", "node 1 p99", "node 1 max"], rows)
    peers = [p for p in servers if p != "heihei"]
    if "heihei" in servers and peers:
        print()
        rows = []
        for n in ns:
            for mode in modes:
                h = by.get(("heihei", n, mode))
                if h is None:
                    continue
                row = [str(n), mode]
                for peer in peers:
                    p = by.get((peer, n, mode))
                    for metric in ("cpu_us_per_delivery", "deliveries_per_s", "p99_ms"):
                        r = common.ratio(h.get(metric, {}).get("median"), (p or {}).get(metric, {}).get("median"))
                        row.append(common.fmt(r) + "×" if r is not None else "-")
                rows.append(row)
        headers = ["N", "mode"]
        for peer in peers:
            label = common.SERVER_LABELS[peer]
            headers += [f"CPU/deliv vs {label}", f"deliv/s vs {label}", f"p99 vs {label}"]
        print("heihei/peer ratios (medians; below 1 = heihei cheaper, faster or lower):\n")
        text += "\n\nheihei/peer ratios (medians):\n\n" + common.print_table(headers, rows)
    return text


async def run_scenario(scenario: str, servers: list[str], ns: list[int], runs: int, nodes: int, modes: list[str],
                       duration_s: float, rate: float, inflight: int) -> tuple[list[dict], list[dict], str]:
    label = common.git_label()
    session = common.session_id()
    wechat = await common.FakeWeChat().start()
    records: list[dict[str, Any]] = []
    try:
        for n in ns:
            for run in range(1, runs + 1):
                for kind in servers:
                    print(f"  run {run}/{runs}: {kind} N={n} ({nodes} node{'s' if nodes > 1 else ''})", flush=True)
                    load = common.loadavg()
                    target = await asyncio.get_running_loop().run_in_executor(
                        None, start_target, kind, nodes, wechat.url)
                    try:
                        settle = 2.5 if kind == "heihei" else 0.5
                        phases = await measure_room(target, n, modes, duration_s=duration_s, rate=rate,
                                                    inflight=inflight, settle_s=settle)
                    finally:
                        await asyncio.get_running_loop().run_in_executor(None, target.stop)
                    for phase in phases:
                        records.append({"type": "run", "scenario": scenario, "session": session, **label,
                                        "server": kind, "n": n, "run": run, "nodes": nodes if kind == "heihei" else 1,
                                        "text_chars": TEXT_CHARS, "loadavg": load, **phase})
    finally:
        await wechat.stop()
    summaries = summarize(records)
    path = common.append_results(scenario, records + summaries)
    print(f"\nresults appended to {path} (session {session}, {label['label']})\n")
    text = report(summaries, servers)
    return records, summaries, text
