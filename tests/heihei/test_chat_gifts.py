"""`chat/buy-gift`: a gift to the other person of an open 1:1 chat, through the ledger (charged once per
gift_uuid and amount) and delivered as the seed's IM of type gift; two nodes on one Redis."""

from __future__ import annotations

import json

import pytest_twisted

from tests.heihei.chathelpers import action, chat_extra, clock_at_start, code
from tests.heihei.helpers import ok, open_channel
from tests.heihei.livehelpers import user
from tests.live.test_admin import TOKEN, admin


async def gift_im(client, timeout: float = 5.0) -> dict:
    """The next IM item of type gift (other items skipped)."""
    while True:
        for it in json.loads(await client.next(timeout)):
            if it.get("msgType") == "IM" and it["msg"].get("msgType") == "gift":
                return it["msg"]


async def open_chat(a, b, ta, ua, tb, ub, ca, cb) -> int:
    chat_id = (await ok(a, "/api/chat/due-chat", {"token": ta, "userId": ub}))["chatId"]
    await action(cb, "due-chat-notify")
    await ok(b, "/api/chat/accept-chat", {"token": tb, "chatId": chat_id, "userId": ua, "type": 0})
    await action(ca, "join-chat")
    await action(cb, "join-chat")
    await ok(a, "/api/chat/join-chat", {"token": ta, "chatId": chat_id})
    await ok(b, "/api/chat/join-chat", {"token": tb, "chatId": chat_id})
    return chat_id


@pytest_twisted.ensureDeferred
async def test_a_chat_gift_is_charged_once_and_reaches_the_other_person(nodes, outside):
    clock = clock_at_start()
    extra = chat_extra(outside, admin={"token": TOKEN})
    a = await nodes.start("a", extra, clock=clock)
    b = await nodes.start("b", extra, clock=clock)
    ta, ua = await user(a, outside, "13700000901", "送礼者")
    tb, ub = await user(b, outside, "13700000902", "收礼者")
    tc, uc = await user(a, outside, "13700000903", "旁人")
    ca, cb = await open_channel(a, ta), await open_channel(b, tb)
    gifts = (await ok(a, "/api/live/gift-info", {"token": ta}))["gifts"]
    gift = gifts[0]
    # not in a chat yet: 732
    assert await code(a, "/api/chat/buy-gift", {"token": ta, "chatId": 1, "userId": ub, "giftId": gift["id"]}) == 732
    chat_id = await open_chat(a, b, ta, ua, tb, ub, ca, cb)
    params = {"token": ta, "chatId": chat_id, "userId": ub, "giftId": gift["id"], "gift_uuid": "combo-1"}
    # no diamonds: 740, nothing delivered
    assert await code(a, "/api/chat/buy-gift", params) == 740
    code_, granted = await admin(a, "POST", f"/heihei/users/{ua}/gold", {"delta": gift["gold"] * 5, "reason": "t"})
    assert code_ == 200
    first = await ok(a, "/api/chat/buy-gift", params)
    assert first["gold"] == gift["gold"] * 4
    got = await gift_im(cb)
    assert got["fromUserId"] == int(ua) and got["toUserId"] == int(ub)
    assert got["content"]["giftId"] == gift["id"] and gift["name"] in got["content"]["text"]
    # the client's retry (the same gift_uuid and amount), through the other node: the first answer, no charge
    assert (await ok(b, "/api/chat/buy-gift", params))["gold"] == gift["gold"] * 4
    # the combo goes on: its second gift (amount 2, the same gift_uuid) is a new charge and a new IM
    assert (await ok(a, "/api/chat/buy-gift", {**params, "amount": 2}))["gold"] == gift["gold"] * 3
    second = await gift_im(cb)
    assert second["msgId"] != got["msgId"] and second["content"]["giftId"] == gift["id"]
    # the receiver's 黑票 grew by exactly the two charged gifts; the ledger reconciles
    receiver = await ok(b, "/api/user/user-gold", {"token": tb})
    assert receiver["user"]["point"] == gift_points(gifts, gift) * 2
    code_, report = await admin(a, "POST", "/heihei/reconcile")
    assert code_ == 200 and report["ok"]
    # someone outside the chat, or a gift to someone else than the partner: 732; a gift not sold: 730
    assert await code(a, "/api/chat/buy-gift", {**params, "token": tc, "gift_uuid": "x"}) == 732
    assert await code(a, "/api/chat/buy-gift", {**params, "userId": uc, "gift_uuid": "y"}) == 732
    assert await code(a, "/api/chat/buy-gift", {**params, "giftId": 999999, "gift_uuid": "z"}) == 730
    assert await code(a, "/api/chat/buy-gift", {**params, "amount": 0}) == 700
    await ca.close()
    await cb.close()


def gift_points(gifts: list, gift: dict) -> int:
    """The 黑票 a gift earns its receiver, from the operators' catalog (not in gift-info)."""
    from heihei.paths import resource
    catalog = json.loads(resource("money.json").read_text())
    return next(g["point"] for g in catalog["gifts"] if g["id"] == gift["id"])
