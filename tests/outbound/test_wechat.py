"""The WeChat client: both operations against the live realm's fake WeChat, its two errors,
and one deadline for the whole code exchange (both calls) on the injected clock."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from heihei.outbound.wechat import NoWeChat, WeChatClient, WeChatRejected, WeChatUnavailable, WeChatUser
from tests.live.conftest import APPID, SECRET, FakeWeChat
from tests.outbound.conftest import real_wait


@pytest_twisted.async_yield_fixture
async def wechat():
    fake = FakeWeChat()
    site = Site(fake)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    fake.url = f"http://127.0.0.1:{port.getHost().port}"
    yield fake
    for request in fake.hanging:
        if getattr(request, "channel", None) is not None:
            request.channel.transport.abortConnection()
    await port.stopListening()


def client(http, wechat, **kw) -> WeChatClient:
    return WeChatClient(http, wechat.url, **{"appid": APPID, "secret": SECRET, "timeout_s": 5, **kw})


@pytest_twisted.ensureDeferred
async def test_both_operations(http, wechat):
    c = client(http, wechat)
    assert c.configured
    alice = WeChatUser(openid="o-alice", nickname="Alice", headimgurl="https://img.example/alice.png")
    assert await c.exchange_code("code-alice") == alice
    assert [path for path, _ in wechat.requests] == ["/sns/oauth2/access_token", "/sns/userinfo"]
    # the heihei app's use: no appid or secret needed, the client holds a token already
    app = WeChatClient(http, wechat.url, timeout_s=5)
    assert not app.configured
    assert await app.userinfo("AT-code-alice", "o-alice") == alice
    assert wechat.requests[-1] == ("/sns/userinfo", {"access_token": "AT-code-alice", "openid": "o-alice",
                                                     "lang": "zh_CN"})


@pytest_twisted.ensureDeferred
async def test_rejections_and_unavailability_are_told_apart(http, wechat):
    c = client(http, wechat)
    with pytest.raises(WeChatRejected) as info:
        await c.userinfo("AT-code-alice", "o-bob")
    assert info.value.errmsg == "invalid openid" and "errcode 40003" in info.value.reason
    with pytest.raises(WeChatRejected, match="errcode 40029"):
        await c.exchange_code("bogus")
    for code, reason in (("badjson", "not valid JSON"), ("http500", "HTTP 500"), ("huge", "larger than")):
        with pytest.raises(WeChatUnavailable) as info:
            await c.exchange_code(code)
        assert reason in info.value.reason and SECRET not in info.value.reason
    with pytest.raises(WeChatRejected, match="errcode 40125"):
        await client(http, wechat, secret="wrong").exchange_code("code-alice")


@pytest_twisted.ensureDeferred
async def test_without_credentials_nothing_is_sent(http, wechat):
    with pytest.raises(WeChatUnavailable):
        await client(http, wechat, secret="").exchange_code("code-alice")
    with pytest.raises(WeChatUnavailable):
        await NoWeChat().exchange_code("code-alice")
    with pytest.raises(WeChatUnavailable):
        await NoWeChat().userinfo("t", "o")
    assert wechat.requests == []


class SlowWeChat(Resource):
    """Holds the access_token answer until released; never answers userinfo."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: list = []

    def render_GET(self, request):
        self.held.append(request)
        return NOT_DONE_YET

    def release_token(self) -> None:
        request = self.held[0]
        request.write(json.dumps({"access_token": "AT", "openid": "o-x"}).encode())
        request.finish()


@pytest_twisted.ensureDeferred
async def test_one_deadline_covers_the_whole_exchange(http, clock):
    fake = SlowWeChat()
    site = Site(fake)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    try:
        c = WeChatClient(http, f"http://127.0.0.1:{port.getHost().port}", appid=APPID, secret=SECRET, timeout_s=5)
        d = defer.ensureDeferred(c.exchange_code("code"))
        await real_wait()
        clock.advance(3)  # the token comes after 3 of the 5 s
        fake.release_token()
        await real_wait()
        assert len(fake.held) == 2  # userinfo asked, and silent
        clock.advance(1.9)
        assert not d.called
        clock.advance(0.1)
        with pytest.raises(WeChatUnavailable, match="WeChat did not answer within 5 s"):
            await d
    finally:
        for request in fake.held:
            if getattr(request, "channel", None) is not None:
                request.channel.transport.abortConnection()
        await port.stopListening()
