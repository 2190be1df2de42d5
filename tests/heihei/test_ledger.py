"""The ledger (heihei.heihei.ledger) against a real Redis: balances never below zero, one entry per
change, gifts once per (sender, gift_uuid, amount), orders credited once, withdrawals settled once, and
reconciliation after concurrent gifts from two connections."""

from __future__ import annotations

import json
import random

import pytest
import pytest_twisted
from twisted.internet import defer, task

from heihei.core.errors import Refused
from heihei.heihei.accounts import user_key
from heihei.heihei.ledger import (NO_GOLD, NO_POINT, BAD_ORDER, Ledger, StaleCatalog, ledger_key, order_key,
                                  withdrawal_key, withdrawals_key)
from heihei.heihei.livecore import live_key
from tests.heihei.test_search import started_store


def make_user(redis, uid: str, gold: int = 0, point: int = 0) -> None:
    redis["client"].hset(user_key(uid), mapping={"id": uid, "displayName": f"u{uid}", "goldCount": gold,
                                                  "point": point})


def entries(redis, uid: str) -> list[dict]:
    return [json.loads(e) for e in redis["client"].lrange(ledger_key(uid), 0, -1)]


@pytest_twisted.async_yield_fixture
async def ledger(redis):
    store = await started_store(redis["url"])
    clock = task.Clock()
    clock.advance(1_700_000_000)
    yield Ledger(store, clock)
    await store.stopService()


async def grant(ledger, uid: str, n: int) -> None:
    await ledger.adjust(uid, [("gold", n)], cause="operator", note="test")


@pytest_twisted.ensureDeferred
async def test_a_gift_moves_gold_to_points_once_per_uuid_and_amount(ledger, redis):
    make_user(redis, "1")
    make_user(redis, "2")
    redis["client"].hset(live_key("900"), mapping={"liveId": "900", "totalTickets": "5"})
    await grant(ledger, "1", 100)
    first = await ledger.send_gift("1", "2", 30, 30, gift_uuid="u-1", amount=1, live_id="900")
    assert (first.gold, first.total_tickets, first.receiver_point, first.charged) == (70, 35, 30, True)
    again = await ledger.send_gift("1", "2", 30, 30, gift_uuid="u-1", amount=1, live_id="900")
    assert (again.gold, again.total_tickets, again.charged) == (70, 35, False)
    combo = await ledger.send_gift("1", "2", 30, 30, gift_uuid="u-1", amount=2, live_id="900")
    assert (combo.gold, combo.total_tickets, combo.charged) == (40, 65, True)
    b = await ledger.balances("1")
    assert b["gold"] == 40 and b["allOutlayGold"] == 60
    assert (await ledger.balances("2"))["point"] == 60 and (await ledger.balances("2"))["allEarnPoint"] == 60
    e = entries(redis, "1")
    assert [(x["cur"], x["delta"], x["after"], x["cause"]) for x in e] == [
        ("gold", 100, 100, "operator"), ("gold", -30, 70, "gift"), ("gold", -30, 40, "gift")]
    assert e[1]["peer"] == "2" and e[1]["ref"] == "u-1:1"
    assert [x["after"] for x in entries(redis, "2")] == [30, 60]
    assert (await ledger.reconcile())["ok"]


@pytest_twisted.ensureDeferred
async def test_a_gift_priced_from_an_old_catalog_charges_nothing(ledger, redis):
    """`price_version`: charged only while the catalog is at that version; once charged, `count` is
    counted up and `sender_fields` read in the same script (a retry's answer has neither)."""
    make_user(redis, "1")
    make_user(redis, "2")
    redis["client"].hset(user_key("1"), "gender", "Female")
    await grant(ledger, "1", 100)
    redis["client"].set("test:catalogv", 3)
    with pytest.raises(StaleCatalog):
        await ledger.send_gift("1", "2", 5, 5, gift_uuid="g", amount=1, price_version=("test:catalogv", 2))
    assert (await ledger.balances("1"))["gold"] == 100 and entries(redis, "2") == []
    done = await ledger.send_gift("1", "2", 5, 5, gift_uuid="g", amount=1, price_version=("test:catalogv", 3),
                                  count="test:count", sender_fields=("displayName", "gender", "coverUrl"))
    assert (done.gold, done.charged, done.counted) == (95, True, 1)
    assert done.sender == {"displayName": "u1", "gender": "Female"}  # no coverUrl: left out, not ""
    redis["client"].set("test:catalogv", 4)
    # the retry of a charged gift answers the first answer whatever the catalog did since
    again = await ledger.send_gift("1", "2", 9, 9, gift_uuid="g", amount=1, price_version=("test:catalogv", 3),
                                   count="test:count")
    assert (again.gold, again.charged, again.counted, again.sender) == (95, False, 0, None)
    assert redis["client"].get("test:count") in (b"1", "1")
    # a catalog never changed is version 0 (no key)
    assert (await ledger.send_gift("1", "2", 5, 5, price_version=("test:none", 0))).gold == 90
    assert (await ledger.reconcile())["ok"]


@pytest_twisted.ensureDeferred
async def test_not_enough_gold_is_740_and_changes_nothing(ledger, redis):
    make_user(redis, "1", gold=0)
    make_user(redis, "2")
    await grant(ledger, "1", 10)
    with pytest.raises(Refused) as e:
        await ledger.send_gift("1", "2", 11, 11, gift_uuid="x", amount=1)
    assert e.value.reason == NO_GOLD
    assert (await ledger.balances("1"))["gold"] == 10 and len(entries(redis, "1")) == 1
    assert entries(redis, "2") == []
    # the refusal is not remembered: after a recharge the same gift goes through
    await grant(ledger, "1", 5)
    assert (await ledger.send_gift("1", "2", 11, 11, gift_uuid="x", amount=1)).gold == 4
    with pytest.raises(Refused) as e:
        await ledger.send_gift("1", "404", 1, 1)
    assert e.value.reason == "no-such-user"
    with pytest.raises(Refused):
        await ledger.adjust("1", [("gold", -5)], cause="operator")
    with pytest.raises(Refused) as e:
        await ledger.adjust("1", [("point", -1), ("gold", 1)], cause="p2g")
    assert e.value.reason == NO_POINT
    assert (await ledger.balances("1"))["gold"] == 4


@pytest_twisted.ensureDeferred
async def test_an_order_is_credited_once_and_an_iap_transaction_once(ledger, redis):
    make_user(redis, "7")
    for oid in ("o1", "o2"):
        redis["client"].hset(order_key(oid), mapping={"uid": "7", "gold": 60, "channel": "iap", "status": "pending"})
    results = await defer.gatherResults([defer.ensureDeferred(ledger.credit_order("o1", txn="t1", txn_unique=True))
                                         for _ in range(10)])
    assert sorted(r[0] for r in results) == [False] * 9 + [True]
    assert {r[1] for r in results} == {60}
    with pytest.raises(Refused) as e:
        await ledger.credit_order("o2", txn="t1", txn_unique=True)
    assert e.value.reason == BAD_ORDER
    with pytest.raises(Refused):
        await ledger.credit_order("nope")
    assert (await ledger.balances("7"))["gold"] == 60
    assert redis["client"].hget(order_key("o1"), "status") == b"credited"


@pytest_twisted.ensureDeferred
async def test_a_withdrawal_holds_points_and_settles_once(ledger, redis):
    make_user(redis, "5")
    await ledger.adjust("5", [("point", 100)], cause="operator")
    assert await ledger.hold_withdrawal("5", "w1", 40, 200, "acct", "enc") == 60
    with pytest.raises(Refused):
        await ledger.hold_withdrawal("5", "w2", 61, 305, "acct", "enc")
    assert (await ledger.balances("5"))["heldPoint"] == 40
    assert await ledger.move_withdrawal("w1", "pending", "rejected", give_back=True, note="no") == (True, "rejected")
    assert await ledger.move_withdrawal("w1", "pending", "rejected", give_back=True) == (False, "rejected")
    b = await ledger.balances("5")
    assert (b["point"], b["heldPoint"]) == (100, 0)
    assert redis["client"].zscore(withdrawals_key("rejected"), "w1") is not None
    assert redis["client"].zscore(withdrawals_key("pending"), "w1") is None
    assert await ledger.move_withdrawal("nope", "pending", "paid", give_back=False) == (False, "")
    assert redis["client"].hget(withdrawal_key("w1"), "status") == b"rejected"
    assert (await ledger.reconcile())["ok"]


@pytest_twisted.ensureDeferred
async def test_concurrent_gifts_from_two_connections_then_reconcile(ledger, redis):
    """Two stores (two nodes' connections), 40 senders, 600 gifts with retries: no double charge, the
    receiver's points exactly the sum, and the reconciliation finds nothing; then a tampered balance
    is found."""
    other = await started_store(redis["url"])
    try:
        ledgers = [ledger, Ledger(other, ledger.clock)]
        make_user(redis, "1000")
        senders = [str(i) for i in range(1, 41)]
        for s in senders:
            make_user(redis, s)
            await grant(ledger, s, 50)
        rnd = random.Random(19)
        calls = []
        for n in range(600):
            s = rnd.choice(senders)
            for _ in range(rnd.randint(1, 3)):  # the client's retries: same uuid and amount
                calls.append((s, f"g{n}", 3))
        rnd.shuffle(calls)

        async def one(i, call):
            s, uuid, price = call
            try:
                return await ledgers[i % 2].send_gift(s, "1000", price, price, gift_uuid=uuid, amount=1)
            except Refused as e:
                assert e.reason == NO_GOLD
                return None
        results = await defer.gatherResults([defer.ensureDeferred(one(i, c)) for i, c in enumerate(calls)])
        charged = sum(1 for r in results if r is not None and r.charged)
        spent = 0
        for s in senders:
            spent += 50 - (await ledger.balances(s))["gold"]
        assert spent == charged * 3
        assert (await ledger.balances("1000"))["point"] == spent
        report = await ledger.reconcile()
        assert report["ok"] and report["users"] == 41, report
        redis["client"].hincrby(user_key("7"), "goldCount", 0)
        redis["client"].hincrby(user_key("3"), "goldCount", 1)
        report = await ledger.reconcile()
        assert not report["ok"] and [m["userId"] for m in report["mismatches"]] == ["3"]
    finally:
        await other.stopService()
