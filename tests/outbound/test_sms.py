"""SMS providers: the log provider, and the HTTP one whose answers are bounded in size and time."""

import json

import pytest
import pytest_twisted
from twisted.internet import defer

from heihei.config import ConfigError, SmsSettings
from heihei.outbound.sms import HttpSms, HttpSmsError, LogSms, make_sms_provider
from tests.outbound.conftest import real_wait


@pytest_twisted.ensureDeferred
async def test_the_http_provider_posts_json_and_wants_2xx(sink, http):
    sms = HttpSms(http, sink.url, timeout_s=5)
    await sms.send("13800000001", "123456", "code 123456")
    body, headers = sink.received[-1]
    assert json.loads(body) == {"phoneNo": "13800000001", "code": "123456", "text": "code 123456"}
    assert headers["content-type"] == "application/json; charset=utf-8"
    sink.mode = "error"
    with pytest.raises(HttpSmsError, match="HTTP 500"):
        await sms.send("13800000001", "123456", "code 123456")


@pytest_twisted.ensureDeferred
async def test_the_gateways_answer_is_bounded(sink, http):
    sms = HttpSms(http, sink.url, timeout_s=5)
    sink.mode = "endless"
    with pytest.raises(HttpSmsError, match="larger than"):
        await sms.send("13800000001", "123456", "text")
    assert await sink.outcome() == "lost"


@pytest_twisted.ensureDeferred
async def test_a_silent_gateway_times_out_on_the_clock(sink, http, clock):
    sms = HttpSms(http, sink.url, timeout_s=10)
    sink.mode = "stall"
    sending = defer.ensureDeferred(sms.send("13800000001", "123456", "text"))
    await real_wait()
    assert not sending.called
    clock.advance(10)
    with pytest.raises(HttpSmsError, match="no answer within 10 s"):
        await sending
    assert await sink.outcome() == "lost"


def test_the_provider_the_settings_ask_for(http):
    assert isinstance(make_sms_provider(SmsSettings(), http), LogSms)
    assert isinstance(make_sms_provider(SmsSettings(provider="http", url="http://x/sms"), http), HttpSms)
    with pytest.raises(ConfigError, match="needs \\[sms\\] url"):
        make_sms_provider(SmsSettings(provider="http"), http)
    with pytest.raises(ConfigError, match="must be"):
        make_sms_provider(SmsSettings(provider="carrier-pigeon"), http)
