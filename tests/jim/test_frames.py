"""Bad frames get J-IM's error answers and the connection stays usable; sizes are bounded."""

import pytest_twisted

from tests.jim.helpers import ask, chat, extra, login, register


@pytest_twisted.ensureDeferred
async def test_bad_frames_get_jim_errors(nodes):
    node = await nodes.start("a", extra(insecure_login=True, default_groups=["100"]))
    await register(node, "bob")
    alice = await login(node, query="username=alice&password=1")
    unknown = {"code": 10017, "command": 0, "msg": "cmd failed! 未知的cmd命令!"}
    for request in ({"cmd": 99}, {"cmd": "abc"}, {"hello": 1}, {"cmd": 1}, {"cmd": 12}):
        assert await ask(alice, request) == unknown, request
    for raw in ("hello", "{\"cmd\": 11", "[1, 2]", "\"just a string\"", "null"):
        answer = await ask(alice, raw)
        assert answer["code"] == 10002 and answer["command"] == 0, raw
        assert answer["msg"] == "send failed 消息发送失败,数据格式不正确" and answer["data"]["reason"]
    bad_chats = [
        chat("mallory", "bob", "spoofed"),                      # from must be the connected user
        {**chat("alice", "bob", "x"), "chatType": 3},
        {**chat("alice", "bob", "x"), "chatType": None},
        {**chat("alice", "bob", "x"), "msgType": "text"},
        {**chat("alice", "bob", "x"), "createTime": "now"},
        {**chat("alice", "bob", "x"), "content": None},
        chat("alice", "", "no receiver"),
        chat("alice", "alice", "to myself"),
        {"cmd": 11, "from": "alice", "chatType": 1, "content": "no group"},
        {"cmd": 11, "from": "alice", "chatType": 1, "groupId": "200", "content": "not a member"},
    ]
    for request in bad_chats:
        answer = await ask(alice, request)
        assert answer["code"] == 10002 and answer["command"] == 12 and answer["data"]["reason"], request
    # binary frames are read the same way; "from" may be left out
    alice.send(b'{"cmd": 11, "to": "bob", "chatType": 2, "content": "binary"}', binary=True)
    assert (await alice.next_json())["code"] == 10001
    waiting = await node.hub.inbox.pending("jim", "bob")
    assert [m.body["content"] for m in waiting] == ["binary"]
    # the connection is still fine
    assert (await ask(alice, {"cmd": 13}))["command"] == 13
    # other users' data are not served
    assert (await ask(alice, {"cmd": 19, "type": 0, "userId": "bob"}))["code"] == 10015
    assert (await ask(alice, {"cmd": 19, "type": 0}))["code"] == 10015
    assert (await ask(alice, {"cmd": 19, "type": 3, "userId": "alice"}))["code"] == 10015
    assert (await ask(alice, {"cmd": 17, "type": 1, "userId": "bob"}))["code"] == 10004
    assert (await ask(alice, {"cmd": 14, "userid": "bob"}))["code"] == 10020
    assert (await ask(alice, {"cmd": 5, "loginname": "bob", "password": "x"}))["code"] == 10008
    relogin = await ask(alice, {"cmd": 5, "loginname": "alice", "password": "x"})
    assert relogin["code"] == 10007 and relogin["data"]["user"]["id"] == "alice"
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_oversize_frames_close_with_1009(nodes):
    node = await nodes.start("a", extra(max_message_bytes=1024))
    await register(node, "u")
    u = await login(node, "tok-u")
    u.send('{"cmd":11,"content":"' + "x" * 2000 + '"}')
    code, _ = await u.wait_closed()
    assert code == 1009


@pytest_twisted.ensureDeferred
async def test_senders_are_rate_limited(nodes):
    node = await nodes.start("a", extra(chat_rate_per_s=0.01, chat_burst=3))
    await register(node, "u")
    u = await login(node, "tok-u")
    codes = [(await ask(u, chat("u", "v", f"m{i}")))["code"] for i in range(5)]
    assert codes == [10001, 10001, 10001, 10002, 10002]
    assert len(await node.hub.inbox.pending("jim", "v")) == 3
    await u.close()


@pytest_twisted.ensureDeferred
async def test_storage_trouble_is_answered_not_dropped(nodes):
    from heihei.store.client import StoreUnavailable
    from tests.jim.helpers import post

    node = await nodes.start("a", extra())
    await register(node, "u")
    u = await login(node, "tok-u")
    jim = node.factories["jim"].context

    async def unavailable(*args, **kwargs):
        raise StoreUnavailable("redis eval: timed out")

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    jim.history = unavailable
    answer = await ask(u, {"cmd": 19, "type": 1, "userId": "u", "fromUserId": "v"})
    assert answer["code"] == 10015 and answer["data"]["reason"] == "storage unavailable, try again"
    jim.send_private = broken
    answer = await ask(u, chat("u", "v", "x"))
    assert answer["code"] == 10002 and answer["command"] == 12 and answer["data"]["reason"] == "internal error"
    jim.register = unavailable
    status, answer = await post(node, "initUser", {"senderId": "w", "token": "t"})
    assert (status, answer) == (503, {"code": 503, "msg": "storage unavailable, try again", "data": None})
    jim.register = broken
    status, answer = await post(node, "initUser", {"senderId": "w", "token": "t"})
    assert (status, answer) == (500, {"code": 500, "msg": "internal error", "data": None})
    assert (await ask(u, {"cmd": 13}))["command"] == 13  # still serving
    await u.close()
