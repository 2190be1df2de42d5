"""WeChat login failure modes: each one is -1009 on the wire and leaves nothing behind."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from heihei.live.wechat import LoginFailed, WeChatLogin
from heihei.outbound.http import HttpClient
from heihei.outbound.wechat import WeChatClient
from heihei.store.embedded import free_loopback_port
from tests.helpers import wait_until
from tests.live.conftest import APPID, SECRET, Viewer, start_live

FAILED = {"code": -1009, "msg": "登录失败", "cmd": "Login", "data": {}}


@pytest.mark.parametrize("code", ["bogus", "badjson", "http500", "huge", "userinfo-error"])
@pytest_twisted.ensureDeferred
async def test_wechat_errors_are_1009(nodes, wechat, clock, code):
    node = await start_live(nodes, wechat, clock)
    viewer = await Viewer.connect(node)
    try:
        assert await viewer.call("Login", activityId="1001", code=code, type="wechat") == FAILED
        # nothing was bound to the connection
        assert (await viewer.call("Message", activityId="1001", msg="hi"))["code"] == -1001
        # a good code still works afterwards
        assert (await viewer.call("Login", activityId="1001", code="code-carol", type="wechat"))["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_wechat_timeout_is_1009_and_the_call_is_abandoned(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock, wechat_timeout_s=3.0)
    viewer = await Viewer.connect(node)
    try:
        viewer.send("Login", activityId="1001", code="hang", type="wechat")
        await wait_until(lambda: wechat.hanging, what="the login call to reach WeChat")
        clock.advance(2.9)
        await viewer.no_message(0.1)
        clock.advance(0.1)
        assert await viewer.next() == FAILED
        await wait_until(lambda: wechat.aborted, what="the HTTP connection to WeChat to be aborted")
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_wechat_unreachable_is_1009(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock, wechat_api=f"http://127.0.0.1:{free_loopback_port()}")
    viewer = await Viewer.connect(node)
    try:
        assert await viewer.call("Login", activityId="1001", code="code-alice", type="wechat") == FAILED
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_without_wechat_settings_login_is_1009_and_nothing_is_called(nodes, wechat, clock):
    node = await nodes.start("a", {"live": {"wechat_api": wechat.url}}, clock=clock)
    viewer = await Viewer.connect(node)
    try:
        assert await viewer.call("Login", activityId="1001", code="code-alice", type="wechat") == FAILED
        assert (await viewer.call("CheckLogin", token="x"))["data"] == {"appId": ""}
        assert wechat.requests == []
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_wrong_secret_is_1009(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock, wechat_secret="wrong")
    viewer = await Viewer.connect(node)
    try:
        assert await viewer.call("Login", activityId="1001", code="code-alice", type="wechat") == FAILED
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_login_attempts_per_connection_are_limited(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    viewer = await Viewer.connect(node)
    try:
        for _ in range(3):
            assert (await viewer.call("Login", activityId="1001", code="bogus", type="wechat"))["code"] == -1009
        assert (await viewer.call("Login", activityId="1001", code="code-alice", type="wechat"))["code"] == -1002
        assert len(wechat.requests) == 3  # the refused attempt did not reach WeChat
        clock.advance(5)
        assert (await viewer.call("Login", activityId="1001", code="code-alice", type="wechat"))["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_provider_reasons(wechat):
    """The provider on its own: success, and a reason for each failure (for the logs)."""
    from twisted.internet import task

    clock = task.Clock()
    http = HttpClient(reactor, clock=clock)
    provider = WeChatLogin(WeChatClient(http, wechat.url + "/", appid=APPID, secret=SECRET, timeout_s=5))
    try:
        user = await provider.exchange("code-bob")
        assert (user.openid, user.nickname) == ("o-bob", "鲍勃")
        expectations = {"bogus": "errcode 40029", "badjson": "not valid JSON", "http500": "HTTP 500",
                        "huge": "larger than", "userinfo-error": "/sns/userinfo: errcode 40003"}
        for code, reason in expectations.items():
            with pytest.raises(LoginFailed) as info:
                await provider.exchange(code)
            assert reason in info.value.reason, (code, info.value.reason)
            assert SECRET not in info.value.reason
    finally:
        await http.close()
