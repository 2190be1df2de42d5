"""The push channel: IM between users, blocks, multi-device, offline → message list → read-all, framing."""

from __future__ import annotations

import json

import pytest_twisted

from heihei.heihei.im import TIPS
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, frame, item, name, ok, open_channel, send_im, sign_in

EVERY_TYPE = [
    ("text", {"text": "hello word!"}, {}),
    ("systopic", {"text": "#有试过同时跟两个人交往吗#"}, {}),
    ("audio", {"audio": "http://cdn.example.com/record/a.m4a", "length": 15}, {}),
    ("gift", {"text": "我送你kiss雨", "giftId": 113}, {}),
    ("dueChat", {"chatStatus": 1, "chatLength": 1200}, {}),
    ("sysnotify", {"text": "我在话题#接口对接#里给你送了小花花，", "img": "http://cdn.example.com/gift-5.png",
                   "icon": "http://cdn.example.com/105_icon.png"},
     {"jump": {"text": "查看", "link": "wmlivesheihei://topic/1111"}}),
    ("image", {"img": "http://cdn.example.com/gift-5.png"}, {}),
    ("video", {"video": "http://he.example.com/uploads/videos/x.mp4"}, {}),
]


async def two_users(nodes, outside, **extra):
    node = await nodes.start("a", heihei_extra(outside, **extra))
    a_token, a = await sign_in(node, outside, "13100000001")
    b_token, b = await sign_in(node, outside, "13100000002")
    await name(node, a_token, "阿A")
    await name(node, b_token, "阿B")
    return node, (a_token, a), (b_token, b)


def check_im(got, *, sender, receiver, msg_type, content, extra):
    assert set(got) == {"msgType", "msg", "users", "timeStamp"}
    assert got["msgType"] == "IM"
    msg = got["msg"]
    assert msg["toUserId"] == int(receiver) and msg["fromUserId"] == int(sender)
    assert msg["msgType"] == msg_type and msg["content"] == content
    assert msg["tips"] == TIPS[msg_type]
    assert isinstance(msg["msgId"], int) and 0 < msg["msgId"] < 2 ** 63
    assert abs(msg["createTime"] - got["timeStamp"]) <= 1
    for k, v in extra.items():
        assert msg[k] == v
    users = got["users"]
    assert set(users) == {sender, receiver}
    entry = users[sender]
    assert set(entry) == {"id", "displayName", "heiNum", "coverUrl", "level", "gender", "honours", "isFollowed"}
    assert entry["id"] == int(sender) and entry["displayName"] == {"10001": "阿A", "10002": "阿B"}[sender]
    assert isinstance(entry["heiNum"], str) and entry["heiNum"].isdigit()
    assert entry["level"] == 0 and entry["honours"] == [] and entry["isFollowed"] is False
    return msg


@pytest_twisted.ensureDeferred
async def test_two_users_exchange_every_im_type(nodes, outside):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    ca = await open_channel(node, a_token)
    cb = await open_channel(node, b_token)
    ids = set()
    for n, (msg_type, content, extra) in enumerate(EVERY_TYPE, 1):
        send_im(ca, b, msg_type, content, **extra)
        echo = await item(ca)
        msg = check_im(echo, sender=a, receiver=b, msg_type=msg_type, content=content, extra=extra)
        got = await item(cb)
        assert got["msg"] == msg
        assert got["users"][a]["displayName"] == "阿A" and got["users"][b]["displayName"] == "阿B"
        unread = await item(cb)
        assert unread["msg"]["action"] == "message-unread-count" and unread["msg"]["count"] == n
        ids.add(msg["msgId"])
        # and back
        send_im(cb, a, msg_type, content, **extra)
        back = await item(cb)
        check_im(back, sender=b, receiver=a, msg_type=msg_type, content=content, extra=extra)
        assert (await item(ca))["msg"] == back["msg"]
        assert (await item(ca))["msg"]["count"] == n
        ids.add(back["msg"]["msgId"])
    assert len(ids) == 2 * len(EVERY_TYPE)
    # nothing more: a stray frame for a would come before the answers read below, one for b
    # before the message that ends this test

    # each type's content is checked
    bad = [
        ({"msgType": "IM", "msg": {"toUserId": int(b), "msgType": "audio", "content": {"audio": "http://x/a"}}},
         700, "msg.content.length"),
        ({"msgType": "IM", "msg": {"toUserId": int(b), "msgType": "image", "content": {"img": "file:///etc/passwd"}}},
         700, "msg.content.img"),
        ({"msgType": "IM", "msg": {"toUserId": int(b), "msgType": "text", "content": {"text": ""}}},
         700, "msg.content.text"),
        ({"msgType": "IM", "msg": {"toUserId": int(b), "msgType": "text", "content": {"text": "x" * 501}}},
         700, "msg.content.text"),
        ({"msgType": "IM", "msg": {"toUserId": int(b), "msgType": "gift", "content": {"giftId": "113"}}},
         700, "msg.content.giftId"),
        ({"msgType": "IM", "msg": {"toUserId": int(b), "msgType": "html", "content": {}}}, 700, "msg.msgType"),
        ({"msgType": "IM", "msg": {"toUserId": 99999, "msgType": "text", "content": {"text": "hi"}}}, 710, "99999"),
        ({"msgType": "IM", "msg": {"toUserId": int(a), "msgType": "text", "content": {"text": "hi"}}}, 700, "yourself"),
        ({"msgType": "chat", "msg": {}}, 700, "msgType"),
    ]
    for payload, code, needle in bad:
        ca.send(json.dumps(payload))
        refused = await item(ca)
        assert refused["msg"]["msgType"] == "action" and refused["msg"]["action"] == "im-error", refused
        assert refused["msg"]["errorcode"] == code and needle in refused["msg"]["errormsg"], refused
    # unknown content keys are dropped, not stored; and this is the first b gets after the
    # exchange: nothing refused reached b
    send_im(ca, b, "text", {"text": "hi", "evil": "x" * 100})
    assert (await item(ca))["msg"]["content"] == {"text": "hi"}
    assert (await item(cb))["msg"]["content"] == {"text": "hi"}
    assert (await item(cb))["msg"]["count"] == len(EVERY_TYPE) + 1
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_blocked_users_cannot_message_each_other(nodes, outside):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    ca = await open_channel(node, a_token)
    cb = await open_channel(node, b_token)
    await ok(node, "/api/user/block-user", {"token": b_token, "userId": a})
    send_im(ca, b, "text", {"text": "hi"}, clientMsgId="c1")
    refused = await item(ca)
    assert refused["msg"]["errorcode"] == 711 and refused["msg"]["toUserId"] == int(b)
    assert refused["msg"]["clientMsgId"] == "c1"
    send_im(cb, a, "text", {"text": "hi"})  # the blocker cannot write either
    assert (await item(cb))["msg"]["errorcode"] == 711
    await ok(node, "/api/user/unblock-user", {"token": b_token, "targetId": a})
    # the first messages either gets after unblocking are these: the refused ones never arrived
    send_im(ca, b, "text", {"text": "hi again"})
    assert (await item(ca))["msg"]["content"] == {"text": "hi again"}
    assert (await item(cb))["msg"]["content"] == {"text": "hi again"}
    assert (await item(cb))["msg"]["count"] == 1
    send_im(cb, a, "text", {"text": "and back"})
    assert (await item(cb))["msg"]["content"] == {"text": "and back"}
    assert (await item(ca))["msg"]["content"] == {"text": "and back"}
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_every_device_of_both_users_gets_every_message(nodes, outside):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    a1, a2 = await open_channel(node, a_token), await open_channel(node, a_token)
    b1, b2 = await open_channel(node, b_token), await open_channel(node, b_token)
    send_im(a1, b, "text", {"text": "to all of you"})
    seen = []
    for client in (a1, a2, b1, b2):
        seen.append((await item(client))["msg"])
    assert all(m == seen[0] for m in seen)
    for client in (b1, b2):
        assert (await item(client))["msg"]["count"] == 1
    await a2.close()
    send_im(b2, a, "text", {"text": "one left"})
    assert (await item(a1))["msg"]["content"] == {"text": "one left"}
    assert (await item(b1))["msg"]["content"] == {"text": "one left"}
    for client in (a1, b1, b2):
        await client.close()


@pytest_twisted.ensureDeferred
async def test_offline_user_message_list_unread_and_read_all(nodes, outside):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    await ok(node, "/api/user/push-device-info", {"token": b_token, "uuid": "b-phone", "apnsType": "getui",
                                                  "apnsToken": "cid-b", "deveiceType": "android"})
    ca = await open_channel(node, a_token)
    for text in ("one", "two", "three"):
        send_im(ca, b, "text", {"text": text})
        await item(ca)
    # b is offline: a push per message, built like the seed's push structure
    pushes = await outside.wait_for("push", 3)
    push = pushes[0]
    assert push["title"] == "阿A" and push["text"] == "one" and push["action"] == "message"
    assert push["link"] == "wmlives_heihei://message" and push["fromUserId"] == int(a)
    assert push["fromUserName"] == "阿A" and push["clientid"] == "cid-b" and push["deviceType"] == "android"
    assert isinstance(push["msgId"], int) and isinstance(push["data"], dict)
    assert all(h and len(h) == 64 for h in outside.push_headers)

    listed = await ok(node, "/api/msg/message-list", {"token": b_token})
    assert listed["unreadMsgCount"] == 3
    [conv] = listed["messages"]
    assert conv["fromUserId"] == int(a) and conv["fromUserName"] == "阿A" and conv["gender"] == "Female"
    assert conv["data"] == {"count": 3, "type": "text"} and conv["text"] == "three"
    assert conv["action"] == "message" and conv["msgType"] == "action" and conv["birthDay"] == "1990-01-02"
    assert conv["link"] == f"wmlives_heihei://duechat?uid={a}"
    history = await ok(node, "/api/msg/history-msg", {"token": b_token})
    assert history["unReadCount"] == 3 and history["readMsg"] == []
    assert [i["msg"]["content"]["text"] for i in history["unReadMsg"]] == ["three", "two", "one"]

    # b comes back: the stored messages, then the unread count
    cb = await open_channel(node, b_token, expect_unread=None)
    texts = [(await item(cb))["msg"]["content"]["text"] for _ in range(3)]
    assert texts == ["one", "two", "three"]
    assert (await item(cb))["msg"] == {"msgType": "action", "action": "message-unread-count",
                                       "comment": "未读消息数", "count": 3}
    # delivered is not read
    assert (await ok(node, "/api/msg/message-list", {"token": b_token}))["unreadMsgCount"] == 3
    await ok(node, "/api/msg/message-read-all", {"token": b_token})
    assert (await item(cb))["msg"]["count"] == 0
    listed = await ok(node, "/api/msg/message-list", {"token": b_token})
    assert listed["unreadMsgCount"] == 0 and listed["messages"][0]["data"]["count"] == 0
    history = await ok(node, "/api/msg/history-msg", {"token": b_token})
    assert history["unReadCount"] == 0 and len(history["readMsg"]) == 3

    # online now: no push; a push only reaches users with push_enable
    send_im(ca, b, "text", {"text": "four"})
    await item(ca)
    assert (await item(cb))["msg"]["content"]["text"] == "four"
    assert (await item(cb))["msg"]["count"] == 1
    await cb.close()
    await ok(node, "/api/user/update-config", {"token": b_token, "push_enable": "0"})
    send_im(ca, b, "text", {"text": "five"})
    await item(ca)
    # a's frames are handled in order: once this one is answered, five's handling is over and its
    # push, if any, under way; when the pushes in flight are done, none was for five
    ca.send(json.dumps({"msgType": "chat", "msg": {}}))
    assert (await item(ca))["msg"]["errorcode"] == 700
    await node.operators["channel"].pusher.drain()
    assert [p["text"] for p in outside.pushes] == ["one", "two", "three"]
    await ca.close()


@pytest_twisted.ensureDeferred
async def test_deprecated_read_one_delete_and_message_del_agree_with_the_count(nodes, outside):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    ca = await open_channel(node, a_token)
    ids = []
    for text in ("m1", "m2", "m3", "m4"):
        send_im(ca, b, "text", {"text": text})
        ids.append((await item(ca))["msg"]["msgId"])
    cb = await open_channel(node, b_token, expect_unread=None)
    for _ in range(4):
        await item(cb)
    assert (await item(cb))["msg"]["count"] == 4

    await ok(node, "/api/msg/read-one-msg", {"token": b_token, "msgId": ids[1]})  # m1, m2 read
    assert (await item(cb))["msg"]["count"] == 2
    await ok(node, "/api/msg/delete-msg", {"token": b_token, "msgId": ids[3]})  # m4 gone: m3 unread
    assert (await item(cb))["msg"]["count"] == 1
    history = await ok(node, "/api/msg/history-msg", {"token": b_token})
    assert [i["msg"]["content"]["text"] for i in history["unReadMsg"]] == ["m3"]
    assert [i["msg"]["content"]["text"] for i in history["readMsg"]] == ["m2", "m1"]
    # the sender keeps their copy
    a_history = await ok(node, "/api/msg/message-list", {"token": a_token})
    assert a_history["messages"][0]["text"] == "m4"
    # a stranger cannot touch it
    c_token, c = await sign_in(node, outside, "13100000003")
    assert (await api(node, "/api/msg/read-one-msg", {"token": c_token, "msgId": ids[0]}))["errorcode"] == 700
    assert (await api(node, "/api/msg/delete-msg", {"token": b_token, "msgId": 12345}))["errorcode"] == 700

    await ok(node, "/api/msg/read-all-msg", {"token": b_token})
    assert (await item(cb))["msg"]["count"] == 0
    send_im(ca, b, "text", {"text": "m5"})
    await item(ca)
    await item(cb)
    assert (await item(cb))["msg"]["count"] == 1
    await ok(node, "/api/msg/message-del", {"token": b_token, "userId": a})
    assert (await item(cb))["msg"]["count"] == 0
    listed = await ok(node, "/api/msg/message-list", {"token": b_token})
    assert listed == {"errorcode": 0, "errormsg": "success", "messages": [], "unreadMsgCount": 0}
    assert (await ok(node, "/api/msg/history-msg", {"token": b_token}))["readMsg"] == []
    # a new message brings the conversation back, with just the new one
    send_im(ca, b, "text", {"text": "m6"})
    await item(ca)
    listed = await ok(node, "/api/msg/message-list", {"token": b_token})
    assert listed["unreadMsgCount"] == 1 and listed["messages"][0]["text"] == "m6"
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_every_frame_is_an_array_of_items(nodes, outside):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    ca = await open_channel(node, a_token)
    cb = await open_channel(node, b_token)
    # a client may send several messages in one array
    ca.send(json.dumps([{"msgType": "IM", "msg": {"toUserId": int(b), "msgType": "text", "content": {"text": t}}}
                        for t in ("x", "y")]))
    assert [(await item(ca))["msg"]["content"]["text"] for _ in range(2)] == ["x", "y"]
    # refusals are arrays of items too, whatever was sent
    for bad in ("not json", "[]", "42", json.dumps([{}] * 21)):
        ca.send(bad)
        refused = await frame(ca)
        assert refused[0]["msg"]["action"] == "im-error" and refused[0]["msg"]["errorcode"] == 700
    ca.send(b"\x00\x01", binary=True)
    assert (await item(ca))["msg"]["errorcode"] == 700
    # the raw text of every frame b got parses as an array
    got = [await frame(cb) for _ in range(4)]
    assert [i[0]["msg"].get("content", {}).get("text") for i in got[::2]] == ["x", "y"]
    for raw in cb.received:
        assert raw.startswith("[") and isinstance(json.loads(raw), list)
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_a_resent_client_message_id_is_stored_once(nodes, outside):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    ca = await open_channel(node, a_token)
    cb = await open_channel(node, b_token)
    send_im(ca, b, "text", {"text": "once"}, clientMsgId="abc")
    first = await item(ca)
    await item(cb)
    await item(cb)
    send_im(ca, b, "text", {"text": "once"}, clientMsgId="abc")
    again = await item(ca)
    assert again["msg"]["msgId"] == first["msg"]["msgId"] and again["msg"]["clientMsgId"] == "abc"
    assert (await ok(node, "/api/msg/message-list", {"token": b_token}))["unreadMsgCount"] == 1
    # a second copy would come before the next message
    send_im(ca, b, "text", {"text": "next"})
    await item(ca)
    assert (await item(cb))["msg"]["content"] == {"text": "next"}, "the resent message was delivered again"
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_is_followed_is_seen_from_each_receiver(nodes, outside, redis):
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    from heihei.heihei.accounts import REALM
    from heihei.store.keys import key

    redis["client"].zadd(key("following", REALM, b), {a: 1})  # b follows a (the follow module's key)
    ca = await open_channel(node, a_token)
    cb = await open_channel(node, b_token)
    send_im(ca, b, "text", {"text": "hi"})
    mine, theirs = await item(ca), await item(cb)
    assert mine["users"][a]["isFollowed"] is False and mine["users"][b]["isFollowed"] is False
    assert theirs["users"][a]["isFollowed"] is True and theirs["users"][b]["isFollowed"] is False
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_sending_too_fast_is_refused(nodes, outside):
    from twisted.internet import task

    clock = task.Clock()
    clock.advance(1_700_000_000)
    node = await nodes.start("a", heihei_extra(outside, heihei={"im_rate_per_second": 1.0, "im_rate_burst": 2}),
                             clock=clock)
    a_token, a = await sign_in(node, outside, "13100000001")
    b_token, b = await sign_in(node, outside, "13100000002")
    ca = await open_channel(node, a_token)
    for n in range(2):
        send_im(ca, b, "text", {"text": f"ok {n}"})
        assert (await item(ca))["msg"]["msgType"] == "text"
    send_im(ca, b, "text", {"text": "too fast"})
    refused = await item(ca)
    assert refused["msg"]["errorcode"] == 400 and "too fast" in refused["msg"]["errormsg"]
    clock.advance(1)
    send_im(ca, b, "text", {"text": "ok again"})
    assert (await item(ca))["msg"]["content"] == {"text": "ok again"}
    await ca.close()


@pytest_twisted.ensureDeferred
async def test_banned_words_are_masked_in_im_text(nodes, outside, tmp_path):
    words = tmp_path / "banned.txt"
    words.write_text("坏词\n")
    node, (a_token, a), (b_token, b) = await two_users(nodes, outside,
                                                       moderation={"banned_words_file": str(words)})
    ca = await open_channel(node, a_token)
    send_im(ca, b, "text", {"text": "这是坏词吗"})
    assert (await item(ca))["msg"]["content"] == {"text": "这是**吗"}
    await ca.close()


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_answering_pings_is_dropped(nodes, outside):
    from twisted.internet import defer, protocol, reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint

    # Autobahn's ping timers run on txaio's batched timer, which truncates deadlines to whole
    # seconds of real time: a timeout under 2 s may fire at once. These take 1-3 s.
    node = await nodes.start("a", heihei_extra(outside, channel={"auto_ping_interval_s": 1.0,
                                                                 "auto_ping_timeout_s": 2.0}))
    token, uid = await sign_in(node, outside, "13100000009")
    polite = await open_channel(node, token)  # Autobahn's client answers pings
    host, port = node.listeners["http"].address()

    class Mute(protocol.Protocol):
        """Completes the handshake, then never answers anything."""

        def __init__(self):
            self.data = b""
            self.lost = defer.Deferred()

        def connectionMade(self):
            self.transport.write(
                f"GET /ws/channel?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode())

        def dataReceived(self, data):
            self.data += data

        def connectionLost(self, reason):
            self.lost.callback(None)

    mute = Mute()
    await TCP4ClientEndpoint(reactor, host, port).connect(protocol.Factory.forProtocol(lambda: mute))
    mute.lost.addTimeout(6, reactor)
    await mute.lost
    assert mute.data.startswith(b"HTTP/1.1 101")
    assert b"message-unread-count" in mute.data
    assert len(node.factories["channel"].clients) == 1
    assert not polite.closed.called
    await polite.close()


@pytest_twisted.ensureDeferred
async def test_a_message_sent_at_once_after_the_handshake_is_acknowledged(nodes, outside):
    from tests.heihei.helpers import channel_url
    from tests.wsclient import connect

    node, (a_token, a), (b_token, b) = await two_users(nodes, outside)
    ca = await connect(channel_url(node, a_token))
    send_im(ca, b, "text", {"text": "quick"})
    assert (await item(ca))["msg"]["action"] == "message-unread-count"
    assert (await item(ca))["msg"]["content"] == {"text": "quick"}
    await ca.close()
