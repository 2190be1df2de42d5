"""Countdowns over Redis deadlines (heihei.heihei.countdowns, deadlines): fired once by whichever of two sweepers
claims them, left to another when the claimer dies, and a re-arm during the fire is never lost — not even one to
exactly `now + lease`."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import task

from heihei.heihei.countdowns import Countdowns
from heihei.heihei.deadlines import Deadlines
from tests.heihei.chathelpers import settle
from tests.test_store import started

KEY = "hh:test-countdowns"


async def two_sweepers(store, clock, fire_a, fire_b, lease_s=10.0):
    da = Deadlines(store, clock, KEY, lease_s=lease_s)
    db = Deadlines(store, clock, KEY, lease_s=lease_s)
    return (da, Countdowns(da, clock, fire_a, interval_s=0.5, idle_s=1.0, name="a"),
            db, Countdowns(db, clock, fire_b, interval_s=0.5, idle_s=1.0, name="b"))


async def step(clock, seconds: float, by: float = 0.5) -> None:
    done = 0.0
    while done < seconds:
        clock.advance(by)
        done += by
        await settle(2)


@pytest_twisted.ensureDeferred
async def test_each_deadline_fires_exactly_once_across_two_sweepers(redis):
    store = await started(redis["url"])
    clock = task.Clock()
    clock.advance(1_000_000)
    fired: list[tuple[str, str]] = []

    async def fire_a(member):
        fired.append(("a", member))

    async def fire_b(member):
        fired.append(("b", member))

    try:
        da, ca, db, cb = await two_sweepers(store, clock, fire_a, fire_b)
        for i in range(40):
            await (da if i % 2 else db).set(f"m{i}", da.now_ms() + 1000 + 100 * i)
        ca.start()
        cb.start()
        await step(clock, 8)
        assert sorted(m for _, m in fired) == sorted(f"m{i}" for i in range(40))
        assert {who for who, _ in fired} <= {"a", "b"}
        assert await store.zcard(KEY) == 0
        await ca.stop()
        await cb.stop()
    finally:
        await store.delete(KEY)
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_a_claim_of_a_dead_sweeper_is_fired_by_the_other_after_the_lease(redis):
    store = await started(redis["url"])
    clock = task.Clock()
    clock.advance(1_000_000)
    fired = []

    async def fire(member):
        fired.append(member)

    try:
        da, ca, db, cb = await two_sweepers(store, clock, fire, fire, lease_s=5.0)
        await da.set("x", da.now_ms() + 1000)
        clock.advance(1)
        assert [m for m, _ in await da.claim()] == ["x"]  # a claims, then dies before firing
        cb.start()
        await step(clock, 4)
        assert fired == []
        await step(clock, 2)
        assert fired == ["x"]
        await step(clock, 10)
        assert fired == ["x"]
        await cb.stop()
    finally:
        await store.delete(KEY)
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_a_re_arm_during_the_fire_survives_even_at_exactly_now_plus_lease(redis):
    store = await started(redis["url"])
    clock = task.Clock()
    clock.advance(1_000_000)
    fired = []
    lease_s = 10.0
    holder = {}

    async def fire(member):
        fired.append(clock.seconds())
        if len(fired) < 3:  # re-arm itself, as a periodic check does
            await holder["d"].set(member, holder["d"].now_ms() + int(lease_s * 1000))

    try:
        d = holder["d"] = Deadlines(store, clock, KEY, lease_s=lease_s)
        c = Countdowns(d, clock, fire, interval_s=0.5, idle_s=1.0, name="t")
        await d.set("check", d.now_ms() + 1000)
        c.start()
        await step(clock, 25)
        assert fired == [1_000_001.0, 1_000_011.0, 1_000_021.0]
        assert await store.zcard(KEY) == 0
        await c.stop()
    finally:
        await store.delete(KEY)
        await store.stopService()
