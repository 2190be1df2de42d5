"""`Outbound`: what the settings make of it, and the node closing it at stop."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from heihei.config import ConfigError, build_settings
from heihei.outbound import Outbound
from heihei.outbound.http import Unreachable
from heihei.outbound.jim_auth import HttpAuthHook
from heihei.outbound.profiles import HttpProfiles
from heihei.outbound.push import LogPush, WebhookPush
from heihei.outbound.sms import HttpSms, LogSms
from heihei.outbound.wechat import NoWeChat, WeChatClient
from heihei.outbound.weibo import WeiboClient
from tests.outbound.conftest import real_wait


@pytest_twisted.ensureDeferred
async def test_the_defaults_send_nothing_anywhere():
    outbound = Outbound.from_settings(build_settings([]), reactor=reactor)
    try:
        assert isinstance(outbound.wechat_for_live, NoWeChat)
        assert isinstance(outbound.wechat_for_heihei, WeChatClient)
        assert isinstance(outbound.weibo, WeiboClient)
        assert isinstance(outbound.sms, LogSms)
        assert {type(p) for p in outbound.push.routes.values()} == {LogPush}  # every kind of device: the log
        assert isinstance(outbound.profiles, HttpProfiles) and not outbound.profiles.serves("nickname")
        assert outbound.jim_auth is None
    finally:
        await outbound.close()


@pytest_twisted.ensureDeferred
async def test_each_realm_gets_its_own_configuration_over_one_client():
    settings = build_settings([{
        "live": {"wechat_appid": "wx-live", "wechat_secret": "s", "wechat_api": "http://live.example/",
                 "wechat_timeout_s": 3.0},
        "heihei": {"wechat_api_url": "http://app.example", "oauth_timeout_s": 7.0},
        "sms": {"provider": "http", "url": "http://sms.example/send"},
        "push": {"provider": "webhook", "webhook_url": "http://push.example/in"},
        "boss": {"profile_nickname_url": "http://boss.example/nick?ids="},
        "jim": {"auth_url": "http://jim.example/check"},
    }])
    outbound = Outbound.from_settings(settings, reactor=reactor)
    try:
        live, app = outbound.wechat_for_live, outbound.wechat_for_heihei
        assert (live.api_base, live.appid, live.timeout_s, live.configured) == ("http://live.example", "wx-live", 3.0,
                                                                               True)
        assert (app.api_base, app.timeout_s, app.configured) == ("http://app.example", 7.0, False)
        assert isinstance(outbound.sms, HttpSms)
        webhook = outbound.push.routes["getui"]
        assert isinstance(webhook, WebhookPush) and set(outbound.push.routes.values()) == {webhook}
        assert outbound.profiles.serves("nickname") and not outbound.profiles.serves("snap")
        assert isinstance(outbound.jim_auth, HttpAuthHook)
        clients = {id(p.http) for p in (live, app, outbound.weibo, outbound.sms, webhook, outbound.profiles,
                                        outbound.jim_auth)}
        assert clients == {id(outbound.http)}
    finally:
        await outbound.close()


def test_a_provider_that_cannot_work_stops_the_node_from_being_built():
    with pytest.raises(ConfigError, match="needs \\[sms\\] url"):
        Outbound.from_settings(build_settings([{"sms": {"provider": "http"}}]), reactor=reactor)


@pytest_twisted.ensureDeferred
async def test_the_node_closes_its_outbound_client_at_stop(nodes, sink):
    node = await nodes.start("a")
    sink.mode = "stall"
    in_flight = defer.ensureDeferred(node.outbound.http.post(sink.url, b"{}", timeout_s=60, max_bytes=100))
    await real_wait()
    await nodes.stop(node)
    with pytest.raises(Unreachable, match="closed"):
        await in_flight
    assert await sink.outcome() == "lost"
