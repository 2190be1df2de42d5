"""
Chaos: do acknowledged messages survive crashes? Two real `twistd heihei`
nodes on one redis-server with AOF on (`appendonly yes`, `appendfsync
everysec`), traffic on all four protocols at a steady rate, and faults
injected several times each while it runs:

- `kill -9` of each node, started again with the same node id and ports;
- `kill -9` of redis-server, started again on the same data dir and port
  (the AOF reloads);
- redis-server frozen with SIGSTOP for a few seconds, then SIGCONT (the
  full run alternates 3 s, under the nodes' 5 s reply timeout, and 7 s, over it).

Senders and receivers are spread over both nodes (for the 1:1 protocols each
receiver is on the other node than its sender); some receivers go offline
for a while and log in again. Clients reconnect with backoff and resend what
was not acknowledged. At the end the senders stop, every receiver is
connected and has replayed or pulled (stage "quiet"), then every receiver
logs in once more (stage "relogin": what only arrives then was stuck in an
inbox while its receiver was connected). The verdict, per protocol: acked,
delivered, lost (acked, never delivered), duplicated, out of order,
delivered although not acked; exit status 1 on any acked loss.

What counts as acknowledged, per protocol (bench/README.md, "Chaos"):
boss: no `error_` before the answer to a `records_` request sent right
after the message; jim: cmd 12 with code 10000 or 10001; heihei (push
channel): the sender's own copy of the IM (with its `clientMsgId` and a
`msgId`); live: the sender's own copy of the room message (`my` "1");
bossgroup (issue 15: boss group messages, one log per group, a cursor per
member; a group per sender and its receiver, made with `creategrp`): as boss,
with `records_<group>_..._group`; jimgroup (J-IM group messages on the same
logs, the cursor moving only over what is contiguous; a group per sender and
its receiver, joined with cmd 7 under `[jim] open_groups`): as jim, cmd 12
with code 10000; the receiver gets pushes and pulls (cmd 19 type 0).

    /work/venv/bin/python bench/chaos.py              # full: about 5 minutes
    /work/venv/bin/python bench/chaos.py --quick      # under a minute, results in /tmp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, wsload  # noqa: E402
from bench.chaos_clients import ACTIVITY, RECEIVERS, SENDERS, NodeAddr, World  # noqa: E402
from bench.chaos_ledger import PROTOCOLS, Ledger, longest_pause  # noqa: E402
from bench.cluster import BACKLOG, ROOT, TWISTD, _limits, free_port  # noqa: E402

NODE_DOWN_S = 2.0
#: the boss api key of the run (group traffic creates its groups through the group HTTP API)
BOSS_API_KEY = "chaos-api-key"
REDIS_DOWN_S = 2.0
START_TIMEOUT_S = 60.0
#: log lines worth reading after a run


# -- the processes -------------------------------------------------------------------------------


@dataclass
class RedisProc:
    dir: str
    port: int
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        from heihei.store.embedded import redis_server_binary

        self.proc = subprocess.Popen(
            [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready(self) -> bool:
        """PONG (not -LOADING while the AOF is read back)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def dbsize(self) -> int | None:
        """Keys in db 0 (to see the AOF brought them back), None if Redis does not answer."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"DBSIZE\r\n")
                answer = s.recv(64)
            return int(answer[1:].split(b"\r\n")[0]) if answer.startswith(b":") else None
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.ready():
                return time.monotonic() - t
            time.sleep(0.05)
        raise RuntimeError("redis-server did not come back")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class NodeProc:
    name: str
    dir: str
    config: str
    redis_port: int
    ports: dict[str, int] = field(default_factory=lambda: {k: free_port() for k in ("http", "live", "boss", "jim")})
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, f"{self.name}.log")

    def start(self) -> None:
        # JSON logs: millisecond times, to line them up with the ledger (`t0_unix` in the record)
        args = [TWISTD, "-n", "--pidfile=", "heihei", "--config", self.config,
                "--redis", f"redis://127.0.0.1:{self.redis_port}/0", "--node-id", self.name,
                "--data-dir", os.path.join(self.dir, self.name), "--log-format", "json"]
        for listener, port in self.ports.items():
            args += [f"--{listener}", f"tcp:{port}:interface=127.0.0.1:backlog={BACKLOG}"]
        self.starts += 1
        with open(self.log_path, "a") as log:  # appended across restarts: one log per node id
            log.write(f"==== chaos: start {self.starts} of {self.name} ====\n")
            log.flush()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, PYTHONPATH=ROOT), preexec_fn=_limits(None))

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['http']}/healthz", timeout=2) as r:
                return bool(json.loads(r.read())["redis"]["reachable"])
        except (OSError, ValueError, KeyError):
            return False

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> float:
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited; see {self.log_path}")
            if self.healthy():
                return time.monotonic() - t
            time.sleep(0.1)
        raise RuntimeError(f"node {self.name} did not become healthy; see {self.log_path}")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- faults --------------------------------------------------------------------------------------


def fault_plan(rounds: int, freezes: list[float]) -> list[tuple[str, Any]]:
    """Each round: kill node n0, kill redis, kill node n1, freeze redis (durations in turn)."""
    plan = []
    for r in range(rounds):
        plan += [("kill-node", "n0"), ("kill-redis", None), ("kill-node", "n1"),
                 ("freeze-redis", freezes[r % len(freezes)])]
    return plan


async def inject(world: World, redis: RedisProc, nodes: list[NodeProc], plan, first_s: float, every_s: float,
                 timeline: list[dict[str, Any]]) -> None:
    loop = asyncio.get_running_loop()

    async def off(fn, *args):
        return await loop.run_in_executor(None, fn, *args)

    for i, (kind, arg) in enumerate(plan):
        delay = first_s + i * every_s - world.now()
        if delay > 0:
            await asyncio.sleep(delay)
        entry: dict[str, Any] = {"t": round(world.now(), 2)}
        if kind == "kill-node":
            node = next(n for n in nodes if n.name == arg)
            entry["fault"] = f"kill -9 node {arg}"
            await off(node.kill9)
            await asyncio.sleep(NODE_DOWN_S)
            node.start()
            await off(node.wait_healthy)
        elif kind == "kill-redis":
            entry["fault"] = "kill -9 redis-server"
            entry["keys_before"] = await off(redis.dbsize)
            await off(redis.kill9)
            await asyncio.sleep(REDIS_DOWN_S)
            redis.start()
            await off(redis.wait_ready)
            entry["keys_after_reload"] = await off(redis.dbsize)
            entry["redis_back_s"] = round(world.now() - entry["t"], 2)
            for node in nodes:
                await off(node.wait_healthy)
        else:
            entry["fault"] = f"SIGSTOP redis-server {arg:g} s"
            redis.signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(arg)
            finally:
                redis.signal(signal.SIGCONT)
        entry["end"] = round(world.now(), 2)
        entry["back_s"] = round(entry["end"] - entry["t"], 2)
        timeline.append(entry)
        keys = f" (keys {entry['keys_before']} before, {entry['keys_after_reload']} after the AOF reload)" \
            if "keys_before" in entry else ""
        print(f"  [{entry['t']:7.2f}] {entry['fault']}: everything back after {entry['back_s']:.2f} s{keys}", flush=True)


# -- set-up through the real APIs ------------------------------------------------------------------


def http_json(url: str, data: dict | None = None, method: str = "POST", headers: dict | None = None) -> Any:
    body = None if data is None else urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=15) as r:
        return json.loads(r.read())


def put_activity(node: NodeProc) -> None:
    now = int(time.time())
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.ports['http']}/admin/live/activities/{ACTIVITY}",
        data=json.dumps({"title": "chaos", "startTime": now - 60, "endTime": now + 86400}).encode(), method="PUT",
        headers={"Authorization": f"Bearer {common.ADMIN_TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as r:
        r.read()


def boss_group(node: NodeProc, creator: str, member: str) -> str:
    """A boss group of two through the group HTTP API (`creategrp`); returns its id."""
    query = urllib.parse.urlencode({"creator": creator, "members": member, "name": "chaos", "api_key": BOSS_API_KEY})
    with urllib.request.urlopen(f"http://127.0.0.1:{node.ports['boss']}/creategrp?{query}", timeout=15) as r:
        answer = json.loads(r.read())
    if answer.get("code") != 1:
        raise RuntimeError(f"creategrp refused: {answer}")
    return str(answer["data"]["groupid"])


def heihei_sign_in(node: NodeProc, name: str) -> tuple[str, str]:
    """A seed-001 account through WeChat sign-in (the fake WeChat: token AT-<code>, openid o-<code>)."""
    answer = http_json(f"http://127.0.0.1:{node.ports['http']}/api/user/sign-in",
                       {"accountSource": "Wechat", "accountToken": f"AT-{name}", "openId": f"o-{name}"})
    if answer.get("errorcode") != 0:
        raise RuntimeError(f"sign-in of {name} refused: {answer}")
    return str(answer["userInfo"]["id"]), answer["token"]


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Plan:
    pairs: int
    live_senders: int
    live_receivers: int
    interval_s: float
    duration_s: float
    rounds: int
    first_fault_s: float
    fault_every_s: float
    freezes: list[float]
    offline_every_s: float
    offline_s: tuple[float, float]
    drain_s: float
    quiet_s: float
    seed: int


def offline_periods(rng: random.Random, plan: Plan) -> list[tuple[float, float]]:
    periods, t = [], rng.uniform(3.0, plan.offline_every_s)
    while t < plan.duration_s - 2:
        length = rng.uniform(*plan.offline_s)
        periods.append((round(t, 2), round(t + length, 2)))
        t += length + rng.uniform(0.5, 1.5) * plan.offline_every_s
    return periods


def build_agents(world: World, plan: Plan, rng: random.Random) -> tuple[list, list]:
    senders, receivers = [], []
    for proto in ("boss", "jim", "heihei", "bossgroup", "jimgroup"):
        short = {"boss": "b", "jim": "j", "heihei": "h", "bossgroup": "g", "jimgroup": "k"}[proto]
        for i in range(plan.pairs):
            s_node, r_node = i % 2, (i + 1) % 2
            r_name = f"c{short}r{i}"
            offline = offline_periods(rng, plan) if i % 2 == 1 else []
            receiver = RECEIVERS[proto](world, r_name, r_node, offline)
            to = world.heihei[r_name][0] if proto == "heihei" else r_name
            receivers.append(receiver)
            senders.append(SENDERS[proto](world, f"c{short}s{i}", s_node, to))
    for i in range(plan.live_receivers):
        offline = offline_periods(rng, plan) if i % 2 == 1 else []
        receivers.append(RECEIVERS["live"](world, f"clr{i}", i % 2, offline))
    for i in range(plan.live_senders):
        senders.append(SENDERS["live"](world, f"cls{i}", i % 2, ACTIVITY))
    return senders, receivers


async def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


def status_line(world: World, senders, receivers) -> str:
    acked = Counter(o.proto for o in world.ledger.outgoing.values() if o.acked is not None)
    got = Counter(d.proto for d in world.ledger.deliveries)
    up = sum(a.logged_in for a in senders + receivers)
    per = " ".join(f"{p} {acked[p]}/{got[p]}" for p in PROTOCOLS)
    return f"  [{world.now():7.2f}] acked/deliveries: {per}; clients logged in {up}/{len(senders) + len(receivers)}"


async def scenario(plan: Plan, workdir: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rng = random.Random(plan.seed)
    wechat = await common.FakeWeChat().start()
    config_path = os.path.join(workdir, "chaos.toml")
    with open(config_path, "w") as f:
        f.write(common.heihei_config(
            wechat.url,
            jim={"insecure_login": True, "chat_rate_per_s": 1e6, "chat_burst": 1_000_000, "open_groups": True},
            boss={"api_key": BOSS_API_KEY},
            heihei={"wechat_api_url": wechat.url, "im_rate_per_second": 1e6, "im_rate_burst": 1_000_000}))
    redis = RedisProc(workdir, free_port())
    nodes = [NodeProc(f"n{i}", workdir, config_path, redis.port) for i in range(2)]
    timeline: list[dict[str, Any]] = []
    tasks: list[asyncio.Task] = []
    world = World([NodeAddr(n.name, n.ports) for n in nodes], Ledger(), plan.interval_s, rng)
    try:
        redis.start()
        await loop.run_in_executor(None, redis.wait_ready)
        for node in nodes:
            node.start()
        for node in nodes:
            await loop.run_in_executor(None, node.wait_healthy)
        await loop.run_in_executor(None, put_activity, nodes[0])
        for short in ("hs", "hr"):
            for i in range(plan.pairs):
                name = f"c{short}{i}"
                world.heihei[name] = await loop.run_in_executor(None, heihei_sign_in, nodes[i % 2], name)

        for i in range(plan.pairs):  # boss group traffic: one group per sender and its receiver
            world.boss_groups[f"cgs{i}"] = await loop.run_in_executor(
                None, boss_group, nodes[i % 2], f"cgs{i}", f"cgr{i}")

        async def sign_in_again(name: str) -> None:
            world.heihei[name] = await loop.run_in_executor(None, heihei_sign_in, nodes[0], name)

        world.heihei_sign_in = sign_in_again
        senders, receivers = build_agents(world, plan, rng)
        everyone = senders + receivers
        world.t0 = time.monotonic() + 3600  # no offline periods while everyone logs in
        world.offline_until = plan.duration_s
        tasks = [asyncio.create_task(a.main()) for a in receivers]
        if not await wait_until(lambda: all(a.logged_in for a in receivers), 60):
            raise RuntimeError("receivers could not log in: " + str({a.name: dict(a.failures) for a in receivers
                                                                      if not a.logged_in}))
        world.t0 = time.monotonic()
        world.t0_unix = time.time()
        tasks += [asyncio.create_task(a.main()) for a in senders]
        print(f"  {len(senders)} senders, {len(receivers)} receivers, {len(fault_plan(plan.rounds, plan.freezes))}"
              f" faults; run directory {workdir}", flush=True)
        faults = asyncio.create_task(inject(world, redis, nodes, fault_plan(plan.rounds, plan.freezes),
                                            plan.first_fault_s, plan.fault_every_s, timeline))

        async def report_status() -> None:
            while True:
                await asyncio.sleep(10)
                print(status_line(world, senders, receivers), flush=True)

        reporter = asyncio.create_task(report_status())
        await asyncio.sleep(max(0.0, plan.duration_s - world.now()))
        await faults  # a fault still recovering finishes first
        # the offered load stops; each sender finishes the message it has in flight
        world.ledger.phase = "drain"
        world.stop_new.set()
        t_drain = world.now()
        drained = await wait_until(lambda: all(s.done for s in senders), plan.drain_s)
        if not drained:
            world.give_up.set()
            await wait_until(lambda: all(s.done for s in senders), 20)
        # every receiver connected, jim pulls once more; then every receiver logs in afresh
        world.ledger.phase = "quiet"
        t_quiet = world.now()
        all_in = await wait_until(lambda: all(a.logged_in for a in receivers), 60)
        world.pull += 1
        await asyncio.sleep(plan.quiet_s)
        world.ledger.phase = "relogin"
        t_relogin = world.now()
        logins = {a.name: a.logins for a in receivers}
        world.relogin += 1
        relogged = await wait_until(lambda: all(a.logins > logins[a.name] and a.logged_in for a in receivers), 60)
        await asyncio.sleep(plan.quiet_s)
        world.finished.set()
        reporter.cancel()
        print(status_line(world, senders, receivers), flush=True)
        end = {"drain_started": round(t_drain, 2), "drained": drained, "quiet_started": round(t_quiet, 2),
               "all_receivers_connected": all_in, "relogin_started": round(t_relogin, 2),
               "all_relogged": relogged, "ended": round(world.now(), 2)}
        await asyncio.wait(tasks, timeout=10)
        return {"world": world, "senders": senders, "receivers": receivers, "timeline": timeline, "end": end,
                "nodes": nodes, "redis": redis}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in nodes:
            await loop.run_in_executor(None, node.stop)
        await loop.run_in_executor(None, redis.stop)
        await wechat.stop()


# -- the report ----------------------------------------------------------------------------------


def scan_logs(nodes: list[NodeProc]) -> dict[str, Any]:
    """Warnings, errors and tracebacks in the node logs (JSON lines, across restarts), counted by
    message shape (numbers masked)."""
    out: dict[str, Any] = {}
    for node in nodes:
        levels: Counter = Counter()
        shapes: Counter = Counter()
        tracebacks = 0
        try:
            with open(node.log_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        if line.startswith("Traceback"):
                            tracebacks += 1
                        continue
                    if not isinstance(event, dict):
                        continue
                    level = event.get("level", "")
                    if event.get("traceback"):
                        tracebacks += 1
                    if level in ("warn", "error", "critical"):
                        levels[level] += 1
                        text = re.sub(r"\d+(\.\d+)?", "N", str(event.get("message", "")))[:140]
                        shapes[f"{level}: {text}"] += 1
        except OSError:
            pass
        out[node.name] = {"starts": node.starts, "levels": dict(levels), "tracebacks": tracebacks,
                          "messages": dict(shapes.most_common(25))}
    return out


def fault_effects(world: World, timeline: list[dict[str, Any]]) -> None:
    """Per fault and protocol: the longest pause between two acks that overlaps the fault."""
    for entry in timeline:
        entry["longest_ack_pause_s"] = {
            p: (round(v, 2) if (v := longest_pause(world.ledger.ack_times(p), entry["t"], entry["end"])) is not None
                else None) for p in PROTOCOLS}


def client_figures(agents) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for proto in PROTOCOLS:
        mine = [a for a in agents if a.proto == proto]
        failures: Counter = Counter()
        for a in mine:
            failures.update(a.failures)
        out[proto] = {"logins": sum(a.logins for a in mine), "connections": sum(a.serial for a in mine),
                      "failures": dict(failures.most_common(8))}
    return out


HEADERS = ["protocol", "messages", "acked", "attempts (refused / unanswered)", "delivered", "lost", "held", "late",
           "duplicated (same attempt / resends)", "out of order", "unacked but delivered",
           "refused but delivered", "delay p50 / p99 / max s"]


def verdict_rows(verdict: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for p in PROTOCOLS:
        v = verdict[p]
        delivered = f"{v['delivered']}" if p != "live" else f"{v['delivered_pairs']} of {v['owed_pairs']} owed pairs"
        lost = f"{v['lost']}" + (" pairs" if p == "live" else "")
        rows.append([p, str(v["messages"]), str(v["acked"]),
                     f"{v['attempts']} ({v['attempts_refused']} / {v['attempts_unanswered']})", delivered, lost,
                     "-" if p == "live" else str(v["held"]), str(v["late"]),
                     f"{v['duplicated']} ({v['redelivered']} / {v['resend_copies']})",
                     str(v["out_of_order"]), str(v["unacked_delivered"]), str(v["refused_but_delivered"]),
                     "-" if p == "live" else
                     " / ".join(common.fmt(v[k]) for k in ("delay_p50_s", "delay_p99_s", "delay_max_s"))])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=270.0, help="seconds of traffic (faults happen inside)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of faults, each: kill n0, kill redis, kill n1, freeze redis")
    parser.add_argument("--fault-every", type=float, default=20.0, help="seconds between fault starts")
    parser.add_argument("--first-fault", type=float, default=15.0, help="seconds before the first fault")
    parser.add_argument("--freeze", type=float, nargs="+", default=[3.0, 7.0],
                        help="SIGSTOP durations, used in turn (heihei's Redis reply timeout is 5 s)")
    parser.add_argument("--pairs", type=int, default=4,
                        help="sender/receiver pairs per 1:1 protocol (boss, jim, heihei) and of boss groups")
    parser.add_argument("--live-senders", type=int, default=3)
    parser.add_argument("--live-receivers", type=int, default=6)
    parser.add_argument("--interval", type=float, default=0.25, help="mean seconds between a sender's messages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, AOF) even without loss")
    parser.add_argument("--quick", action="store_true", help="30 s of traffic, one round of faults, 2 pairs")
    parser.add_argument("--results", help="directory for the JSON lines (default bench/results; "
                                          "--quick writes to a temporary directory)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.duration, args.rounds, args.fault_every, args.first_fault = 30.0, 1, 6.5, 3.0
        args.pairs, args.live_senders, args.live_receivers, args.freeze = 2, 2, 4, [3.0]
    plan = Plan(pairs=args.pairs, live_senders=args.live_senders, live_receivers=args.live_receivers,
                interval_s=args.interval, duration_s=args.duration, rounds=args.rounds,
                first_fault_s=args.first_fault, fault_every_s=args.fault_every, freezes=args.freeze,
                offline_every_s=8.0 if args.quick else 35.0, offline_s=(3.0, 5.0) if args.quick else (4.0, 9.0),
                drain_s=20.0 if args.quick else 40.0, quiet_s=4.0 if args.quick else 8.0, seed=args.seed)
    last_fault = plan.first_fault_s + (4 * plan.rounds - 1) * plan.fault_every_s
    if last_fault >= plan.duration_s:
        parser.error(f"the last fault would start at {last_fault:g} s, after --duration {plan.duration_s:g} s")
    wsload.raise_nofile_limit(65536)
    label, session = common.git_label(), common.session_id()
    workdir = tempfile.mkdtemp(prefix="heihei-chaos-")
    print(f"chaos: {plan.duration_s:g} s of traffic, {4 * plan.rounds} faults, {label['label']}", flush=True)
    t_start = time.monotonic()
    result = asyncio.run(scenario(plan, workdir))
    world: World = result["world"]
    verdict = world.ledger.verdict()
    fault_effects(world, result["timeline"])
    logs = scan_logs(result["nodes"])
    with open(os.path.join(workdir, "ledger.json"), "w") as f:
        json.dump(world.ledger.dump(), f)
    clients = client_figures(result["senders"] + result["receivers"])
    lost = sum(v["lost"] for v in verdict.values())
    record = {"type": "run", "scenario": "chaos", "session": session, **label, "quick": args.quick,
              "loadavg": common.loadavg(), "wall_s": round(time.monotonic() - t_start, 1),
              "t0_unix": world.t0_unix,
              "plan": plan.__dict__, "faults": result["timeline"], "end": result["end"], "verdict": verdict,
              "clients": clients, "events": dict(world.events), "server_logs": logs, "acked_loss": lost,
              "run_dir": workdir if (lost or args.keep) else None}
    path = common.append_results("chaos", [record])
    print(f"\nresults appended to {path} (session {session}, {label['label']})\n")
    print("fault timeline (s since start; longest pause between two acks overlapping the fault):")
    common.print_table(["t", "fault", "back after s"] + list(PROTOCOLS),
                       [[f"{e['t']:.1f}", e["fault"], f"{e['back_s']:.2f}"]
                        + [common.fmt(e["longest_ack_pause_s"][p]) for p in PROTOCOLS] for e in result["timeline"]])
    print()
    common.print_table(HEADERS, verdict_rows(verdict))
    print()
    for p in PROTOCOLS:
        v = verdict[p]
        extra = {k: v[k] for k in ("refusals", "misrouted", "unknown_tags", "unanswered_but_delivered",
                                   "out_of_order_pulled") if v[k]}
        print(f"{p}: {extra} clients {clients[p]}")
        for item in v["lost_detail"][:5]:
            print(f"  LOST {item}")
        for item in v["held_detail"][:5]:
            print(f"  held {item}")
        for item in v["late_detail"][:5]:
            print(f"  late {item}")
    print(f"end: {result['end']}; events {dict(world.events)}")
    for name, info in logs.items():
        print(f"server log {name}: {info['starts']} starts, {info['levels']}, {info['tracebacks']} tracebacks")
        for shape, n in list(info["messages"].items())[:12]:
            print(f"    {n:5d} × {shape}")
    if lost or args.keep:
        print(f"\nrun directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if lost:
        print(f"\nACKED LOSS: {lost} (see LOST lines above)")
        return 1
    print("\nno acknowledged message was lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
