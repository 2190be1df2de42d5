"""The demo profile on a real node: every protocol lets two people talk with no configuration."""

import json
import time

import pytest
import pytest_twisted
import treq
from twisted.logger import formatEvent, globalLogPublisher

from heihei.config import ConfigError, build_settings
from heihei.demo.profile import DEMO_ACTIVITY_ID, demo_settings
from heihei.outbound.demo import DemoSms, DemoWeChat, demo_openid
from heihei.outbound.wechat import NoWeChat, WeChatRejected
from tests.conftest import http_url, ws_url
from tests.heihei.helpers import channel_url, item, ok
from tests.helpers import sleep
from tests.live.conftest import Viewer
from tests.wsclient import WSError, connect

DEMO = {"server": {"demo": True}}


async def answer(viewer, cmd: str) -> dict:
    """The viewer's next `cmd` frame (Total pushes come in between)."""
    for _ in range(10):
        frame = await viewer.next()
        if frame.get("cmd") == cmd:
            return frame
    raise AssertionError(f"no {cmd} answer")


async def demo_node(nodes):
    node = await nodes.start("a", DEMO)
    await node.demo.seeded
    return node


@pytest_twisted.ensureDeferred
async def test_live_the_example_activity_is_open_and_any_code_logs_in(nodes):
    node = await demo_node(nodes)
    alice, bob = await Viewer.connect(node), await Viewer.connect(node)
    opened = await alice.call("Open", activityId=DEMO_ACTIVITY_ID)
    assert opened["code"] == 1 and opened["data"]["title"] == "heihei demo"
    assert int(opened["data"]["startTime"]) <= time.time() < int(opened["data"]["endTime"])
    await bob.open(DEMO_ACTIVITY_ID)
    alice.send("Login", activityId=DEMO_ACTIVITY_ID, code="alice", type="wechat")
    login = await answer(alice, "Login")
    assert login["code"] == 1, login
    alice.send("Message", activityId=DEMO_ACTIVITY_ID, msg="大家好", token=login["data"]["token"])
    said = await answer(bob, "Message")
    assert said["data"]["msg"] == "大家好" and said["data"]["userName"] == "alice", said
    for viewer in (alice, bob):
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_boss_plain_login_and_the_keyless_group_api(nodes):
    node = await demo_node(nodes)
    one = await connect(ws_url(node, "boss", "/entry"))
    two = await connect(ws_url(node, "boss", "/entry"))
    for client, user in ((one, "1"), (two, "2")):
        client.send(f"login_{user}")
        assert await client.next() == "ok"
    response = await treq.get(http_url(node, "/creategrp", listener="boss"),
                              params={"creator": "1", "members": "2", "name": "demo"})
    group = json.loads(await response.content())
    assert group["code"] == 1, group
    one.send(f"text_{group['data']['groupid']}_hello_group_x")
    frame = await two.next()
    assert frame.startswith(f"text_1_hello_group_{group['data']['groupid']}_"), frame
    await one.close()
    await two.close()


@pytest_twisted.ensureDeferred
async def test_jim_username_login_and_the_keyless_api(nodes):
    node = await demo_node(nodes)
    alice = await connect(ws_url(node, "jim", "/?username=alice&password=x"))
    agent = await connect(ws_url(node, "jim", "/?username=agent&password=x"))
    assert json.loads(await alice.next())["command"] == 6 and json.loads(await agent.next())["command"] == 6
    alice.send(json.dumps({"cmd": 11, "from": "alice", "to": "agent", "chatType": 2, "msgType": 0,
                           "content": "你好"}))
    assert json.loads(await alice.next())["code"] == 10000
    got = json.loads(await agent.next())
    assert got["command"] == 11 and got["data"]["content"] == "你好"
    response = await treq.post(http_url(node, "/im/vanke/initUser"), json={"senderId": "carol", "token": "t-carol"})
    assert json.loads(await response.content())["code"] == 200
    await alice.close()
    await agent.close()


@pytest_twisted.ensureDeferred
async def test_heihei_sign_in_with_the_demo_sms_code_and_the_push_channel(nodes):
    node = await demo_node(nodes)
    assert node.outbound.wechat_for_heihei is node.outbound.wechat_for_live
    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13800000001"})
    code = node.outbound.sms.latest("13800000001")
    assert code and len(code) == 6
    body = await ok(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13800000001", "verifyCode": code})
    wechat = await ok(node, "/api/user/sign-in", {"accountSource": "Wechat", "accountToken": "dora", "openId": "o-dora"})
    assert wechat["token"] and wechat["userInfo"]["id"] != body["userInfo"]["id"]
    channel = await connect(channel_url(node, body["token"]))
    unread = await item(channel)
    assert unread["msg"]["action"] == "message-unread-count"
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_without_the_demo_profile_nothing_is_open(nodes):
    node = await nodes.start("a")
    assert node.demo is None and isinstance(node.outbound.wechat_for_live, NoWeChat)
    assert not isinstance(node.outbound.sms, DemoSms)
    client = await connect(ws_url(node, "boss", "/entry"))
    client.send("login_1")
    assert (await client.next()).startswith("error_401")
    await client.close()
    with pytest.raises(WSError) as refused:
        await connect(ws_url(node, "jim", "/?username=alice&password=x"))
    assert refused.value.status == 401
    await sleep(0)


def test_demo_settings_bind_to_loopback_and_refuse_anything_else():
    settings = demo_settings(build_settings([{"server": {"http": "tcp:8082", "live": "tcp:9502:interface=127.0.0.1",
                                                         "manhole": "tcp:2222"}}]))
    s = settings.server
    assert (s.demo, s.http, s.live, s.boss, s.manhole) == (
        True, "tcp:8082:interface=127.0.0.1", "tcp:9502:interface=127.0.0.1", "tcp:6060:interface=127.0.0.1",
        "tcp:2222:interface=127.0.0.1")
    assert settings.boss.insecure_login and settings.boss.insecure_http
    assert settings.jim.insecure_login and settings.jim.insecure_api
    for option in ("http", "live", "boss", "jim", "manhole"):
        with pytest.raises(ConfigError, match=f"--{option} tcp:1:interface=0.0.0.0 listens on 0.0.0.0"):
            demo_settings(build_settings([{"server": {option: "tcp:1:interface=0.0.0.0"}}]))


@pytest_twisted.ensureDeferred
async def test_the_demo_wechat_makes_up_a_stable_user_per_code():
    wechat = DemoWeChat()
    alice = await wechat.exchange_code("alice")
    assert alice.openid == demo_openid("alice") == (await wechat.exchange_code("alice")).openid
    assert alice.nickname == "alice" and alice.openid != (await wechat.exchange_code("bob")).openid
    with pytest.raises(WeChatRejected):
        await wechat.exchange_code("  ")
    # the heihei app's sign-in names the openid itself
    assert (await wechat.userinfo("dora", "o-123")).openid == "o-123"
    assert (await wechat.userinfo("dora", "o-123")).nickname == "dora"
    sms = DemoSms(kept=2)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        for phone in ("1", "2", "3"):
            await sms.send(phone, phone * 6, "")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert (sms.latest("1"), sms.latest("3")) == (None, "333333")
    # a verification code is a secret: the log says a code went out, never which
    lines = [formatEvent(e) for e in events]
    assert len(lines) == 3 and not any(phone * 6 in line for line in lines for phone in "123"), lines


@pytest_twisted.ensureDeferred
async def test_the_demo_pages_endpoints_and_the_sms_codes_are_served_on_a_demo_node_only(nodes):
    node = await demo_node(nodes)
    response = await treq.get(http_url(node, "/demo/endpoints.json"))
    where = json.loads(await response.content())
    assert where["boss"] == f"ws://127.0.0.1:{node.listeners['boss'].address()[1]}/entry"
    assert where["activityId"] == DEMO_ACTIVITY_ID
    for path, status in (("/demo/sms-code", 400), ("/demo/sms-code?phoneNo=13800000009", 404)):
        response = await treq.get(http_url(node, path))
        assert response.code == status and "error" in json.loads(await response.content())
    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13800000009"})
    response = await treq.get(http_url(node, "/demo/sms-code?phoneNo=13800000009"))
    assert json.loads(await response.content()) == {"phoneNo": "13800000009",
                                                    "code": node.outbound.sms.latest("13800000009")}
    for listener in ("http", "boss"):
        page = await treq.get(http_url(node, "/demo/", listener=listener))
        assert page.code == 200 and b"heihei demo" in await page.content()
        assert b"script-src 'self'" in page.headers.getRawHeaders("content-security-policy")[0].encode()

    plain = await nodes.start("b")
    assert (await treq.get(http_url(plain, "/demo/"))).code == 404
    assert (await treq.get(http_url(plain, "/demo/sms-code?phoneNo=1"))).code == 404
    console = await treq.get(http_url(plain, "/console/"))
    assert console.code == 200 and b"heihei console" in await console.content()
    assert "frame-ancestors 'none'" in console.headers.getRawHeaders("content-security-policy")[0]
