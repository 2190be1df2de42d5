"""
Many connections at once: shared by `storm.py` (time to connect and
authenticate) and `idle_memory.py` (RSS per idle authenticated connection).

heihei's authenticated connection is a boss-protocol login (seed 002, plain
`login_<id>` with `[boss] insecure_login = true`), answered `ok` once the
user is registered in presence (Redis) and its inbox was replayed. The peers
have no authentication: for them a connection is the WebSocket handshake
alone, so their rows are a floor, not the same work (the report says so).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from typing import Any

from bench import common, wsload


def start_target(kind: str) -> common.Target:
    if kind == "heihei":
        return common.heihei_target(1, "boss", common.heihei_config(), "/entry")
    return common.peer_target(kind)


async def connect_clients(target: common.Target, n: int, concurrency: int, prefix: str = "u",
                          timeout_s: float = 120.0) -> dict[str, Any]:
    """Open n connections (at most `concurrency` in progress); authenticate them on heihei.

    Returns the open connections and the figures: time until every client was
    ready, and per client the time from its first SYN to the handshake and to
    `ok` (heihei; the peers' clients are ready after the handshake)."""
    url = target.urls[0]
    auth = target.kind == "heihei"
    gate = asyncio.Semaphore(concurrency)
    conns: list[wsload.WSClient] = []
    handshake_ns, ready_ns, done_ns = array("q"), array("q"), array("q")
    errors: Counter = Counter()
    t0 = time.monotonic_ns()

    async def one(i: int) -> None:
        async with gate:
            start = time.monotonic_ns()
            try:
                conn = await wsload.WSClient.connect(url, timeout=timeout_s)
            except Exception as e:  # every failure is counted, by kind
                errors[f"connect: {type(e).__name__}: {str(e)[:80]}"] += 1
                return
            handshake_ns.append(time.monotonic_ns() - start)
            conns.append(conn)
            if auth:
                conn.send_text(f"login_{prefix}{i}")
                try:
                    answer = await conn.next_text(timeout_s)
                except Exception as e:
                    errors[f"login: {type(e).__name__}"] += 1
                    return
                if answer != b"ok":
                    errors[f"login answer: {answer[:60]!r}"] += 1
                    return
            now = time.monotonic_ns()
            ready_ns.append(now - start)
            done_ns.append(now - t0)

    cpu0, aux0 = target.cpu(), target.aux_cpu()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall_s = (time.monotonic_ns() - t0) / 1e9
    cpu_s = target.cpu() - cpu0
    aux = {k: v - aux0[k] for k, v in target.aux_cpu().items()}
    ready, hs, done = sorted(ready_ns), sorted(handshake_ns), sorted(done_ns)
    result = {
        "n": n, "concurrency": concurrency, "authenticated": auth, "ready": len(ready), "errors": dict(errors),
        "error_count": sum(errors.values()), "wall_s": wall_s,
        "all_ready_s": done[-1] / 1e9 if done else None,
        "connections_per_s": len(done) / (done[-1] / 1e9) if done else None,
        "ready_p50_ms": wsload.percentile(ready, 50) / 1e6 if ready else None,
        "ready_p99_ms": wsload.percentile(ready, 99) / 1e6 if ready else None,
        "handshake_p50_ms": wsload.percentile(hs, 50) / 1e6 if hs else None,
        "handshake_p99_ms": wsload.percentile(hs, 99) / 1e6 if hs else None,
        "server_cpu_s": cpu_s, "cpu_us_per_connection": cpu_s / len(ready) * 1e6 if ready else None,
    }
    for name, seconds in aux.items():
        result[f"{name}_cpu_us_per_connection"] = seconds / len(ready) * 1e6 if ready else None
    return {"result": result, "conns": conns}


async def warm_up(target: common.Target, n: int = 200) -> None:
    """Connect, authenticate and drop a few clients so lazy set-up is not charged to the storm."""
    warm = await connect_clients(target, n, n, prefix="warm")
    await common.close_all(warm["conns"])
    await asyncio.sleep(1.0)
