"""GetuiPush against FakeGetui (REST API v2 on 127.0.0.1, checking the auth sign and the token header)."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from heihei.outbound.push_errors import (
    CredentialsRejected, DeviceGone, PayloadTooLarge, PermanentPushError, RetryablePushError)
from heihei.outbound.push_getui import TOKEN_REFRESH_MARGIN_S, GetuiPush, intent_uri
from heihei.heihei.push import link_for
from tests.outbound.push.fakes import FakeGetui, serve
from tests.outbound.push.test_apns import Silent

APP_ID, APP_KEY, SECRET = "heiheiAppId0001", "heiheiAppKey0001", "heiheiMasterSecret0001"
CID = "3c34858b82918f7e38b0f3f1f71677dd"


def a_push(**over):
    return {"title": "嘿嘿", "text": "队长想邀请你加入队伍", "action": "live",
            "link": link_for("live", id="1464245661396343070"), "msgId": 1305830658323863951,
            "fromUserName": "陌生人", "fromUserId": 10001, "gender": "Male", "data": {},
            "deviceType": "android", "clientid": CID, "pushType": "getui", **over}


class World:
    def __init__(self, fake, listening, now):
        self.fake, self.listening, self.now = fake, listening, now
        self.adapters: list[GetuiPush] = []

    def adapter(self, *, app_key=APP_KEY, secret=SECRET, now_s=None, **kw) -> GetuiPush:
        adapter = GetuiPush(app_id=APP_ID, app_key=app_key, master_secret=secret, base_url=self.listening.url,
                            reactor=reactor, now_s=now_s or self.now, **kw)
        self.adapters.append(adapter)
        return adapter


@pytest_twisted.async_yield_fixture
async def world(now):
    fake = FakeGetui(app_id=APP_ID, app_key=APP_KEY, master_secret=SECRET, now_s=now)
    listening = await serve(fake)
    w = World(fake, listening, now)
    yield w
    for adapter in w.adapters:
        await adapter.close()
    listening.site.drop_all()
    await listening.stop()


@pytest_twisted.ensureDeferred
async def test_a_push_reaches_getui_with_a_signed_token(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    [got] = world.fake.pushes
    assert world.fake.auth_calls == 1
    assert got["audience"] == {"cid": [CID]}
    assert len(got["request_id"]) == 32
    assert got["settings"] == {"ttl": 2 * 3600 * 1000}
    notification = got["push_message"]["notification"]
    assert notification["title"] == "嘿嘿" and notification["body"] == "队长想邀请你加入队伍"
    assert notification["click_type"] == "payload"
    payload = json.loads(notification["payload"])
    assert payload["link"] == "wmlives_heihei://live?id=1464245661396343070"
    assert payload["action"] == "live" and payload["msgId"] == 1305830658323863951
    assert "clientid" not in payload and "pushType" not in payload
    assert "push_channel" not in got


@pytest_twisted.ensureDeferred
async def test_the_token_is_fetched_once_for_many_pushes_at_once(world):
    adapter = world.adapter()
    await defer.gatherResults([defer.Deferred.fromCoroutine(adapter.send(a_push())) for _ in range(20)])
    await adapter.send(a_push())
    assert len(world.fake.pushes) == 21
    assert world.fake.auth_calls == 1


@pytest_twisted.ensureDeferred
async def test_the_token_is_renewed_an_hour_before_it_expires(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    world.now.advance(world.fake.token_lifetime_s - TOKEN_REFRESH_MARGIN_S - 1)
    await adapter.send(a_push())
    assert world.fake.auth_calls == 1
    world.now.advance(1)
    await adapter.send(a_push())
    assert world.fake.auth_calls == 2
    assert len(world.fake.pushes) == 3


@pytest_twisted.ensureDeferred
async def test_a_token_getui_no_longer_accepts_is_replaced_and_the_push_sent_again(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    world.fake.revoke_tokens()  # 10001 on the next push
    await adapter.send(a_push())
    assert world.fake.auth_calls == 2
    assert len(world.fake.pushes) == 2


@pytest_twisted.ensureDeferred
async def test_a_token_refused_twice_is_a_credentials_error(world):
    adapter = world.adapter()
    world.fake.fail_next += [(401, {"code": 10001, "msg": "token expired"})] * 2
    with pytest.raises(CredentialsRejected):
        await adapter.send(a_push())
    assert world.fake.auth_calls == 2
    assert world.fake.pushes == []


@pytest_twisted.ensureDeferred
async def test_an_invalid_cid_is_gone(world):
    world.fake.dead_cids.add(CID)
    adapter = world.adapter()
    with pytest.raises(DeviceGone) as caught:
        await adapter.send(a_push())
    assert caught.value.clientid == CID
    assert "target user is invalid" in caught.value.reason
    with pytest.raises(DeviceGone):
        await adapter.send(a_push(clientid=""))


@pytest.mark.parametrize("app_key, secret, why", [(APP_KEY, "wrong-secret", "sign is invalid"),
                                                   ("wrong-key", SECRET, "appkey is invalid")])
@pytest_twisted.ensureDeferred
async def test_wrong_app_credentials_are_a_clear_error(world, app_key, secret, why):
    adapter = world.adapter(app_key=app_key, secret=secret)
    with pytest.raises(CredentialsRejected, match=why) as caught:
        await adapter.send(a_push())
    assert "wrong-secret" not in str(caught.value)
    assert world.fake.push_calls == 0


@pytest_twisted.ensureDeferred
async def test_a_clock_far_off_is_refused_by_getui(world):
    world.now.advance(3600)
    adapter = world.adapter(now_s=lambda: world.now() - 3600)
    with pytest.raises(CredentialsRejected, match="timestamp"):
        await adapter.send(a_push())


@pytest_twisted.ensureDeferred
async def test_click_type_intent_opens_the_app_on_the_link(world):
    adapter = world.adapter(click_type="intent", intent_component="cn.wmlive.heihei/.OutLinkActivity")
    await adapter.send(a_push())
    notification = world.fake.pushes[0]["push_message"]["notification"]
    assert notification["intent"] == ("intent://live?id=1464245661396343070#Intent;scheme=wmlives_heihei;"
                                      "launchFlags=0x14000000;component=cn.wmlive.heihei/.OutLinkActivity;end")
    assert "payload" not in notification


@pytest_twisted.ensureDeferred
async def test_click_type_url_and_the_vendor_channel(world):
    adapter = world.adapter(click_type="url", vendor_channel=True)
    await adapter.send(a_push(link="https://heihei.example/event"))
    [got] = world.fake.pushes
    assert got["push_message"]["notification"]["url"] == "https://heihei.example/event"
    assert got["push_channel"]["android"]["ups"]["notification"] == got["push_message"]["notification"]


@pytest_twisted.ensureDeferred
async def test_long_title_and_text_are_shortened_to_getuis_limits(world):
    adapter = world.adapter()
    await adapter.send(a_push(title="标" * 80, text="字" * 1000))
    notification = world.fake.pushes[0]["push_message"]["notification"]
    assert len(notification["title"]) == 50 and notification["title"].endswith("…")
    assert len(notification["body"]) == 256 and notification["body"].endswith("…")


@pytest_twisted.ensureDeferred
async def test_a_payload_over_the_limit_is_refused_before_sending(world):
    adapter = world.adapter()
    with pytest.raises(PayloadTooLarge, match="payload"):
        await adapter.send(a_push(link="wmlives_heihei://webview?url=" + "x" * 3100))
    adapter = world.adapter(click_type="url")
    with pytest.raises(PayloadTooLarge, match="url"):
        await adapter.send(a_push(link="https://heihei.example/" + "x" * 1100))
    assert world.fake.auth_calls == 0 and world.fake.push_calls == 0


@pytest_twisted.ensureDeferred
async def test_getui_busy_is_retryable_and_other_refusals_permanent(world):
    adapter = world.adapter()
    world.fake.fail_next += [(200, {"code": 10005, "msg": "too frequent"}),
                             (503, {"code": 500, "msg": "busy"}),
                             (400, {"code": 20001, "msg": "title contains sensitive word"})]
    with pytest.raises(RetryablePushError, match="10005"):
        await adapter.send(a_push())
    with pytest.raises(RetryablePushError, match="503"):
        await adapter.send(a_push())
    with pytest.raises(PermanentPushError, match="sensitive") as caught:
        await adapter.send(a_push())
    assert not isinstance(caught.value, DeviceGone)


@pytest_twisted.ensureDeferred
async def test_getui_unreachable_or_silent_is_retryable(now):
    listening = await serve(Silent())
    silent = GetuiPush(app_id=APP_ID, app_key=APP_KEY, master_secret=SECRET, base_url=listening.url,
                       reactor=reactor, now_s=now, timeout_s=0.3)
    closed = GetuiPush(app_id=APP_ID, app_key=APP_KEY, master_secret=SECRET, base_url="http://127.0.0.1:9",
                       reactor=reactor, now_s=now, timeout_s=2)
    try:
        with pytest.raises(RetryablePushError, match="no answer within"):
            await silent.send(a_push())
        with pytest.raises(RetryablePushError):
            await closed.send(a_push())
    finally:
        await silent.close()
        await closed.close()
        listening.site.drop_all()
        await listening.stop()


def test_settings_are_checked_at_start():
    with pytest.raises(ValueError, match="master secret"):
        GetuiPush(app_id=APP_ID, app_key=APP_KEY, master_secret="", reactor=reactor)
    with pytest.raises(ValueError, match="intent_component"):
        GetuiPush(app_id=APP_ID, app_key=APP_KEY, master_secret=SECRET, reactor=reactor, click_type="intent")
    with pytest.raises(ValueError, match="click_type"):
        GetuiPush(app_id=APP_ID, app_key=APP_KEY, master_secret=SECRET, reactor=reactor, click_type="popup")


def test_intent_uri_needs_a_link_with_a_scheme():
    assert intent_uri("wmlives_heihei://homepage", "a.b/.C") == \
        "intent://homepage#Intent;scheme=wmlives_heihei;launchFlags=0x14000000;component=a.b/.C;end"
    with pytest.raises(PermanentPushError):
        intent_uri("homepage", "a.b/.C")
