"""
Scenario 9 (issue 19): gifts to one anchor across two nodes, exact to the fen.

`--viewers` (1,000) signed-in heihei users join one live; an operator grants
each `--grant` diamonds through the admin API; then `--gifts` (10,000) gifts
of gift 101 (1 diamond, 1 黑票) go through `/api/live/buy-gift`, each viewer's
gifts one combo (`gift_uuid` fixed, `amount` 1, 2, 3 ...), with up to
`--concurrency` requests in flight, each request to a node chosen at random.
A share `--retry` of the gifts is sent again with the same (gift_uuid,
amount), at once and to the other node — a client retrying after a lost
answer — so a retry races its first try.

Checked afterwards (the verdict is `exact`):
- every viewer's diamonds = grant − the distinct gifts answered 0 (a retry's
  answer must equal the first one's balance, never charge again);
- the anchor's 黑票 and the live's totalTickets = the number of those gifts;
- `/admin/heihei/reconcile`: every ledger replays to its balance.
Measured: gift answers per second (distinct gifts and requests), buy-gift
answer latency p50/p99/max (the load generator's clock), node CPU; the box's
load averages are recorded with the figures (it is shared).

    /work/venv/bin/python bench/gifts.py                    # 1,000 viewers, 10,000 gifts, 2 nodes
    /work/venv/bin/python bench/gifts.py --quick            # 50 viewers, 500 gifts (smoke)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.httpload import HttpPool  # noqa: E402
from bench.live_room import bounded, sign_in  # noqa: E402

SCENARIO = "gifts"
SECRET = "bench-server-secret"
GIFT_ID = 101  # resources/money.json: 1 diamond, 1 黑票


def config(wechat_url: str) -> str:
    return common.heihei_config(
        wechat_url,
        heihei={"server_secret": SECRET, "wechat_api_url": wechat_url, "im_rate_per_second": 1000.0,
                "im_rate_burst": 100000},
        lives={"heartbeat_timeout_s": 86400.0})


def admin_call(cluster, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(cluster.nodes[0].url("http", path, "http"), data=data, method=method,
                                     headers={"Authorization": f"Bearer {common.ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


async def run(args) -> dict[str, Any]:
    wechat = await common.FakeWeChat().start()
    target = common.heihei_target(args.nodes, "http", config(wechat.url),
                                  durable=args.kill_redis_after_s is not None or args.durable)
    cluster = target.cluster
    redis_core = common.SERVER_CPU if args.redis_cpu is None else args.redis_cpu
    common.pin(cluster.redis.pid, redis_core)
    pools = [HttpPool(node.url("http", "/", "http"), size=max(8, args.concurrency // args.nodes))
             for node in cluster.nodes]
    rnd = random.Random(args.seed)
    try:
        tag = f"{int(time.time())}{rnd.randrange(1000)}"
        anchor_token, anchor = await sign_in(pools[0], f"ganchor{tag}")
        live = (await pools[0].post("/api/live/create-live", {"token": anchor_token, "title": "gifts"}))["live"]
        live_id = live["liveId"]
        await pools[0].post("/api/live/start-live", {"token": anchor_token, "liveId": live_id})
        viewers = await bounded(args.viewers, lambda i: sign_in(pools[i % len(pools)], f"gv{tag}-{i}"), 64)

        async def join(i: int) -> None:
            body = await pools[i % len(pools)].post("/api/live/join-live", {"token": viewers[i][0],
                                                                             "liveId": live_id})
            if body.get("errorcode") != 0:
                raise RuntimeError(f"join-live refused: {body}")

        await bounded(args.viewers, join, 64)
        await bounded(args.viewers, lambda i: asyncio.to_thread(
            admin_call, cluster, "POST", f"/admin/heihei/users/{viewers[i][1]}/gold",
            {"delta": args.grant, "reason": "bench"}), 16)

        # the gifts: (viewer, amount) in a shuffled order; each viewer's combo counts up in its own order
        plan: list[tuple[int, int]] = []
        taps = [0] * args.viewers
        for k in range(args.gifts):
            v = rnd.randrange(args.viewers)
            taps[v] += 1
            plan.append((v, taps[v]))
        retried = {k for k in range(args.gifts) if rnd.random() < args.retry}
        answers: dict[int, list[dict]] = {k: [] for k in range(args.gifts)}
        latencies: list[int] = []
        gate = asyncio.Semaphore(args.concurrency)
        requests = 0

        dead: set[int] = set()
        failed_tries = 0

        async def attempt(k: int, node: int) -> None:
            """One try and, as the shipped client does, up to 3 retries with the same (gift_uuid, amount)
            when no answer came (here: to the other node, as a client's next connection would)."""
            nonlocal failed_tries
            for retry in range(args.tries):
                try:
                    body = await one_try(k, node)
                    if body.get("errorcode") not in (500, 503):
                        answers[k].append(body)
                        return
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                    pass
                failed_tries += 1
                node = (node + 1) % len(pools)
                await asyncio.sleep(0.1 * (retry + 1))
            answers[k].append({"errorcode": -1, "error": f"no answer after {args.tries} tries"})

        async def one_try(k: int, node: int) -> None:
            nonlocal requests
            if node in dead:
                raise ConnectionRefusedError("killed")
            v, amount = plan[k]
            async with gate:
                t = time.monotonic_ns()
                if args.baseline:  # the same calls to an endpoint that reads one hash: the surface's own cost
                    body = await pools[node].post("/api/user/user-gold", {"token": viewers[v][0]})
                    body = {"errorcode": body["errorcode"], "gold": 0}
                else:
                    body = await pools[node].post("/api/live/buy-gift", {
                        "token": viewers[v][0], "liveId": live_id, "giftId": GIFT_ID, "amount": amount,
                        "gift_uuid": f"combo-{tag}-{v}"})
                latencies.append(time.monotonic_ns() - t)
                requests += 1
            return body

        async def gift(k: int) -> None:
            node = rnd.randrange(len(pools))
            tries = [attempt(k, node)]
            if k in retried:
                tries.append(attempt(k, (node + 1) % len(pools)))
            await asyncio.gather(*tries)

        cpu0 = {node.name: common.cpu_seconds(node.pid) for node in cluster.nodes}
        redis0 = common.cpu_seconds(cluster.redis.pid)
        load = common.loadavg()
        client0 = common.self_cpu()
        t0 = time.monotonic()
        killer = None
        if args.kill_node_after_s is not None and len(cluster.nodes) > 1:
            async def kill() -> None:
                await asyncio.sleep(args.kill_node_after_s)
                victim = cluster.nodes[-1]
                victim.proc.send_signal(signal.SIGKILL)
                dead.add(len(cluster.nodes) - 1)
                print(f"kill -9 node {victim.name} at {time.monotonic() - t0:.2f}s", file=sys.stderr)
            killer = asyncio.ensure_future(kill())
        if args.kill_redis_after_s is not None:
            async def kill_redis() -> None:
                await asyncio.sleep(args.kill_redis_after_s)
                cluster.redis.send_signal(signal.SIGKILL)
                print(f"kill -9 redis at {time.monotonic() - t0:.2f}s", file=sys.stderr)
                await asyncio.sleep(args.redis_down_s)
                await asyncio.to_thread(cluster.restart_redis)
                common.pin(cluster.redis.pid, redis_core)
                print(f"redis back at {time.monotonic() - t0:.2f}s", file=sys.stderr)
            killer = asyncio.ensure_future(kill_redis())
        await asyncio.gather(*(gift(k) for k in range(args.gifts)))
        elapsed = time.monotonic() - t0
        if killer is not None:
            killer.cancel()
        live_pool = pools[0]
        cpu0 = {n: c for n, c in cpu0.items() if n in {cluster.nodes[i].name for i in range(len(cluster.nodes))
                                                      if i not in dead}}
        cpu = {node.name: common.cpu_seconds(node.pid) - cpu0[node.name]
               for node in cluster.nodes if node.name in cpu0}
        redis_cpu = common.cpu_seconds(cluster.redis.pid) - redis0
        client_cpu = common.self_cpu() - client0

        if args.baseline:
            return {"server": "heihei", "baseline": "user-gold", "nodes": args.nodes, "requests": requests,
                    "elapsed_s": round(elapsed, 3), "requests_per_s": round(requests / elapsed, 1),
                    **{f"answer_{m}": (round(v, 2) if v is not None else None)
                       for m, v in common.latency_summary(latencies).items()},
                    "node_cpu_pct": {n: round(100 * c / elapsed, 1) for n, c in cpu.items()},
                    "node_cpu_ms_per_request": round(1000 * sum(cpu.values()) / requests, 3),
                    "redis_cpu_pct": round(100 * redis_cpu / elapsed, 1), "concurrency": args.concurrency,
                    "exact": True, "loadavg_before": load, "loadavg_after": common.loadavg()}
        # the verdict: an acknowledged gift (answered 0) is charged exactly once; one that never got an
        # answer (every try failed during a kill) may or may not be; the diamonds spent, the anchor's 黑票
        # and the live's totalTickets agree whatever happened
        acked = [0] * args.viewers
        unanswered = [0] * args.viewers
        problems: list[str] = []
        refused = 0
        for k, bodies in answers.items():
            codes = {b.get("errorcode") for b in bodies}
            if 0 in codes:
                acked[plan[k][0]] += 1
                golds = {b["gold"] for b in bodies if b.get("errorcode") == 0}
                if len(golds) != 1:
                    problems.append(f"gift {k}: a retry answered another balance {bodies}")
                if codes - {0, -1}:
                    problems.append(f"gift {k}: answered 0 and also {bodies}")
            elif codes == {740}:
                refused += 1
            elif codes <= {-1, 740}:
                unanswered[plan[k][0]] += 1
            else:
                problems.append(f"gift {k}: answers {bodies}")
        spent_total = 0
        for v, (token, uid) in enumerate(viewers):
            gold = (await live_pool.post("/api/user/user-gold", {"token": token}))["user"]["gold"]
            spent = args.grant - gold
            spent_total += spent
            if not acked[v] <= spent <= acked[v] + unanswered[v]:
                problems.append(f"viewer {uid}: spent {spent}, acknowledged {acked[v]} (+{unanswered[v]} unanswered)")
        total = sum(acked)
        point = (await live_pool.post("/api/payment/statistic", {"token": anchor_token}))["point"]
        tickets = (await live_pool.post("/api/live/get-live", {"token": anchor_token, "liveId": live_id}))["live"][
            "totalTickets"]
        if point != spent_total or tickets != spent_total:
            problems.append(f"anchor: {point} 黑票, live totalTickets {tickets}, diamonds spent {spent_total}")
        report = await asyncio.to_thread(admin_call, cluster, "POST", "/admin/heihei/reconcile")
        if not report["ok"]:
            problems.append(f"reconcile: {report['mismatches'][:5]}")
        lat = common.latency_summary(latencies)
        return {"server": "heihei", "nodes": args.nodes, "viewers": args.viewers, "gifts": args.gifts,
                "retried": len(retried), "requests": requests, "acknowledged": total, "charged": spent_total,
                "unanswered": sum(unanswered), "refused_740": refused,
                "elapsed_s": round(elapsed, 3), "gifts_per_s": round(args.gifts / elapsed, 1),
                "requests_per_s": round(requests / elapsed, 1),
                "requests_per_s_per_node": round(requests / elapsed / args.nodes, 1),
                **{f"buy_gift_{m}": (round(v, 2) if v is not None else None) for m, v in lat.items()},
                "node_cpu_pct": {n: round(100 * c / elapsed, 1) for n, c in cpu.items()},
                "node_cpu_ms_per_request": round(1000 * sum(cpu.values()) / requests, 3),
                "redis_cpu_pct": round(100 * redis_cpu / elapsed, 1),
                "client_cpu_pct": round(100 * client_cpu / elapsed, 1), "concurrency": args.concurrency,
                "reconciled_users": report["users"], "ledger_entries": report["entries"],
                "killed_nodes": len(dead), "killed_redis": args.kill_redis_after_s is not None, "durable": cluster.durable, "failed_tries": failed_tries,
                "exact": not problems, "problems": problems[:20], "loadavg_before": load,
                "loadavg_after": common.loadavg()}
    finally:
        for pool in pools:
            pool.close()
        target.stop()
        await wechat.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--gifts", type=int, default=10000)
    parser.add_argument("--grant", type=int, default=12, help="diamonds per viewer (some run out: 740)")
    parser.add_argument("--retry", type=float, default=0.2, help="share of gifts sent twice")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--redis-cpu", type=int, default=None,
                        help="pin redis-server to this CPU (default: the servers' CPU 0; 1 = with the load "
                             "generator, so one node has CPU 0 to itself)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--kill-node-after-s", type=float, default=None,
                        help="kill -9 the last node this long into the gifts (its clients retry on the other)")
    parser.add_argument("--kill-redis-after-s", type=float, default=None,
                        help="kill -9 redis-server (AOF, fsync always) this long into the gifts, restart it")
    parser.add_argument("--redis-down-s", type=float, default=1.0)
    parser.add_argument("--durable", action="store_true", help="Redis with an fsynced AOF (no kill)")
    parser.add_argument("--tries", type=int, default=4, help="tries per gift (the shipped client: 1 + 3 retries)")
    parser.add_argument("--baseline", action="store_true",
                        help="the same requests to /api/user/user-gold instead (the surface's cost per call)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results", help="directory for the results (default bench/results)")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.gifts = 50, 500
    common.use_results_dir(args.quick, args.results)
    record = asyncio.run(run(args))
    record.update({"scenario": SCENARIO + ("-baseline" if args.baseline else ""), "session": common.session_id(), **common.git_label(), **common.machine()})
    common.append_results(SCENARIO, [record])
    print(json.dumps(record, ensure_ascii=False, indent=1))
    if not record["exact"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
