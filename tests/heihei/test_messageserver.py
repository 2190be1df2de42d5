"""The signed server API: signatures, replay window, and each target type across two nodes; rooms."""

from __future__ import annotations

import json

import pytest_twisted

from heihei.web.messageserver import sign
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import (api, item, now_ms, ok, open_channel, send_data, server_call, sign_in)


@pytest_twisted.ensureDeferred
async def test_signatures_good_bad_missing_and_replayed(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13200000001")
    client = await open_channel(node, token)
    msg = {"msgType": "toast", "text": "弹窗提示内容 \n 我是黑黑", "expireTime": 3}
    params = send_data("tosingle", "targetUserId", int(uid), msg)

    good = await server_call(node, "send-msg", params)
    assert good == {"errorcode": 0, "errormsg": "success"}
    got = await item(client)
    assert got["msg"] == msg  # delivered as is

    replayed = await server_call(node, "send-msg", params)
    assert replayed["errorcode"] == 701 and "replay" in replayed["errormsg"]
    wrong = await server_call(node, "send-msg", send_data("tosingle", "targetUserId", int(uid), msg),
                              secret="not-the-secret")
    assert wrong == {"errorcode": 701, "errormsg": "signature错误"}
    tampered = send_data("tosingle", "targetUserId", int(uid), msg)
    signature = sign("test-server-secret", tampered)
    tampered["data"] = tampered["data"].replace("3}", "4}")
    assert (await server_call(node, "send-msg", tampered, signature=signature))["errorcode"] == 701
    missing = await server_call(node, "send-msg", send_data("tosingle", "targetUserId", int(uid), msg),
                                signature="")
    assert missing["errorcode"] == 701
    old = await server_call(node, "send-msg", send_data("tosingle", "targetUserId", int(uid), msg,
                                                        stamp=now_ms() - 301_000))
    assert old["errorcode"] == 701 and "window" in old["errormsg"]
    future = await server_call(node, "send-msg", send_data("tosingle", "targetUserId", int(uid), msg,
                                                           stamp=now_ms() + 301_000))
    assert future["errorcode"] == 701
    # none of the refused calls delivered anything: the next good one is the next thing the user gets
    marker = {"msgType": "toast", "text": "marker", "expireTime": 3}
    assert (await server_call(node, "send-msg", send_data("tosingle", "targetUserId", int(uid), marker)))[
        "errorcode"] == 0
    assert (await item(client))["msg"] == marker

    # a signed but malformed call is 700; JSON bodies are signed over their canonical values
    bad = await server_call(node, "send-msg", {"data": json.dumps({"timeStamp": now_ms(), "type": "toall",
                                                                     "msg": {}})})
    assert bad["errorcode"] == 700 and "data.type" in bad["errormsg"]
    no_target = await server_call(node, "send-msg", {"data": json.dumps({"timeStamp": now_ms(), "type": "tosingle",
                                                                           "msg": {}})})
    assert no_target["errorcode"] == 700 and "targetUserId" in no_target["errormsg"]
    as_json = await server_call(node, "send-msg", {"data": {"timeStamp": now_ms(), "type": "tosingle",
                                                            "targetUserId": int(uid), "msg": {"msgType": "system",
                                                                                              "text": "json"}}},
                                how="json")
    assert as_json["errorcode"] == 0
    assert (await item(client))["msg"] == {"msgType": "system", "text": "json"}
    unknown = await server_call(node, "send-msg", send_data("tosingle", "targetUserId", 99999, msg))
    assert unknown["errorcode"] == 710
    await client.close()


@pytest_twisted.ensureDeferred
async def test_no_secret_refuses_every_call(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside, heihei={"server_secret": ""}))
    r = await server_call(node, "open-room", {"roomId": "1"}, secret="")
    assert r["errorcode"] == 701


@pytest_twisted.ensureDeferred
async def test_each_target_type_across_two_nodes(nodes, outside):
    a_node = await nodes.start("a", heihei_extra(outside))
    b_node = await nodes.start("b", heihei_extra(outside))
    u_token, u = await sign_in(a_node, outside, "13200000011")
    v_token, v = await sign_in(a_node, outside, "13200000012")
    await ok(a_node, "/api/user/update", {"token": v_token, "displayName": "V", "gender": "Male",
                                          "birthDay": "2000-01-01"})
    cu = await open_channel(b_node, u_token)  # u is on node b, v on node a
    cv = await open_channel(a_node, v_token)

    # tosingle, stored (needstore) while the user is connected elsewhere
    notify = {"msgType": "action", "action": "due-chat-notify", "comment": "约你私聊", "fromUserId": int(v),
              "fromUserName": "V", "needstore": True, "getuiAction": "duechat", "msgId": 1865290063436513696,
              "chatId": 77, "type": 0}
    assert (await server_call(a_node, "send-msg", send_data("tosingle", "targetUserId", int(u), notify)))[
        "errorcode"] == 0
    got = await item(cu)
    assert got["msg"] == notify
    assert (await item(cu))["msg"]["count"] == 1
    history = await ok(b_node, "/api/msg/history-msg", {"token": u_token})
    assert history["unReadCount"] == 1 and history["unReadMsg"][0]["msg"] == notify
    await ok(a_node, "/api/msg/read-one-msg", {"token": u_token, "msgId": notify["msgId"]})
    assert (await item(cu))["msg"]["count"] == 0

    # rooms: a live and a chat, opened by the back end, members added by the domain
    assert (await server_call(a_node, "open-room", {"roomId": "500", "chatId": "77", "timeStamp": now_ms()}))[
        "errorcode"] == 0
    assert (await server_call(a_node, "start-live-broadcast", {"liveId": "9001", "roomId": "600"}))["errorcode"] == 0
    for room in ("500", "600"):
        await a_node.operators["channel"].rooms.add_member(room, u)
        await a_node.operators["channel"].rooms.add_member(room, v)
    to_live = {"msgType": "gift", "amount": 128, "giftId": 12, "roomId": 600, "fromUserId": int(v),
               "fromUserName": "V", "gender": "Male", "totalTicket": 1, "gift_uuid": "adfd", "msgId": 5}
    to_chat = {"msgType": "action", "action": "chat-topic", "comment": "约聊话题消息", "text": "说说你的第一次",
               "msgId": 6, "chatId": 77}
    for kind, field, target, msg in (("toLive", "liveId", "9001", to_live), ("toChat", "chatId", "77", to_chat)):
        r = await server_call(a_node, "send-msg", send_data(kind, field, target, msg))
        assert r["errorcode"] == 0, r
        assert (await item(cu))["msg"] == msg  # on node b
        assert (await item(cv))["msg"] == msg  # on node a
    assert (await server_call(b_node, "send-msg", send_data("toLive", "liveId", "1", to_live)))["errorcode"] == 733

    # room text from a member through the REST API reaches the room on both nodes
    sent = await api(a_node, "/api/msg/send-msg", {"token": v_token, "text": "大家好", "roomId": "600",
                                                   "liveId": "9001"})
    assert sent["errorcode"] == 0, sent
    for client in (cu, cv):
        text = (await item(client))["msg"]
        assert text["msgType"] == "text" and text["text"] == "大家好" and text["fromUserId"] == int(v)
        assert text["fromUserName"] == "V" and text["roomId"] == 600 and isinstance(text["msgId"], int)
    w_token, w = await sign_in(b_node, outside, "13200000013")
    assert (await api(b_node, "/api/msg/send-msg", {"token": w_token, "text": "x", "roomId": "600"}))[
        "errorcode"] == 733  # not a member
    assert (await api(b_node, "/api/msg/send-msg", {"token": v_token, "text": "x", "roomId": "600",
                                                    "liveId": "1"}))["errorcode"] == 733

    # a member who leaves stops getting the room; stopping the live, then closing the room
    await b_node.operators["channel"].rooms.remove_member("500", u)
    assert (await server_call(a_node, "send-msg", send_data("toChat", "chatId", "77", to_chat)))["errorcode"] == 0
    assert (await item(cv))["msg"] == to_chat
    # node a publishes this after the room message, through the same Redis to node b's one
    # subscriber connection: were u still in the room, the room message would come first
    marker = {"msgType": "toast", "text": "marker", "expireTime": 3}
    assert (await server_call(a_node, "send-msg", send_data("tosingle", "targetUserId", int(u), marker)))[
        "errorcode"] == 0
    assert (await item(cu))["msg"] == marker, "a member who left still got the room"
    assert (await server_call(a_node, "stop-live-broadcast", {"liveId": "9001", "roomId": "600"}))["errorcode"] == 0
    assert (await server_call(a_node, "send-msg", send_data("toLive", "liveId", "9001", to_live)))["errorcode"] == 733
    assert (await server_call(a_node, "stop-live-broadcast", {"liveId": "9001", "roomId": "600"}))["errorcode"] == 733
    assert (await server_call(a_node, "close-room", {"roomId": "500"}))["errorcode"] == 0
    assert (await server_call(a_node, "send-msg", send_data("toChat", "chatId", "77", to_chat)))["errorcode"] == 733
    assert (await api(a_node, "/api/msg/send-msg", {"token": v_token, "text": "x", "roomId": "500"}))[
        "errorcode"] == 733
    assert await a_node.operators["channel"].rooms.members("500") == []
    # none of the refused sends delivered anything: the next thing each member gets is this
    for user, client in ((u, cu), (v, cv)):
        last = {**marker, "text": f"last for {user}"}
        assert (await server_call(a_node, "send-msg", send_data("tosingle", "targetUserId", int(user), last)))[
            "errorcode"] == 0
        assert (await item(client))["msg"] == last
    await cu.close()
    await cv.close()


@pytest_twisted.ensureDeferred
async def test_a_new_connection_joins_the_rooms_of_its_user(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13200000021")
    await node.operators["channel"].rooms.open("700")
    await node.operators["channel"].rooms.add_member("700", uid)
    client = await open_channel(node, token)
    await node.operators["channel"].rooms.broadcast("700", {"msgType": "system", "text": "hello room"})
    assert (await item(client))["msg"] == {"msgType": "system", "text": "hello room"}
    assert await node.hub.presence.room_total("channel", "room:700") == 1
    await client.close()


@pytest_twisted.ensureDeferred
async def test_server_messages_to_an_offline_user(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13200000031")
    await ok(node, "/api/user/push-device-info", {"token": token, "uuid": "p1", "apnsType": "apns",
                                                  "apnsToken": "apns-token", "deveiceType": "ios"})
    due = {"msgType": "action", "action": "due-chat-notify", "comment": "约聊通知消息", "expireTime": 15,
           "chatId": 123, "fromUserId": 122, "fromUserName": "张三", "gender": "Male", "msgId": 4242,
           "type": 1, "needstore": True, "getuiAction": "duechat"}
    live = {"msgType": "action", "action": "start-live-notify", "comment": "系统通知",
            "link": "wmlives_heihei://live?id=88", "text": "t", "fromUserId": 122, "fromUserName": "张三",
            "gender": "Male", "msgId": 4343, "text-head": "您关注的", "text-tail": "开播了", "getuiAction": "live"}
    toast = {"msgType": "toast", "text": "gone", "expireTime": 3}
    for msg in (due, live, toast):
        assert (await server_call(node, "send-msg", send_data("tosingle", "targetUserId", int(uid), msg)))[
            "errorcode"] == 0
    # each call answers once its pushes are under way: when they are done, the toast had none
    await node.operators["channel"].pusher.drain()
    pushes = outside.pushes
    assert len(pushes) == 2
    by_action = {p["action"]: p for p in pushes}
    assert by_action["duechat"]["link"] == ("wmlives_heihei://acceptchat?chatId=123&type=1&userId=122"
                                            "&fromUserName=%E5%BC%A0%E4%B8%89&userName=%E5%BC%A0%E4%B8%89"
                                            "&gender=0&msgId=4242")
    # what the shipped client's OutLinkActivity.handleDueChat reads: userName, an int gender
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(by_action["duechat"]["link"]).query)
    assert query["userName"] == ["张三"] and int(query["gender"][0]) == 0 and int(query["chatId"][0]) == 123
    assert by_action["duechat"]["msgId"] == 4242 and by_action["duechat"]["fromUserName"] == "张三"
    assert by_action["duechat"]["clientid"] == "apns-token" and by_action["duechat"]["deviceType"] == "ios"
    assert by_action["live"]["link"] == "wmlives_heihei://live?id=88"
    assert by_action["live"]["text"] == "您关注的张三开播了"
    # only the stored one waits for the user; the toast and the live notice were for that moment
    client = await open_channel(node, token, expect_unread=None)
    assert (await item(client))["msg"] == due
    assert (await item(client))["msg"]["count"] == 1
    marker = {"msgType": "toast", "text": "marker", "expireTime": 3}
    assert (await server_call(node, "send-msg", send_data("tosingle", "targetUserId", int(uid), marker)))[
        "errorcode"] == 0
    assert (await item(client))["msg"] == marker  # nothing else was waiting
    listed = await ok(node, "/api/msg/message-list", {"token": token})
    assert listed["unreadMsgCount"] == 1 and listed["messages"][0]["fromUserId"] == 122
    assert listed["messages"][0]["text"] == "约聊通知消息"
    await client.close()
