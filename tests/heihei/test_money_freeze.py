"""A money freeze (721 用户账户异常, heihei.heihei.moneyfreeze): the operators' route and its auth and
bodies; while frozen, live/buy-gift, live/buy-bullet, chat/buy-gift, payment/p2g and payment/pay-req
are refused with 721 on every node and change nothing, while credits (a paid order, 黑票 from someone
else's gift, an operator's grant) still land and a gift charged before the freeze answers its retries
as before; accepted again after unfreezing; the reconciliation stays clean. Real Redis, real nodes,
real HTTP, the WeChat Pay fake on loopback; the ledger's scripts directly for the race."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, task

from heihei.core.errors import Refused
from heihei.heihei.errors import ACCOUNT_PROBLEM, NO_GOLD
from heihei.heihei.ledger import Ledger, ledger_key, withdrawals_key
from heihei.heihei.moneyfreeze import HISTORY_MAX, MoneyFreezes
from tests.heihei.chathelpers import chat_extra, clock_at_start, code
from tests.heihei.helpers import api, ok, open_channel
from tests.heihei.livehelpers import live_with_viewer, next_msg, user
from tests.heihei.test_chat_gifts import open_chat
from tests.heihei.test_ledger import make_user
from tests.heihei.test_money_gifts import extra, grant
from tests.heihei.test_money_payments import ID_CARD, pay_extra
from tests.heihei.test_search import started_store
from tests.live.test_admin import TOKEN, admin
from tests.outbound.payments.conftest import keys, wechat_fake  # noqa: F401 - fixtures

FROZEN = {"errorcode": 721, "errormsg": "用户账户异常"}


async def freeze(node, uid: str, frozen: bool, reason: str = "chargeback under review") -> dict:
    code_, state = await admin(node, "PUT", f"/heihei/users/{uid}/money-freeze", {"frozen": frozen, "reason": reason})
    assert code_ == 200, state
    assert state["frozen"] is frozen and state["reason"] == reason and state["by"] == "admin-api"
    return state


def refused_frozen(answer: dict) -> bool:
    return {k: answer.get(k) for k in FROZEN} == FROZEN


async def money_of(node, token: str) -> dict:
    return (await ok(node, "/api/user/user-gold", {"token": token}))["user"]


def entry_count(redis, uid: str) -> int:
    return redis["client"].llen(ledger_key(uid))


async def reconciled(node) -> dict:
    code_, report = await admin(node, "POST", "/heihei/reconcile")
    assert code_ == 200 and report["ok"], report
    return report


@pytest_twisted.ensureDeferred
async def test_the_freeze_route_its_token_its_bodies_and_the_manhole(nodes, outside):
    node = await nodes.start("a", extra(outside))
    _, uid = await user(node, outside, "13500009001", "甲")
    path = f"/heihei/users/{uid}/money-freeze"
    good = {"frozen": True, "reason": "chargeback 42"}
    # no token, a wrong one: 401, and nothing is frozen
    for token in (None, "wrong", TOKEN + "x"):
        assert (await admin(node, "PUT", path, good, token=token))[0] == 401
        assert (await admin(node, "GET", path, token=token))[0] == 401
    code_, state = await admin(node, "GET", path)
    assert code_ == 200 and state == {"userId": uid, "frozen": False, "reason": "", "by": "", "at": 0, "history": []}
    # bad bodies: 400 in the admin envelope, nothing changes
    for bad in ({}, {"frozen": True}, {"reason": "x"}, {"frozen": "yes", "reason": "x"}, {"frozen": 1, "reason": "x"},
                {"frozen": None, "reason": "x"}, {"frozen": True, "reason": ""}, {"frozen": True, "reason": "  "},
                {"frozen": True, "reason": "长" * 201}, {"frozen": True, "reason": 5},
                {"frozen": True, "reason": "x", "by": "me"}, [], [1], "frozen", 7):
        code_, body = await admin(node, "PUT", path, bad)
        assert code_ == 400 and isinstance(body.get("error"), str) and body["error"], (bad, body)
    for raw in (b"{", b"\xff\xfe", b'"frozen"'):
        code_, body = await admin(node, "PUT", path, raw=raw)
        assert code_ == 400 and "error" in body, raw
    assert (await admin(node, "GET", path))[1]["frozen"] is False
    # an unknown user, or a malformed id: 404
    assert (await admin(node, "PUT", "/heihei/users/99999/money-freeze", good))[0] == 404
    assert (await admin(node, "GET", "/heihei/users/99999/money-freeze"))[0] == 404
    assert (await admin(node, "PUT", "/heihei/users/x%3A1/money-freeze", good))[0] in (400, 404)

    state = await freeze(node, uid, True, "chargeback 42")
    assert state["at"] > 0 and len(state["history"]) == 1
    assert state["history"][0] == {"frozen": True, "reason": "chargeback 42", "by": "admin-api", "at": state["at"]}
    # the reason is kept trimmed; the manhole's operators do the same, named as the manhole
    operators = node.manhole_namespace()["operators"]["channel"]
    after = await operators.unfreeze_money(uid, "  cleared by support  ")
    assert after["frozen"] is False and after["reason"] == "cleared by support" and after["by"] == "manhole"
    assert [h["frozen"] for h in after["history"]] == [True, False]
    assert (await operators.freeze_money(uid, "again"))["frozen"] is True
    assert (await operators.money_freeze(uid))["history"][-1]["reason"] == "again"
    with pytest.raises(Refused):
        await operators.freeze_money(uid, "")
    code_, document = await admin(node, "GET", "/openapi.json")
    assert code_ == 200
    ops = document["paths"]["/admin/heihei/users/{uid}/money-freeze"]
    assert set(ops) >= {"put", "get"}


@pytest_twisted.ensureDeferred
async def test_live_gifts_bullets_and_p2g_are_refused_while_frozen_on_both_nodes(nodes, outside, redis):
    a = await nodes.start("a", extra(outside))
    b = await nodes.start("b", extra(outside))
    a_token, anchor, v_token, viewer, live_id = await live_with_viewer(a, b, outside, "13500009011",
                                                                       "13500009012")
    channel = await open_channel(a, a_token)
    await grant(a, viewer, 300)
    gift = {"token": v_token, "liveId": live_id, "giftId": 102, "amount": 1, "gift_uuid": "fz-1"}
    bullet = {"token": v_token, "liveId": live_id, "message": "大家好"}
    assert (await ok(b, "/api/live/buy-gift", gift))["gold"] == 290

    # frozen on node a: refused on both nodes, before the balance check (a gift too dear is 721 as well)
    await freeze(a, viewer, True)
    entries_before = entry_count(redis, viewer), entry_count(redis, anchor)
    for node in (a, b):
        assert refused_frozen(await api(node, "/api/live/buy-gift", {**gift, "amount": 2}))
        assert refused_frozen(await api(node, "/api/live/buy-gift", {**gift, "giftId": 104, "gift_uuid": "fz-big"}))
        assert refused_frozen(await api(node, "/api/live/buy-gift", {**gift, "gift_uuid": ""}))
        assert refused_frozen(await api(node, "/api/live/buy-bullet", bullet))
    # the retry of the gift charged before the freeze answers as before, on either node, and charges nothing
    for node in (a, b):
        assert (await ok(node, "/api/live/buy-gift", gift))["gold"] == 290
    v, an = await money_of(b, v_token), await money_of(a, a_token)
    assert (v["gold"], v["allOutlayGold"], an["point"]) == (290, 10, 10)
    assert (entry_count(redis, viewer), entry_count(redis, anchor)) == entries_before
    got = await ok(a, "/api/live/get-live", {"token": a_token, "liveId": live_id})
    assert got["live"]["totalTickets"] == 10
    # an operator's grant to a frozen user lands
    assert (await grant(b, viewer, 5))["gold"] == 295

    # the anchor frozen, the viewer released: the anchor still earns 黑票 from the viewer's gifts
    await freeze(b, anchor, True, "identity check")
    await freeze(a, viewer, False, "cleared")
    assert (await ok(b, "/api/live/buy-gift", {**gift, "amount": 2}))["gold"] == 285
    assert (await ok(a, "/api/live/buy-gift", {**gift, "giftId": 103, "gift_uuid": "fz-2"}))["gold"] == 219
    assert (await ok(a, "/api/live/buy-gift", {**gift, "giftId": 103, "gift_uuid": "fz-2", "amount": 2}))["gold"] \
        == 153
    assert (await ok(b, "/api/live/buy-bullet", bullet))["gold"] == 152
    # the room got the gift before the freeze, then the next one after it: nothing of the refused ones
    first = await next_msg(channel, want=lambda m: m.get("msgType") == "gift")
    second = await next_msg(channel, want=lambda m: m.get("msgType") == "gift")
    assert (first["amount"], first["totalTicket"]) == (1, 10)
    assert (second["amount"], second["giftId"], second["totalTicket"]) == (2, 102, 20)
    an = await money_of(a, a_token)
    assert an["point"] == 10 + 10 + 66 + 66 + 1 == an["allEarnPoint"]
    # the frozen anchor's own spending: p2g and a barrage in their own room are 721 and change nothing
    assert (await grant(a, anchor, 3))["gold"] == 3
    assert refused_frozen(await api(a, "/api/payment/p2g", {"token": a_token, "packageId": 1}))
    assert refused_frozen(await api(b, "/api/live/buy-bullet", {**bullet, "token": a_token}))
    an = await money_of(a, a_token)
    assert (an["gold"], an["point"]) == (3, 153)
    # released: the same calls go through
    await freeze(b, anchor, False, "identity confirmed")
    assert (await ok(b, "/api/payment/p2g", {"token": a_token, "packageId": 1}))["point"] == 53
    assert (await ok(a, "/api/live/buy-bullet", {**bullet, "token": a_token}))["gold"] == 72
    an = await money_of(a, a_token)
    assert (an["gold"], an["point"]) == (72, 53)
    await channel.close()
    await reconciled(a)


@pytest_twisted.ensureDeferred
async def test_a_chat_gift_is_refused_while_frozen(nodes, outside):
    clock = clock_at_start()
    chat = chat_extra(outside, admin={"token": TOKEN})
    a = await nodes.start("a", chat, clock=clock)
    b = await nodes.start("b", chat, clock=clock)
    ta, ua = await user(a, outside, "13700009001", "送礼者")
    tb, ub = await user(b, outside, "13700009002", "收礼者")
    ca, cb = await open_channel(a, ta), await open_channel(b, tb)
    gift = (await ok(a, "/api/live/gift-info", {"token": ta}))["gifts"][0]
    chat_id = await open_chat(a, b, ta, ua, tb, ub, ca, cb)
    params = {"token": ta, "chatId": chat_id, "userId": ub, "giftId": gift["id"], "gift_uuid": "chat-fz"}
    await grant(a, ua, gift["gold"] * 2)
    assert (await ok(a, "/api/chat/buy-gift", params))["gold"] == gift["gold"]
    await freeze(b, ua, True)
    for node in (a, b):
        assert refused_frozen(await api(node, "/api/chat/buy-gift", {**params, "amount": 2}))
    # the retry of the gift charged before the freeze: its first answer
    assert (await ok(b, "/api/chat/buy-gift", params))["gold"] == gift["gold"]
    assert (await money_of(a, ta))["gold"] == gift["gold"]
    receiver_points = (await money_of(b, tb))["point"]
    await freeze(a, ua, False, "cleared")
    assert (await ok(b, "/api/chat/buy-gift", {**params, "amount": 2}))["gold"] == 0
    assert (await money_of(b, tb))["point"] > receiver_points
    assert await code(a, "/api/chat/buy-gift", {**params, "amount": 3}) == 740
    await reconciled(a)
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_a_withdrawal_is_refused_while_frozen_and_a_paid_order_still_credits(nodes, outside, keys, wechat_fake,
                                                                                  redis):
    a = await nodes.start("a", pay_extra(outside, keys, wechat=wechat_fake))
    b = await nodes.start("b", pay_extra(outside, keys, wechat=wechat_fake))
    a_token, anchor, v_token, viewer, live_id = await live_with_viewer(a, b, outside, "13600009031",
                                                                       "13600009032")
    await grant(a, viewer, 1314)
    await ok(b, "/api/live/buy-gift", {"token": v_token, "liveId": live_id, "giftId": 104, "gift_uuid": "x"})
    await ok(a, "/api/payment/verify-alipay", {"token": a_token, "alipaycode": "anchor@example.com",
                                                "username": "张三", "idcard": ID_CARD, "phone": "13533221223"})
    req = {"token": a_token, "alipaycode": "anchor@example.com", "payamount": 500}

    await freeze(b, anchor, True)
    before = entry_count(redis, anchor)
    for node in (a, b):
        assert refused_frozen(await api(node, "/api/payment/pay-req", req))
    assert (await ok(a, "/api/payment/cash-info", {"token": a_token}))["point"] == 1314
    assert (await admin(a, "GET", "/heihei/withdrawals"))[1]["total"] == 0
    assert redis["client"].zcard(withdrawals_key("pending")) == 0
    # a recharge of the frozen user is credited (money is never lost, only spending is held)
    order = (await ok(a, "/api/payment/create-order", {"token": a_token, "packageId": 120,
                                                        "channel": "wechat"}))["order"]
    wechat_fake.pay(order)
    r = await ok(b, "/api/payment/order-notify", {"token": a_token, "order": order, "status": "1", "data": ""})
    assert r["status"] == 1 and r["gold"] == 60
    assert entry_count(redis, anchor) == before + 1
    code_, state = await admin(a, "GET", f"/heihei/users/{anchor}/money-freeze")
    assert code_ == 200 and state["frozen"] is True

    await freeze(a, anchor, False, "cleared")
    assert (await ok(b, "/api/payment/pay-req", req))["reqmsg"] == "提现申请已提交"
    assert (await ok(a, "/api/payment/cash-info", {"token": a_token}))["point"] == 1214
    assert (await admin(a, "GET", "/heihei/withdrawals"))[1]["total"] == 1
    await reconciled(b)


@pytest_twisted.async_yield_fixture
async def two_ledgers(redis):
    """Two ledgers on two Redis connections (two nodes' worth) and the freezes on the second."""
    stores = [await started_store(redis["url"]) for _ in range(2)]
    clock = task.Clock()
    clock.advance(1_700_000_000)
    yield Ledger(stores[0], clock), Ledger(stores[1], clock), MoneyFreezes(stores[1], clock)
    for s in stores:
        await s.stopService()


async def _outcome(work) -> str:
    try:
        await work
        return "charged"
    except Refused as e:
        return e.reason


@pytest_twisted.ensureDeferred
async def test_a_freeze_racing_gifts_on_two_connections_leaves_every_gift_whole(two_ledgers, redis):
    """Forty gifts from two connections with a freeze sent among them: each gift is charged whole (its
    entries and the receiver's points) or refused with 721 and changes nothing; once the freeze is
    answered every later gift is refused, on both connections; credits and operators still go through."""
    la, lb, freezes = two_ledgers
    make_user(redis, "1")
    make_user(redis, "2")
    await la.adjust("1", [("gold", 1000)], cause="operator")
    work = [defer.ensureDeferred(_outcome((la, lb)[i % 2].send_gift("1", "2", 10, 10, gift_uuid=f"g{i}")))
            for i in range(20)]
    frozen = defer.ensureDeferred(freezes.set("1", True, "race", by="test"))
    work += [defer.ensureDeferred(_outcome((la, lb)[i % 2].send_gift("1", "2", 10, 10, gift_uuid=f"g{i}")))
             for i in range(20, 40)]
    outcomes = await defer.gatherResults(work)
    assert (await frozen)["frozen"] is True
    assert set(outcomes) <= {"charged", ACCOUNT_PROBLEM}
    charged = outcomes.count("charged")
    assert (await la.balances("1"))["gold"] == 1000 - 10 * charged
    assert (await la.balances("2"))["point"] == 10 * charged
    assert redis["client"].llen(ledger_key("1")) - 1 == charged == redis["client"].llen(ledger_key("2"))
    # after the freeze's answer: refused on both connections, retries of charged gifts answered as before
    for ledger in (la, lb):
        with pytest.raises(Refused) as e:
            await ledger.send_gift("1", "2", 10, 10, gift_uuid="late")
        assert e.value.reason == ACCOUNT_PROBLEM
        with pytest.raises(Refused) as e:
            await ledger.adjust("1", [("gold", -1)], cause="bullet", spending=True)
        assert e.value.reason == ACCOUNT_PROBLEM
    for i, outcome in enumerate(outcomes):
        if outcome == "charged":
            again = await lb.send_gift("1", "2", 10, 10, gift_uuid=f"g{i}")
            assert not again.charged
    # a frozen sender with too little gold is 721, not 740; a frozen receiver still gets points
    with pytest.raises(Refused) as e:
        await la.send_gift("1", "2", 10 ** 6, 1)
    assert e.value.reason == ACCOUNT_PROBLEM
    await lb.adjust("2", [("gold", 1)], cause="operator")
    assert (await lb.send_gift("2", "1", 1, 5)).receiver_point == 5
    make_user(redis, "3")
    with pytest.raises(Refused) as e:
        await la.send_gift("3", "1", 5, 5)
    assert e.value.reason == NO_GOLD
    # an operator's grant and removal go through while frozen; a withdrawal hold does not
    await freezes.set("1", True, "again", by="test")
    gold = (await la.balances("1"))["gold"]
    assert await la.adjust("1", [("gold", 7)], cause="operator") == [gold + 7]
    assert await la.adjust("1", [("gold", -7)], cause="operator") == [gold]
    with pytest.raises(Refused) as e:
        await lb.hold_withdrawal("1", "w1", 5, 25, "", "")
    assert e.value.reason == ACCOUNT_PROBLEM
    with pytest.raises(Refused) as e:
        await lb.adjust("1", [("point", -5), ("gold", 3)], cause="p2g", spending=True)
    assert e.value.reason == ACCOUNT_PROBLEM
    assert (await la.balances("1"))["heldPoint"] == 0 and (await la.balances("1"))["point"] == 5
    await freezes.set("1", False, "done", by="test")
    assert await lb.hold_withdrawal("1", "w1", 5, 25, "", "") == 0
    for uid in ("1", "2", "3"):
        assert await la.reconcile_user(uid) is None
    # the history is bounded
    for i in range(HISTORY_MAX + 5):
        await freezes.set("3", i % 2 == 0, f"r{i}", by="test")
    state = await freezes.state("3")
    assert len(state["history"]) == HISTORY_MAX and state["history"][-1]["reason"] == f"r{HISTORY_MAX + 4}"
    assert state["frozen"] is True and await freezes.is_frozen("3") and not await freezes.is_frozen("2")
    with pytest.raises(Refused):
        await freezes.set("404", True, "nobody", by="test")
