"""Push providers: the log provider, and the webhook whose answers are bounded in size and time."""

import hashlib
import hmac
import json

import pytest
import pytest_twisted
from twisted.internet import defer

from heihei.config import ConfigError, PushSettings
from heihei.outbound.push import LogPush, WebhookError, WebhookPush, make_push_provider
from tests.outbound.conftest import real_wait

PUSH = {"title": "t", "text": "hello", "clientid": "cid", "deviceType": "android"}


@pytest_twisted.ensureDeferred
async def test_the_webhook_posts_the_push_signed(sink, http):
    await WebhookPush(http, sink.url, secret="s3", timeout_s=5).send(PUSH)
    body, headers = sink.received[-1]
    assert json.loads(body) == PUSH
    assert headers["x-heihei-signature"] == hmac.new(b"s3", body, hashlib.sha256).hexdigest()
    await WebhookPush(http, sink.url, timeout_s=5).send(PUSH)
    assert "x-heihei-signature" not in sink.received[-1][1]
    sink.mode = "error"
    with pytest.raises(WebhookError, match="HTTP 500"):
        await WebhookPush(http, sink.url, timeout_s=5).send(PUSH)


@pytest_twisted.ensureDeferred
async def test_the_webhooks_answer_is_bounded(sink, http):
    sink.mode = "endless"
    with pytest.raises(WebhookError, match="larger than"):
        await WebhookPush(http, sink.url, timeout_s=5).send(PUSH)
    assert await sink.outcome() == "lost"


@pytest_twisted.ensureDeferred
async def test_a_silent_webhook_times_out_on_the_clock(sink, http, clock):
    sink.mode = "stall"
    sending = defer.ensureDeferred(WebhookPush(http, sink.url, timeout_s=10).send(PUSH))
    await real_wait()
    assert not sending.called
    clock.advance(10)
    with pytest.raises(WebhookError, match="no answer within 10 s"):
        await sending
    assert await sink.outcome() == "lost"


@pytest_twisted.ensureDeferred
async def test_the_log_provider_sends_nothing():
    await LogPush().send(PUSH)


def test_the_provider_the_settings_ask_for(http):
    assert isinstance(make_push_provider(PushSettings(), http), LogPush)
    assert isinstance(make_push_provider(PushSettings(provider="webhook", webhook_url="http://x/p"), http), WebhookPush)
    with pytest.raises(ConfigError, match="needs \\[push\\] webhook_url"):
        make_push_provider(PushSettings(provider="webhook"), http)
    with pytest.raises(ConfigError, match="must be"):
        make_push_provider(PushSettings(provider="getui"), http)
