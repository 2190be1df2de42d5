"""Gifts and the barrage in live rooms, the account figures, point-to-gold and the operators' gold,
over real nodes (two where it matters): every path and code of gift-info, buy-gift, buy-bullet,
user-gold, statistic, list-p2g-package, p2g, cash-info, and /admin/heihei/users/{uid}/gold."""

from __future__ import annotations

import pytest_twisted

from tests.heihei.helpers import api, ok, open_channel
from tests.heihei.livehelpers import live_extra, live_with_viewer, next_msg, start_live, user
from tests.live.test_admin import TOKEN, admin


def extra(outside) -> dict:
    e = live_extra(outside)
    e["admin"] = {"token": TOKEN}
    e.setdefault("sms", {})["resend_interval_s"] = 0.0
    return e


async def grant(node, uid: str, delta: int, reason: str = "test") -> dict:
    code, body = await admin(node, "POST", f"/heihei/users/{uid}/gold", {"delta": delta, "reason": reason})
    assert code == 200, body
    return body


@pytest_twisted.ensureDeferred
async def test_gift_info_and_the_operators_gold(nodes, outside):
    node = await nodes.start("a", extra(outside))
    token, uid = await user(node, outside, "13500000001", "甲")
    info = await ok(node, "/api/live/gift-info", {"token": token})
    assert info["expireTime"] == 60 and len(info["gifts"]) == 4
    g = info["gifts"][0]
    assert set(g) == {"id", "name", "gold", "exp", "cl", "image", "icon", "type"}
    assert g["image"].startswith("http") and len(g["cl"]) == 3
    assert (await api(node, "/api/live/gift-info", {}))["errorcode"] == 720

    gold = await ok(node, "/api/user/user-gold", {"token": token})
    assert gold["user"] == {"userId": int(uid), "gold": 0, "point": 0, "pointWorth": 0, "allOutlayGold": 0,
                            "allEarnPoint": 0}
    assert (await grant(node, uid, 500, "welcome"))["gold"] == 500
    assert (await grant(node, uid, -100))["gold"] == 400
    code, body = await admin(node, "POST", f"/heihei/users/{uid}/gold", {"delta": -401, "reason": "x"})
    assert code == 400 and "gold" in body["error"]
    for bad in ({"delta": 0, "reason": "x"}, {"delta": "5", "reason": "x"}, {"delta": 5}, {"delta": 5, "reason": ""},
                {"delta": 5, "reason": "x", "extra": 1}, {"delta": True, "reason": "x"}):
        assert (await admin(node, "POST", f"/heihei/users/{uid}/gold", bad))[0] == 400, bad
    assert (await admin(node, "POST", "/heihei/users/99999/gold", {"delta": 5, "reason": "x"}))[0] == 404
    assert (await admin(node, "POST", f"/heihei/users/{uid}/gold", {"delta": 5, "reason": "x"}, token=None))[0] == 401
    code, page = await admin(node, "GET", f"/heihei/users/{uid}/ledger")
    assert code == 200 and page["total"] == 2 and page["balances"]["gold"] == 400
    assert [(e["delta"], e["after"], e["cause"], e["note"]) for e in page["entries"]] == [
        (-100, 400, "operator", "test"), (500, 500, "operator", "welcome")]
    assert (await ok(node, "/api/user/info", {"token": token, "uid": uid}))["result"]["goldCount"] == 400
    code, report = await admin(node, "POST", "/heihei/reconcile")
    assert code == 200 and report["ok"] and report["users"] == 1 and report["entries"] == 2
    # the manhole's operators object runs the same reconciliation, and the same grants
    operators = node.manhole_namespace()["operators"]["channel"]
    assert (await operators.reconcile()) == report
    assert (await operators.grant_gold(uid, 1, "manhole"))["gold"] == 401
    code, document = await admin(node, "GET", "/openapi.json")
    assert "/admin/heihei/users/{uid}/gold" in document["paths"] and "/admin/heihei/reconcile" in document["paths"]


@pytest_twisted.ensureDeferred
async def test_buy_gift_across_two_nodes_with_retries(nodes, outside):
    a = await nodes.start("a", extra(outside))
    b = await nodes.start("b", extra(outside))
    a_token, anchor = await user(a, outside, "13500000011", "主播")
    v_token, viewer = await user(b, outside, "13500000012", "观众")
    o_token, _ = await user(b, outside, "13500000013", "路人")
    live = await start_live(a, a_token)
    live_id = live["liveId"]
    await ok(b, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    channel = await open_channel(a, a_token)
    gift = {"token": v_token, "liveId": live_id, "giftId": 102, "amount": 1, "gift_uuid": "combo-1"}

    r = await api(b, "/api/live/buy-gift", gift)
    assert r["errorcode"] == 740 and r["errormsg"].startswith("余额不足")
    await grant(a, viewer, 25)
    assert (await ok(b, "/api/live/buy-gift", gift))["gold"] == 15
    msg = await next_msg(channel, want=lambda m: m.get("msgType") == "gift")
    assert msg["giftId"] == 102 and msg["amount"] == 1 and msg["gift_uuid"] == "combo-1"
    assert msg["fromUserId"] == int(viewer) and msg["fromUserName"] == "观众" and msg["totalTicket"] == 10
    assert msg["roomId"] == int(live_id) and msg["gift"]["name"] == "么么哒"
    # the client's retries of the same (gift_uuid, amount), on either node: charged once
    for node in (a, b, b):
        assert (await ok(node, "/api/live/buy-gift", gift))["gold"] == 15
    # the next tap of the combo is one more gift
    assert (await ok(a, "/api/live/buy-gift", {**gift, "amount": 2}))["gold"] == 5
    msg = await next_msg(channel, want=lambda m: m.get("msgType") == "gift")
    assert msg["amount"] == 2 and msg["totalTicket"] == 20
    assert (await api(a, "/api/live/buy-gift", {**gift, "amount": 3}))["errorcode"] == 740

    stats = await ok(a, "/api/payment/statistic", {"token": a_token})
    assert stats["point"] == 20 and stats["allEarnPoint"] == 20 and stats["pointWorth"] == 100
    assert (await ok(a, "/api/payment/statistic", {"token": v_token}))["allOutlayGold"] == 20
    got = await ok(b, "/api/live/get-live", {"token": v_token, "liveId": live_id})
    assert got["live"]["totalTickets"] == 20 and got["live"]["livetotalticket"] == 20

    # refusals
    assert (await api(a, "/api/live/buy-gift", {**gift, "giftId": 999}))["errorcode"] == 730
    assert (await api(a, "/api/live/buy-gift", {**gift, "token": o_token}))["errorcode"] == 506
    assert (await api(a, "/api/live/buy-gift", {**gift, "liveId": 1}))["errorcode"] == 731
    assert (await api(a, "/api/live/buy-gift", {**gift, "token": a_token}))["errorcode"] == 700
    for bad in ({"giftId": "x"}, {"amount": 0}, {"amount": "many"}, {"gift_uuid": "u" * 65}, {"liveId": "-1"}):
        assert (await api(a, "/api/live/buy-gift", {**gift, **bad}))["errorcode"] == 700, bad
    assert (await api(a, "/api/live/buy-gift", {}))["errorcode"] == 720
    code, report = await admin(b, "POST", "/heihei/reconcile")
    assert report["ok"] and report["users"] == 2
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_buy_bullet(nodes, outside):
    node = await nodes.start("a", extra(outside))
    a_token, anchor = await user(node, outside, "13500000021", "主播")
    v_token, viewer = await user(node, outside, "13500000022", "观众")
    live = await start_live(node, a_token)
    await ok(node, "/api/live/join-live", {"token": v_token, "liveId": live["liveId"]})
    channel = await open_channel(node, a_token)
    params = {"token": v_token, "liveId": live["liveId"], "message": "大家好"}
    assert (await api(node, "/api/live/buy-bullet", params))["errorcode"] == 740
    await grant(node, viewer, 3)
    assert (await ok(node, "/api/live/buy-bullet", params))["gold"] == 2
    msg = await next_msg(channel, want=lambda m: m.get("msgType") == "barrage")
    assert msg["text"] == "大家好" and msg["fromUserId"] == int(viewer) and msg["totalTicket"] == 1
    assert (await api(node, "/api/live/buy-bullet", {**params, "message": "  "}))["errorcode"] == 700
    assert (await api(node, "/api/live/buy-bullet", {**params, "message": "长" * 201}))["errorcode"] == 700
    assert (await api(node, "/api/live/buy-bullet", {**params, "liveId": 5}))["errorcode"] == 731
    await ok(node, "/api/live/shutupuser", {"token": a_token, "liveId": live["liveId"], "userId": viewer})
    assert (await api(node, "/api/live/buy-bullet", params))["errorcode"] == 722
    assert (await ok(node, "/api/user/user-gold", {"token": v_token}))["user"]["gold"] == 2
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_p2g_cash_info_and_packages(nodes, outside):
    node = await nodes.start("a", extra(outside))
    token, uid = await user(node, outside, "13500000031", "甲")
    p2g = await ok(node, "/api/payment/list-p2g-package", {"token": token})
    assert p2g["packages"][0] == {"id": 1, "desc": "100黑票换70钻", "point": 100, "gold": 70}
    r = await api(node, "/api/payment/p2g", {"token": token, "packageId": 1})
    assert r["errorcode"] == 741 and r["errormsg"].startswith("积分不足")
    assert (await api(node, "/api/payment/p2g", {"token": token, "packageId": 77}))["errorcode"] == 726
    assert (await api(node, "/api/payment/p2g", {"token": token, "packageId": "x"}))["errorcode"] == 700
    code, _ = await admin(node, "GET", f"/heihei/users/{uid}/ledger")
    # points arrive through gifts; an operator can only grant gold, so give this user points by a gift
    b_token, other = await user(node, outside, "13500000032", "乙")
    await grant(node, other, 150)
    live = await start_live(node, token)
    await ok(node, "/api/live/join-live", {"token": b_token, "liveId": live["liveId"]})
    await ok(node, "/api/live/buy-gift", {"token": b_token, "liveId": live["liveId"], "giftId": 103,
                                           "gift_uuid": "g", "amount": 1})
    await ok(node, "/api/live/buy-gift", {"token": b_token, "liveId": live["liveId"], "giftId": 103,
                                           "gift_uuid": "g", "amount": 2})
    cash = await ok(node, "/api/payment/cash-info", {"token": token})
    assert cash["point"] == 132 and cash["cash"] == 660 and cash["rule"]
    done = await ok(node, "/api/payment/p2g", {"token": token, "packageId": 1})
    assert done["point"] == 32 and len(done["order"]) == 32
    assert (await ok(node, "/api/user/user-gold", {"token": token}))["user"]["gold"] == 70
    assert (await api(node, "/api/payment/p2g", {"token": token, "packageId": 1}))["errorcode"] == 741
    # no provider configured: no packages, and create-order refuses the channel
    for channel in ("wechat", "alipay", "iap"):
        assert (await ok(node, "/api/payment/list-package", {"token": token, "channel": channel}))["packages"] == []
    assert (await api(node, "/api/payment/list-package", {"token": token, "channel": "cash"}))["errorcode"] == 700
    r = await api(node, "/api/payment/create-order", {"token": token, "packageId": 120, "channel": "wechat"})
    assert r["errorcode"] == 400
    r = await api(node, "/api/payment/create-order", {"token": token, "packageId": 130, "channel": "wechat"})
    assert r["errorcode"] == 726
    r = await api(node, "/api/payment/order-notify", {"token": token, "order": "nope", "status": "1", "data": "x"})
    assert r["errorcode"] == 727
    code, report = await admin(node, "POST", "/heihei/reconcile")
    assert report["ok"], report


@pytest_twisted.ensureDeferred
async def test_operators_change_the_money_catalog(nodes, outside):
    a = await nodes.start("a", extra(outside))
    b = await nodes.start("b", extra(outside))
    token, _ = await user(a, outside, "13500000041", "甲")
    code, doc = await admin(a, "GET", "/heihei/money")
    assert code == 200 and [g["id"] for g in doc["gifts"]] == [101, 102, 103, 104]
    doc["gifts"][0]["gold"] = 2
    doc["gifts"].append({"id": 105, "name": "火箭", "gold": 5000, "image": "https://cdn.example/105.png",
                         "icon": "/static/img/gift/105_icon.png", "type": 5})
    doc["p2g"] = [{"id": 9, "desc": "新", "point": 10, "gold": 7}]
    code, saved = await admin(b, "PUT", "/heihei/money", doc)
    assert code == 200 and saved["gifts"][4]["point"] == 5000  # point defaults to the price
    gifts = (await ok(a, "/api/live/gift-info", {"token": token}))["gifts"]
    assert gifts[0]["gold"] == 2 and gifts[4]["image"] == "https://cdn.example/105.png"
    assert gifts[4]["icon"].startswith("http") and gifts[4]["icon"].endswith("/static/img/gift/105_icon.png")
    assert (await ok(a, "/api/payment/list-p2g-package", {"token": token}))["packages"] == doc["p2g"]
    for bad in ({**doc, "gifts": [{"id": 1}]}, {**doc, "cash": {"point": 0, "fen": 1}}, {**doc, "extra": 1},
                {**doc, "packages": [{"id": 1, "channel": "paypal", "productId": "p", "gold": 1, "payMoney": 1}]},
                {**doc, "gifts": doc["gifts"] + [doc["gifts"][0]]}, []):
        code, body = await admin(a, "PUT", "/heihei/money", bad)
        assert code == 400, (bad, body)
    assert (await admin(a, "GET", "/heihei/money"))[1] == saved


@pytest_twisted.ensureDeferred
async def test_a_price_changed_on_another_node_is_the_price_charged(nodes, outside):
    """Each node prices gifts from the catalog in memory; the ledger script charges only if the
    catalog's version is still that copy's, so an operator's change on node b holds at once on node a."""
    a = await nodes.start("a", extra(outside))
    b = await nodes.start("b", extra(outside))
    a_token, _, v_token, viewer, live_id = await live_with_viewer(a, a, outside, "13500000051",
                                                                  "13500000052")
    channel = await open_channel(a, a_token)
    await grant(a, viewer, 100)
    gift = {"token": v_token, "liveId": live_id, "giftId": 101, "amount": 1, "gift_uuid": "price-1"}
    assert (await ok(a, "/api/live/buy-gift", gift))["gold"] == 99  # a has the catalog in memory now
    first = await next_msg(channel, want=lambda m: m.get("msgType") == "gift")
    code, doc = await admin(b, "GET", "/heihei/money")
    doc["gifts"][0]["gold"] = doc["gifts"][0]["point"] = 7
    doc["gifts"].append({"id": 106, "name": "新礼物", "gold": 3, "image": "/static/img/gift/106.png",
                         "icon": "/static/img/gift/106_icon.png"})
    assert (await admin(b, "PUT", "/heihei/money", doc))[0] == 200
    assert (await ok(a, "/api/live/buy-gift", {**gift, "amount": 2}))["gold"] == 92
    second = await next_msg(channel, want=lambda m: m.get("msgType") == "gift")
    assert second["totalTicket"] == 8 and second["fromUserName"] == "观众"
    assert isinstance(second["msgId"], int) and second["msgId"] > first["msgId"]
    # a gift added on b is on sale on a at once; the retry of an old tap answers its first balance
    assert (await ok(a, "/api/live/buy-gift", {**gift, "giftId": 106, "gift_uuid": "price-2"}))["gold"] == 89
    assert (await ok(a, "/api/live/buy-gift", gift))["gold"] == 99
    code, report = await admin(a, "POST", "/heihei/reconcile")
    assert report["ok"]
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_a_free_gift_is_sent_and_charges_nothing(nodes, outside):
    """A gift priced 0 (the catalog allows it): Lua's `-0` is no integer to Redis, so the script once
    failed the call; now it is a ledger entry of 0 and the item reaches the room."""
    node = await nodes.start("a", extra(outside))
    a_token, _, v_token, viewer, live_id = await live_with_viewer(node, node, outside, "13500000061",
                                                                  "13500000062")
    channel = await open_channel(node, a_token)
    code, doc = await admin(node, "GET", "/heihei/money")
    doc["gifts"].append({"id": 107, "name": "小心心", "gold": 0, "point": 0, "image": "/static/img/gift/107.png",
                         "icon": "/static/img/gift/107_icon.png"})
    assert (await admin(node, "PUT", "/heihei/money", doc))[0] == 200
    await grant(node, viewer, 5)
    body = await ok(node, "/api/live/buy-gift", {"token": v_token, "liveId": live_id, "giftId": 107, "amount": 1,
                                                 "gift_uuid": "free-1"})
    assert body["gold"] == 5
    item = await next_msg(channel, want=lambda m: m.get("msgType") == "gift")
    assert item["giftId"] == 107
    code, report = await admin(node, "POST", "/heihei/reconcile")
    assert code == 200 and report["ok"]
    await channel.close()
