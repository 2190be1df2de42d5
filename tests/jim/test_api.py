"""/im/vanke/* : the API key, JSON errors with reasons, registration and token binding."""

import re

import pytest_twisted

from tests.jim.helpers import API_KEY, extra, login, post, register


@pytest_twisted.ensureDeferred
async def test_api_key_is_required(nodes):
    node = await nodes.start("a", extra())
    body = {"senderId": "u1", "type": 0, "token": "t1"}
    for key in (None, "wrong", API_KEY + "x"):
        status, answer = await post(node, "initUser", body, key=key)
        assert status == 401 and answer == {"code": 401, "msg": "missing or wrong X-Api-Key", "data": None}
    assert (await post(node, "initUser", body))[0] == 200


@pytest_twisted.ensureDeferred
async def test_without_a_key_the_api_is_closed_unless_explicitly_insecure(nodes):
    closed = await nodes.start("a", {"jim": {}})
    status, answer = await post(closed, "initUser", {"senderId": "u1"}, key=None)
    assert status == 401 and "api_key" in answer["msg"]
    open_ = await nodes.start("b", {"jim": {"insecure_api": True}})
    status, answer = await post(open_, "initUser", {"senderId": "u1", "token": "t"}, key=None)
    assert (status, answer) == (200, {"code": 200, "msg": "success", "data": None})


@pytest_twisted.ensureDeferred
async def test_bad_requests_get_json_reasons(nodes):
    node = await nodes.start("a", extra())
    cases = [
        ("initUser", b"{not json", 400, "body must be a JSON object"),
        ("initUser", b"[1, 2]", 400, "expected a JSON object"),
        ("initUser", b"{}", 400, "senderId is required"),
        ("initUser", b'{"senderId": "u1", "type": 7}', 400, "type must be one of 0, 1, 2"),
        ("initUser", b'{"senderId": "u1", "type": true}', 400, "type must be one of"),
        ("initUser", b'{"senderId": {"a": 1}}', 400, "senderId must be a string"),
        ("initUser", ('{"senderId": "u1", "nick": "%s"}' % ("x" * 200)).encode(), 400, "nick must be a string"),
        ("initUser", b'{"senderId": "u1", "extras": [1]}', 400, "extras must be a JSON object"),
        ("initUser", b'{"senderId": "u1", "token": "a b"}', 400, "token must be"),
        ("getReceiver", b'{"senderId": "agent1", "type": 1}', 400, "receiverId is required"),
        ("getReceiver", b'{"senderId": "v1", "type": 0, "receiverId": "v1"}', 400, "receiverId cannot be"),
        ("getReceiver", b'{"senderId": "v1", "type": 0}', 503, "no customer-service agent"),
        ("chatInfo", b'{"to": "a", "from": "b"}', 400, "op is required"),
        ("chatInfo", b'{"to": "a", "from": "b", "op": 3}', 400, "op must be one of 1, 2"),
        ("chatInfo", b'{"to": "a", "from": "b", "op": 1, "isConcurrent": 2}', 400, "isConcurrent must be"),
        ("chatInfo", b'{"from": "b", "op": 1}', 400, "to is required"),
        ("chatInfo", b'{"to": "a", "from": "a", "op": 1}', 400, "to and from must differ"),
        ("nothing", b"{}", 404, "no such jim API"),
    ]
    for path, raw, status, reason in cases:
        got_status, answer = await post(node, path, raw=raw)
        assert got_status == status and answer["code"] == status and reason in answer["msg"], (path, raw, answer)
        assert answer["data"] is None
    status, answer = await post(node, "initUser", {"senderId": "u1"}, method="GET")
    assert status == 405 and answer["code"] == 405


@pytest_twisted.ensureDeferred
async def test_registration_binds_or_generates_tokens_and_keeps_fields(nodes):
    node = await nodes.start("a", extra())
    status, answer = await post(node, "initUser", {"senderId": "098f64aa0ac8ad53", "receiverId": "",
                                                   "avatar": "ggggfff", "nick": "测试", "terminal": "pc", "type": 0})
    assert status == 200 and re.match("^[0-9a-f]{32}$", answer["data"]["token"])
    client = await login(node, answer["data"]["token"])
    assert client.login["data"]["user"] == {"avatar": "ggggfff", "id": "098f64aa0ac8ad53", "nick": "测试",
                                            "status": "online", "terminal": "pc"}
    await client.close()
    # an update keeps what it does not mention; numbers are accepted as ids
    await register(node, "42", 1, nick="Agent 42", sign="at your service", extras={"level": 3})
    status, answer = await post(node, "initUser", {"senderId": 42, "avatar": "new.png", "token": "t42"})
    assert status == 200
    status, answer = await post(node, "getReceiver", {"senderId": "v1", "type": 0, "token": "tv1"})
    assert answer["data"] == {"id": "42", "nick": "Agent 42", "avatar": "new.png", "status": "offline",
                              "sign": "at your service", "terminal": "pc", "friends": None, "groups": None,
                              "extras": {"level": 3}}
    # getReceiver without a token generates one and returns it beside data
    status, answer = await post(node, "getReceiver", {"senderId": "v2", "type": 0})
    assert re.match("^[0-9a-f]{32}$", answer["token"]) and answer["data"]["id"] == "42"


@pytest_twisted.ensureDeferred
async def test_assignment_is_sticky_while_the_agent_exists(nodes):
    node = await nodes.start("a", extra())
    await register(node, "a1", 1)
    await register(node, "a2", 1)
    first = (await post(node, "getReceiver", {"senderId": "v1", "type": 0}))[1]["data"]["id"]
    assert first == "a1"  # nobody online, nobody busy: smallest id
    # v2 goes to the less loaded agent
    assert (await post(node, "getReceiver", {"senderId": "v2", "type": 0}))[1]["data"]["id"] == "a2"
    # an online agent wins over an idle offline one
    a1 = await login(node, "tok-a1")
    assert (await post(node, "getReceiver", {"senderId": "v3", "type": 0}))[1]["data"]["id"] == "a1"
    assert (await post(node, "getReceiver", {"senderId": "v2", "type": 0}))[1]["data"]["id"] == "a2"  # sticky
    # a2 stops being an agent: v2 moves on
    await register(node, "a2", 0)
    assert (await post(node, "getReceiver", {"senderId": "v2", "type": 0}))[1]["data"]["id"] == "a1"
    await a1.close()
