"""
Scenario 6: the user search index (heihei/heihei/search.py) at 1,000,000 users.

A fresh redis-server (pinned to CPU 0) gets N user profiles
(`user:heihei:<id>` hashes as accounts.py writes them) with generated names
(bench/search_names.py: Chinese names, nicknames, pinyin/English nicknames,
emoji mixes, no name); then this process (pinned to CPU 1, Twisted, the
node's own Store) builds the index with the operator's `reindex_all()`,
which is timed. Redis memory: INFO `used_memory` after the profiles and
after the index, the difference per user. Then, per query class, Q queries
one after the other (closed loop, page of 20), timed around
`UserSearch.search` (the client's time included); the figures are medians of
`--passes` passes with their range. Also timed: renames (`update_profile`,
the profile write and its index change in one script).

    /work/venv/bin/python bench/search_index.py                # 1,000,000 users
    /work/venv/bin/python bench/search_index.py --quick        # 20,000 users, a smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, wsload  # noqa: E402
from bench.cluster import cpu_seconds, free_port, rss_bytes  # noqa: E402
from bench.search_names import NameGenerator  # noqa: E402

FIRST_USER_ID = 10001
FIRST_HEI_NUM = 1000001
CLASSES = ("one_char", "one_char_top", "two_char", "full_name", "latin", "heinum_prefix", "heinum_exact",
           "no_match")
PAGE = 20


def start_redis(tmp: str):
    import redis as redis_sync

    from heihei.store.embedded import redis_server_binary

    port = free_port()
    proc = subprocess.Popen([redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    common.pin(proc.pid, common.SERVER_CPU)
    client = redis_sync.Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port, client
        except redis_sync.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def make_profiles(client, n: int, seed: int) -> dict[str, list]:
    """N profiles, written in pipelines; returns the users by kind of name (for the queries)."""
    gen = NameGenerator(seed)
    by_kind: dict[str, list] = {}
    pipe = client.pipeline(transaction=False)
    now = 1_700_000_000_000
    for i in range(n):
        uid = FIRST_USER_ID + i
        kind, name = gen.name()
        by_kind.setdefault(kind, []).append((str(uid), name))
        pipe.hset(f"hh:user:heihei:{uid}", mapping={
            "id": uid, "heiNum": FIRST_HEI_NUM + i, "displayName": name, "coverUrl": "", "gender": "Unspecified",
            "level": "0", "userType": "Normal", "registered": "1", "created": now + i, "lastModified": now + i})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.set("hh:seq:heihei:user", n)
    client.set("hh:seq:heihei:heinum", n)
    return by_kind


def queries(cls: str, by_kind: dict[str, list], n: int, count: int, rng: random.Random, top_chars: list[str]):
    from heihei.heihei.search import normalize

    chinese = by_kind["chinese"]
    latin = by_kind["latin"]
    out = []
    for _ in range(count):
        if cls == "one_char":  # a character of a random Chinese name: as common as in the names
            name = rng.choice(chinese)[1]
            out.append(rng.choice(name))
        elif cls == "one_char_top":
            out.append(rng.choice(top_chars))
        elif cls == "two_char":
            name = rng.choice(chinese)[1]
            i = rng.randrange(len(name) - 1)
            out.append(name[i:i + 2])
        elif cls == "full_name":
            out.append(rng.choice(chinese)[1])
        elif cls == "latin":  # 3 to 6 characters from a random Latin name, as typed
            joined = normalize(rng.choice(latin)[1]).replace(" ", "")
            size = min(len(joined), rng.randint(3, 6))
            i = rng.randrange(len(joined) - size + 1)
            out.append(joined[i:i + size])
        elif cls == "heinum_prefix":
            out.append(str(FIRST_HEI_NUM + rng.randrange(n))[:rng.randint(4, 6)])
        elif cls == "heinum_exact":
            out.append(str(FIRST_HEI_NUM + rng.randrange(n)))
        elif cls == "no_match":
            if rng.random() < 0.5:
                out.append("".join(rng.choice("qxzvjk") for _ in range(rng.randint(3, 6))))
            else:
                out.append("".join(rng.choice("龘靐齉爩") for _ in range(rng.randint(1, 3))))
    return out


def index_shape(client) -> dict[str, Any]:
    """Gram sets, their entries, how many sit in compact (ziplist) sets, the largest sets, and the
    memory of each structure of the index (MEMORY USAGE, every element counted)."""
    keys = entries = compact_entries = compact_keys = 0
    gram_bytes = 0
    largest: list[tuple[int, str]] = []
    for batch in _batches(client.scan_iter("hh:sg:*", count=2000), 2000):
        pipe = client.pipeline(transaction=False)
        for k in batch:
            pipe.zcard(k)
            pipe.object("encoding", k)
            pipe.memory_usage(k, samples=0)
        replies = pipe.execute()
        for k, card, enc, size in zip(batch, replies[0::3], replies[1::3], replies[2::3]):
            keys += 1
            entries += card
            gram_bytes += size or 0
            if enc in (b"ziplist", b"listpack"):
                compact_keys += 1
                compact_entries += card
            largest.append((card, k.decode()))
        largest = sorted(largest, reverse=True)[:5]
    top = []
    for card, k in largest:
        top.append({"key": k, "members": card, "memory_bytes": client.memory_usage(k, samples=0)})
    return {"gram_keys": keys, "gram_entries": entries, "compact_gram_keys": compact_keys,
            "compact_gram_entries": compact_entries, "largest_sets": top, "gram_bytes": gram_bytes,
            **_usage(client, "names", "hh:sn:*"), **_usage(client, "heinum", "hh:shei:*")}


def _usage(client, name: str, pattern: str) -> dict[str, int]:
    keys = size = 0
    for batch in _batches(client.scan_iter(pattern, count=2000), 2000):
        pipe = client.pipeline(transaction=False)
        for k in batch:
            pipe.memory_usage(k, samples=0)
        keys += len(batch)
        size += sum(s or 0 for s in pipe.execute())
    return {f"{name}_keys": keys, f"{name}_bytes": size}


def _batches(iterable, size):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def evalsha_usec(client) -> tuple[int, float]:
    stats = client.info("commandstats")
    s = stats.get("cmdstat_evalsha") or {}
    e = stats.get("cmdstat_eval") or {}
    return int(s.get("calls", 0)) + int(e.get("calls", 0)), float(s.get("usec", 0)) + float(e.get("usec", 0))


async def run(reactor, args) -> None:
    from heihei.config import parse_redis_url
    from heihei.heihei import search as search_mod
    from heihei.store.client import Store

    label, session = common.git_label(), common.session_id()
    tmp = tempfile.mkdtemp(prefix="heihei-bench-search-")
    proc, port, client = start_redis(tmp)
    store = Store(parse_redis_url(f"redis://127.0.0.1:{port}/0"), reply_timeout_s=60.0, reactor=reactor)
    store.startService()
    await store.ready()
    try:
        load = common.loadavg()
        t0 = time.monotonic()
        by_kind = make_profiles(client, args.n, args.seed)
        profiles_s = time.monotonic() - t0
        client.execute_command("MEMORY", "PURGE")
        mem_before = client.info("memory")
        keys_before = client.dbsize()
        print(f"  {args.n:,} profiles in {profiles_s:.1f} s; used_memory {mem_before['used_memory'] / 2**20:.1f} MiB",
              flush=True)

        search = search_mod.UserSearch(store)
        redis_cpu0, cpu0, t0 = cpu_seconds(proc.pid), time.process_time(), time.monotonic()
        report = await search.reindex_all(batch=args.batch)
        build_s = time.monotonic() - t0
        build = {"build_s": build_s, "build_users_per_s": args.n / build_s,
                 "build_redis_cpu_s": cpu_seconds(proc.pid) - redis_cpu0,
                 "build_client_cpu_s": time.process_time() - cpu0, "indexed": report.indexed,
                 "retried": report.retried}
        client.execute_command("MEMORY", "PURGE")
        mem_after = client.info("memory")
        index_bytes = mem_after["used_memory"] - mem_before["used_memory"]
        memory = {"used_memory_profiles": mem_before["used_memory"], "used_memory_with_index": mem_after["used_memory"],
                  "index_bytes": index_bytes, "index_bytes_per_user": index_bytes / args.n,
                  "redis_rss_bytes": rss_bytes(proc.pid), "index_keys": client.dbsize() - keys_before,
                  "mem_allocator": mem_after.get("mem_allocator")}
        print(f"  index built in {build_s:.1f} s ({build['build_users_per_s']:,.0f} users/s; redis CPU "
              f"{build['build_redis_cpu_s']:.1f} s, this process {build['build_client_cpu_s']:.1f} s); "
              f"index {index_bytes / 2**20:.1f} MiB = {index_bytes / args.n:.0f} B/user", flush=True)
        shape = index_shape(client)
        print(f"  grams {shape['gram_bytes'] / 2**20:.1f} MiB, names {shape['names_bytes'] / 2**20:.1f} MiB "
              f"({shape['names_keys']:,} hashes), heiNums {shape['heinum_bytes'] / 2**20:.1f} MiB "
              f"({shape['heinum_keys']:,} sets) by MEMORY USAGE", flush=True)
        print(f"  {shape['gram_keys']:,} gram sets, {shape['gram_entries']:,} entries "
              f"({shape['compact_gram_entries'] / max(1, shape['gram_entries']):.0%} in compact sets); largest: "
              + ", ".join(f"{search_mod.split(t['key'])[-1]} {t['members']:,} ({t['memory_bytes'] / 2**20:.1f} MiB)"
                          for t in shape["largest_sets"]), flush=True)

        # the million generated names out of every collection (gc.freeze, as a node does for its
        # code, heihei/gctuning.py), so a full collection of this process is not timed as a slow
        # query; the young threshold stays CPython's, so young collections stay short too
        gc.collect()
        gc.freeze()
        top_chars = [search_mod.split(t["key"])[-1] for t in shape["largest_sets"]
                     if search_mod.split(t["key"])[-2] == "1"]
        rng = random.Random(args.seed + 1)
        classes: dict[str, dict[str, Any]] = {}
        for cls in CLASSES:
            qs = queries(cls, by_kind, args.n, args.queries, rng, top_chars or ["王"])
            passes = []
            for _ in range(args.passes):
                calls0, usec0 = evalsha_usec(client)
                lat, totals, estimated, empty = [], [], 0, 0
                for q in qs:
                    t = time.perf_counter_ns()
                    page = await search.search(q, 0, PAGE)
                    lat.append(time.perf_counter_ns() - t)
                    totals.append(page.total)
                    estimated += page.estimated
                    empty += not page.uids
                calls1, usec1 = evalsha_usec(client)
                summary = common.latency_summary(lat)
                summary["redis_usec_per_query"] = (usec1 - usec0) / max(1, calls1 - calls0)
                summary["mean_total"] = sum(totals) / len(totals)
                summary["estimated_share"] = estimated / len(qs)
                summary["empty_share"] = empty / len(qs)
                passes.append(summary)
            # one more pass for each query's own time inside Redis (INFO commandstats before and after
            # it; apart, so the INFO calls do not disturb the client's timing above)
            server = []
            for q in qs:
                before = evalsha_usec(client)[1]
                await search.search(q, 0, PAGE)
                server.append(evalsha_usec(client)[1] - before)
            server.sort()
            for p in passes:
                p.update(redis_p50_us=wsload.percentile(server, 50), redis_p99_us=wsload.percentile(server, 99),
                         redis_max_us=server[-1])
            stats = {m: common.median_range([p[m] for p in passes]) for m in passes[0]}
            classes[cls] = {"queries": len(qs), "examples": qs[:5], **stats}
            print(f"  {cls:<14} p50 {common.fmt_range(stats['p50_ms'], 3)} ms  "
                  f"p99 {common.fmt_range(stats['p99_ms'], 3)} ms"
                  f"  redis {stats['redis_usec_per_query']['median']:.0f} µs/query (p50 "
                  f"{stats['redis_p50_us']['median']:.0f}, p99 {stats['redis_p99_us']['median']:.0f}, max "
                  f"{stats['redis_max_us']['median']:.0f})  mean total "
                  f"{stats['mean_total']['median']:,.0f}  estimated {stats['estimated_share']['median']:.0%}"
                  f"  e.g. {qs[:3]}", flush=True)

        # renames: the profile write and its index change in one script, one after the other
        lat = []
        for i in range(args.renames):
            kind, name = NameGenerator(args.seed + 2 + i).name()
            uid = str(FIRST_USER_ID + rng.randrange(args.n))
            t = time.perf_counter_ns()
            await search.update_profile(uid, {"displayName": name, "lastModified": "1"})
            lat.append(time.perf_counter_ns() - t)
        renames = common.latency_summary(lat)
        print(f"  rename (update_profile) p50 {renames['p50_ms']:.3f} ms  p99 {renames['p99_ms']:.3f} ms", flush=True)

        record = {"type": "run", "scenario": "search_index", "session": session, **label, "n": args.n,
                  "seed": args.seed, "batch": args.batch, "queries_per_class": args.queries, "passes": args.passes,
                  "page": PAGE, "loadavg": load, "profiles_s": profiles_s, **build, **memory, **shape,
                  "classes": classes, "rename": renames, "machine": common.machine()}
        path = common.append_results("search_index", [record])
        print(f"\nresults appended to {path} (session {session}, {label['label']})\n")
        rows = [[cls, common.fmt_range(c["p50_ms"], 3), common.fmt_range(c["p99_ms"], 3),
                 common.fmt(c["redis_usec_per_query"]["median"], 0), common.fmt(c["redis_p50_us"]["median"], 0),
                 common.fmt(c["redis_p99_us"]["median"], 0), common.fmt(c["redis_max_us"]["median"], 0),
                 common.fmt(c["mean_total"]["median"], 0), f"{c['estimated_share']['median']:.0%}"]
                for cls, c in classes.items()]
        common.print_table(["query", "p50 ms", "p99 ms", "redis mean µs", "redis p50 µs", "redis p99 µs",
                            "redis max µs", "mean total", "estimated"], rows)
    finally:
        await store.stopService()
        client.close()
        proc.terminate()
        proc.wait(30)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="users")
    parser.add_argument("--queries", type=int, default=2000, help="queries per class and pass")
    parser.add_argument("--passes", type=int, default=3, help="passes over each class's queries")
    parser.add_argument("--renames", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=None, help="users per reindex script (default: the module's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20,000 users, 200 queries per class, 1 pass")
    parser.add_argument("--results", help="directory for the JSON lines (default bench/results; "
                                          "--quick writes to a temporary directory)")
    args = parser.parse_args(argv)
    common.use_results_dir(args.quick, args.results)
    if args.quick:
        args.n, args.queries, args.passes, args.renames = 20_000, 200, 1, 200
    if args.batch is None:
        from heihei.heihei.search import REINDEX_BATCH

        args.batch = REINDEX_BATCH
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > common.CLIENT_CPU:
        os.sched_setaffinity(0, {common.CLIENT_CPU})
    print(f"search index: {args.n:,} users, {args.queries} queries per class x {args.passes} passes")
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
