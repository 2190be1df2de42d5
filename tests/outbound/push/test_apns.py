"""
ApnsPush against FakeApns: a real HTTP/2 server (Twisted's) over TLS with
ALPN h2 on 127.0.0.1, verifying our ES256 provider tokens with PyJWT.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from heihei.outbound.push_apns import (
    MAX_PAYLOAD_BYTES, PROVIDER_TOKEN_RENEW_S, ApnsPush)
from heihei.outbound.push_auth import BadKey
from heihei.outbound.push_errors import (
    CredentialsRejected, DeviceGone, PayloadTooLarge, PermanentPushError, RetryablePushError)
from tests.outbound.push.fakes import FakeApns, FakeTime, serve

TEAM, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "cn.wmlive.heihei"
DEVICE = "a1" * 32
OTHER_DEVICE = "b2" * 32


def a_push(**over):
    return {"title": "嘿嘿", "text": "小明: 你好", "action": "message", "link": "wmlives_heihei://message",
            "msgId": 1234, "deviceType": "ios", "clientid": DEVICE, "pushType": "apns", **over}


class World:
    def __init__(self, fake: FakeApns, listening, tls, apns_key, now: FakeTime) -> None:
        self.fake = fake
        self.listening = listening
        self.tls = tls
        self.apns_key = apns_key
        self.now = now
        self.adapters: list[ApnsPush] = []

    def adapter(self, *, key_pem=None, topic=TOPIC, now_s=None, trust=True, base_url=None, **kw) -> ApnsPush:
        adapter = ApnsPush(team_id=TEAM, key_id=KEY_ID, private_key_pem=key_pem or self.apns_key[0], topic=topic,
                           base_url=base_url or self.listening.url, reactor=reactor, now_s=now_s or self.now,
                           trust_root=self.tls.trust_root() if trust else None, **kw)
        self.adapters.append(adapter)
        return adapter


@pytest_twisted.async_yield_fixture
async def world(tls, apns_key, now):
    fake = FakeApns(team_id=TEAM, key_id=KEY_ID, public_key=apns_key[1], topic=TOPIC, now_s=now)
    listening = await serve(fake, tls)
    w = World(fake, listening, tls, apns_key, now)
    yield w
    for adapter in w.adapters:
        await adapter.close()
    listening.site.drop_all()
    await listening.stop()


@pytest_twisted.ensureDeferred
async def test_a_push_reaches_apns_over_http2_with_a_valid_provider_token(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    [got] = world.fake.delivered
    assert world.fake.protocols == [b"HTTP/2"]
    assert got["device"] == DEVICE
    assert got["payload"] == {"aps": {"alert": {"title": "嘿嘿", "body": "小明: 你好"}, "sound": "default"},
                              "link": "wmlives_heihei://message"}
    headers = got["headers"]
    assert headers[b"apns-topic"] == [TOPIC.encode()]
    assert headers[b"apns-push-type"] == [b"alert"]
    assert headers[b"apns-priority"] == [b"10"]
    assert headers[b"apns-expiration"] == [str(int(world.now()) + 86400).encode()]


@pytest_twisted.ensureDeferred
async def test_pushes_share_one_connection_and_one_provider_token(world):
    adapter = world.adapter()
    await defer.gatherResults([defer.Deferred.fromCoroutine(adapter.send(a_push(text=f"n{i}")))
                               for i in range(40)])
    await adapter.send(a_push())
    assert len(world.fake.delivered) == 41
    assert sorted(d["payload"]["aps"]["alert"]["body"] for d in world.fake.delivered[:40]) == \
        sorted(f"n{i}" for i in range(40))
    assert adapter.client.connections_opened == 1
    assert adapter.tokens_signed == 1
    assert len(world.fake.provider_tokens) == 1


@pytest_twisted.ensureDeferred
async def test_the_provider_token_is_renewed_before_apple_would_refuse_it(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    world.now.advance(PROVIDER_TOKEN_RENEW_S - 1)
    await adapter.send(a_push())
    assert adapter.tokens_signed == 1
    world.now.advance(1)
    await adapter.send(a_push())
    assert adapter.tokens_signed == 2
    assert len(world.fake.provider_tokens) == 2  # and the fake accepted the change (>= 20 min apart)
    assert len(world.fake.delivered) == 3


@pytest_twisted.ensureDeferred
async def test_expired_provider_token_is_replaced_and_the_push_sent_again(world):
    ours = FakeTime(world.now())
    adapter = world.adapter(now_s=ours)
    await adapter.send(a_push())
    # Apple's clock runs ahead of ours: it sees our 30-minute-old token as 61 minutes old
    ours.advance(30 * 60)
    world.now.advance(61 * 60)
    await adapter.send(a_push())
    assert adapter.tokens_signed == 2
    assert len(world.fake.delivered) == 2


@pytest_twisted.ensureDeferred
async def test_expired_young_provider_token_points_at_the_clock_and_is_not_resigned(world):
    ours = FakeTime(world.now() - 2 * 3600)  # our clock is two hours behind
    adapter = world.adapter(now_s=ours)
    with pytest.raises(RetryablePushError, match="clock"):
        await adapter.send(a_push())
    assert adapter.tokens_signed == 1  # not replaced: it is younger than PROVIDER_TOKEN_MIN_AGE_S
    assert world.fake.delivered == []


@pytest_twisted.ensureDeferred
async def test_a_long_text_is_shortened_to_fit_4096_bytes(world):
    adapter = world.adapter()
    await adapter.send(a_push(text="长" * 5000))
    [got] = world.fake.delivered
    assert got["size"] <= MAX_PAYLOAD_BYTES
    body = got["payload"]["aps"]["alert"]["body"]
    assert body.endswith("…") and body.startswith("长长长")
    assert got["size"] > MAX_PAYLOAD_BYTES - 10  # as much of the text as fits


@pytest_twisted.ensureDeferred
async def test_a_push_that_cannot_fit_is_refused_before_sending(world):
    adapter = world.adapter()
    with pytest.raises(PayloadTooLarge) as caught:
        await adapter.send(a_push(link="wmlives_heihei://webview?url=" + "x" * 5000))
    assert caught.value.limit == MAX_PAYLOAD_BYTES
    assert world.fake.requests == 0


@pytest_twisted.ensureDeferred
async def test_unregistered_device_is_gone(world):
    world.fake.unregistered.add(DEVICE)
    adapter = world.adapter()
    with pytest.raises(DeviceGone) as caught:
        await adapter.send(a_push())
    assert caught.value.clientid == DEVICE
    assert "410" in caught.value.reason
    assert DEVICE not in str(caught.value)  # logs get a shortened token


@pytest_twisted.ensureDeferred
async def test_bad_device_token_is_gone_and_other_devices_still_work(world):
    world.fake.bad_tokens.add(DEVICE)
    adapter = world.adapter()
    with pytest.raises(DeviceGone, match="BadDeviceToken"):
        await adapter.send(a_push())
    await adapter.send(a_push(clientid=OTHER_DEVICE))
    assert [d["device"] for d in world.fake.delivered] == [OTHER_DEVICE]


@pytest_twisted.ensureDeferred
async def test_a_token_that_is_not_hex_is_gone_without_asking_apple(world):
    adapter = world.adapter()
    for token in ("", "not-a-token", "../../3/device/" + DEVICE):
        with pytest.raises(DeviceGone):
            await adapter.send(a_push(clientid=token))
    assert world.fake.requests == 0


@pytest_twisted.ensureDeferred
async def test_device_token_not_for_topic_is_permanent_but_not_gone(world):
    world.fake.other_app_tokens.add(DEVICE)
    adapter = world.adapter()
    with pytest.raises(PermanentPushError, match="DeviceTokenNotForTopic") as caught:
        await adapter.send(a_push())
    assert not isinstance(caught.value, DeviceGone)


@pytest_twisted.ensureDeferred
async def test_a_key_apple_does_not_know_is_a_clear_credentials_error(world, other_ec_key):
    adapter = world.adapter(key_pem=other_ec_key[0])
    with pytest.raises(CredentialsRejected, match="InvalidProviderToken"):
        await adapter.send(a_push())
    assert world.fake.delivered == []


@pytest_twisted.ensureDeferred
async def test_a_wrong_topic_is_a_credentials_error(world):
    adapter = world.adapter(topic="com.example.other")
    with pytest.raises(CredentialsRejected, match="TopicDisallowed"):
        await adapter.send(a_push())


def test_a_key_that_is_not_an_ec_p256_key_is_refused_at_start(fcm_key):
    with pytest.raises(BadKey, match="EC P-256"):
        ApnsPush(team_id=TEAM, key_id=KEY_ID, private_key_pem=fcm_key[0], topic=TOPIC, reactor=reactor)
    with pytest.raises(BadKey, match="readable") as caught:
        ApnsPush(team_id=TEAM, key_id=KEY_ID, private_key_pem=b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n",
                 topic=TOPIC, reactor=reactor)
    assert "c2VjcmV0" not in str(caught.value)


@pytest_twisted.ensureDeferred
async def test_apple_overloaded_is_retryable_with_its_delay(world):
    world.fake.fail_next.append((503, "ServiceUnavailable"))
    world.fake.fail_next.append((429, "TooManyRequests"))
    adapter = world.adapter()
    with pytest.raises(RetryablePushError, match="503"):
        await adapter.send(a_push())
    with pytest.raises(RetryablePushError, match="429"):
        await adapter.send(a_push())
    await adapter.send(a_push())
    assert len(world.fake.delivered) == 1


@pytest_twisted.ensureDeferred
async def test_a_dropped_connection_is_replaced_on_the_next_push(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    world.listening.site.drop_all()
    await adapter.send(a_push())
    assert len(world.fake.delivered) == 2
    assert adapter.client.connections_opened == 2


@pytest_twisted.ensureDeferred
async def test_an_untrusted_certificate_is_refused(world):
    adapter = world.adapter(trust=False)
    with pytest.raises(RetryablePushError):
        await adapter.send(a_push())
    assert world.fake.requests == 0


@pytest_twisted.ensureDeferred
async def test_a_server_that_will_not_speak_http2_is_refused(tls, apns_key, now):
    # (a server without ALPN at all is covered in test_h2client: Twisted's TLS always selects by ALPN)
    fake = FakeApns(team_id=TEAM, key_id=KEY_ID, public_key=apns_key[1], topic=TOPIC, now_s=now)
    listening = await serve(fake, tls, protocols=(b"http/1.1",))
    adapter = ApnsPush(team_id=TEAM, key_id=KEY_ID, private_key_pem=apns_key[0], topic=TOPIC,
                       base_url=listening.url, reactor=reactor, now_s=now, trust_root=tls.trust_root())
    try:
        with pytest.raises(RetryablePushError, match="alert"):  # TLS fails: no protocol in common
            await adapter.send(a_push())
        assert fake.requests == 0
    finally:
        await adapter.close()
        listening.site.drop_all()
        await listening.stop()


class Silent(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests = []

    def render(self, request):
        self.requests.append(request)
        return NOT_DONE_YET


@pytest_twisted.ensureDeferred
async def test_no_answer_in_time_is_retryable(tls, apns_key, now):
    silent = Silent()
    listening = await serve(silent, tls)
    adapter = ApnsPush(team_id=TEAM, key_id=KEY_ID, private_key_pem=apns_key[0], topic=TOPIC,
                       base_url=listening.url, reactor=reactor, now_s=now, trust_root=tls.trust_root(),
                       timeout_s=0.3)
    try:
        with pytest.raises(RetryablePushError, match="no answer within"):
            await adapter.send(a_push())
        assert len(silent.requests) == 1
    finally:
        await adapter.close()
        listening.site.drop_all()
        await listening.stop()
