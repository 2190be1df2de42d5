"""The fixes found by running the shipped Android client's parsing against the server (heihei-app.md,
"Fixes to what exists"): v2 IM items only to apps that asked for them, no token in any access log line,
lat,lng, no uuid. (sys/update's errorcode: test_api.py; chat-invite links: test_messageserver.py.)"""

from __future__ import annotations

import pytest_twisted
import treq
from twisted.logger import globalLogPublisher, formatEvent

from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, item, name, ok, open_channel, send_im, sign_in
from tests.heihei.test_api import INIT


@pytest_twisted.ensureDeferred
async def test_v2_im_items_reach_only_apps_that_asked_for_them(nodes, outside):
    a_node = await nodes.start("a", heihei_extra(outside))
    b_node = await nodes.start("b", heihei_extra(outside))
    ta, a = await sign_in(a_node, outside, "13000000001")
    tb, b = await sign_in(b_node, outside, "13000000002")
    await name(a_node, ta, "甲")

    old_app = await open_channel(b_node, tb, v2=False)  # the shipped client: apiVersion 1.0, nothing on the URL
    new_app = await open_channel(a_node, tb)  # &apiVersion=2
    sender = await open_channel(a_node, ta)
    send_im(sender, b, "text", {"text": "你好"})
    assert (await item(new_app))["msgType"] == "IM"
    assert (await item(sender))["msgType"] == "IM"
    # the old app gets the new unread count, not the item (it would be a blank bubble in the open room)
    count = await item(old_app)
    assert count["msg"]["action"] == "message-unread-count" and count["msg"]["count"] == 1
    assert (await item(new_app))["msg"]["action"] == "message-unread-count"
    await old_app.no_message(0.3)
    # it is stored all the same: message-list shows it
    listed = await ok(b_node, "/api/msg/message-list", {"token": tb})
    assert listed["messages"][0]["fromUserId"] == int(a) and listed["messages"][0]["text"] == "你好"
    # a server message that is a v2 IM envelope is held back from the old app too
    from tests.heihei.helpers import send_data, server_call

    envelope = {"msgType": "IM", "msg": {"toUserId": int(b), "fromUserId": 0, "msgType": "sysnotify",
                                         "content": {"text": "系统通知"}}}
    assert (await server_call(a_node, "send-msg", send_data("tosingle", "targetUserId", int(b), envelope)))[
        "errorcode"] == 0
    assert (await item(new_app))["msgType"] == "IM"
    assert (await item(old_app))["msg"]["action"] == "message-unread-count"
    await old_app.no_message(0.3)
    for client in (old_app, new_app, sender):
        await client.close()

    # /api/init with apiVersion 2 and the token: that session's channel gets v2 without asking on the URL
    await ok(b_node, "/api/init", {**INIT, "apiVersion": "2.0", "token": tb})
    declared = await open_channel(b_node, tb, v2=False, expect_unread=None)
    assert (await item(declared))["msg"]["action"] == "message-unread-count"
    sender = await open_channel(a_node, ta)
    send_im(sender, b, "text", {"text": "再见"})
    assert (await item(declared))["msg"]["content"] == {"text": "再见"}
    await declared.close()
    # an old app that sends an IM itself shows them: from then on it gets them
    await ok(b_node, "/api/init", {**INIT, "token": tb})  # apiVersion 1.0 again
    writer = await open_channel(b_node, tb, v2=False, expect_unread=None)
    await item(writer)
    send_im(writer, a, "text", {"text": "我也会"})
    assert (await item(writer))["msg"]["content"] == {"text": "我也会"}
    await writer.close()
    await sender.close()


@pytest_twisted.ensureDeferred
async def test_no_token_in_any_access_log_line(nodes, outside):
    lines: list[str] = []

    def observe(event):
        lines.append(formatEvent(event) or "")

    globalLogPublisher.addObserver(observe)
    try:
        node = await nodes.start("a", heihei_extra(outside))
        token, uid = await sign_in(node, outside, "13000000003")
        query = f"?token={token}&uid={uid}"
        response = await treq.get(http_url(node, "/api/user/info" + query),
                                  headers={"Referer": f"https://app.example/page?token={token}&x=1"})
        await response.content()
        response = await treq.get(http_url(node, f"/api/init?ap=heihei&version=1&local=zh_CN&apiVersion=1.0"
                                                 f"&deveiceType=android&token={token}&apnsToken=cid-secret"))
        await response.content()
        client = await open_channel(node, token)
        await client.close()
        await nodes.stop(node)
    finally:
        globalLogPublisher.removeObserver(observe)
    access = [line for line in lines if '"GET /' in line]
    assert any(f"/api/user/info?token=***&uid={uid}" in line for line in access), access
    # (the channel's handshake is not an access-log line at all: the request becomes a WebSocket; the last
    # check covers whatever else logs it)
    assert any("page?token=***&x=1" in line for line in access), access
    assert all(token not in line and "cid-secret" not in line for line in lines)


@pytest_twisted.ensureDeferred
async def test_latlng_with_a_comma_and_devices_without_uuid(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13000000004")
    await ok(node, "/api/user/update", {"token": token, "displayName": "定位", "gender": "Male",
                                        "birthDay": "1990-01-01", "latlng": "39.9042,116.4074"})
    profile = await node.operators["channel"].accounts.get(uid)
    assert profile["latlng"] == "39.9042|116.4074"
    assert (await api(node, "/api/user/update", {"token": token, "displayName": "定位", "gender": "Male",
                                                 "birthDay": "1990-01-01", "latlng": "39.9;116.4"}))["errorcode"] == 700
    await ok(node, "/api/user/push-device-info", {"token": token, "apnsType": "getui", "apnsToken": "cid-1",
                                                  "deveiceType": "android"})
    await ok(node, "/api/user/push-device-info", {"token": token, "uuid": "", "apnsType": "getui",
                                                  "apnsToken": "cid-1", "deveiceType": "android"})
    devices = await node.operators["channel"].devices.of(uid)
    assert len(devices) == 1 and next(iter(devices.values()))["apnsToken"] == "cid-1"
    await ok(node, "/api/init", {**{k: v for k, v in INIT.items() if k != "uuid"}, "token": token,
                                 "apnsType": "getui", "apnsToken": "cid-2"})
    assert len(await node.operators["channel"].devices.of(uid)) == 2
