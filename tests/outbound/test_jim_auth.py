"""The J-IM authentication hook on its own: what it sends, what it accepts, and that it never raises."""

import hashlib
import hmac
import json

import pytest_twisted
from twisted.internet import defer

from heihei.outbound.jim_auth import HttpAuthHook, Identity
from tests.outbound.conftest import real_wait


@pytest_twisted.ensureDeferred
async def test_a_2xx_answer_with_a_user_id_accepts_and_the_call_is_signed(sink, http, clock):
    sink.mode = "json"
    sink.answer = json.dumps({"userId": 42, "nick": "Alice", "avatar": 7}).encode()
    hook = HttpAuthHook(http, sink.url, secret="hook-secret", timeout_s=5)
    assert await hook.check("alice", "right") == Identity("42", nick="Alice", avatar=None)
    body, headers = sink.received[-1]
    assert json.loads(body) == {"username": "alice", "password": "right"}
    assert headers["content-type"] == "application/json"
    assert headers["x-heihei-timestamp"] == str(int(clock.seconds()))
    assert headers["x-heihei-signature"] == hmac.new(b"hook-secret", headers["x-heihei-timestamp"].encode() + b"."
                                                     + body, hashlib.sha256).hexdigest()


@pytest_twisted.ensureDeferred
async def test_everything_else_refuses(sink, http):
    hook = HttpAuthHook(http, sink.url, timeout_s=5)
    for mode, answer in (("json", b'{"userId": ""}'), ("json", b'{"userId": true}'), ("json", b"[1]"),
                         ("json", json.dumps({"userId": "u" * 129}).encode()), ("garbage", b""), ("error", b""),
                         ("endless", b"")):
        sink.mode, sink.answer = mode, answer
        assert await hook.check("alice", "right") is None, (mode, answer)
    assert await sink.outcome() == "lost"  # the endless answer's connection was closed
    assert "x-heihei-signature" not in sink.received[-1][1]


@pytest_twisted.ensureDeferred
async def test_a_silent_hook_refuses_at_its_deadline(sink, http, clock):
    sink.mode = "stall"
    checking = defer.ensureDeferred(HttpAuthHook(http, sink.url, timeout_s=5).check("alice", "right"))
    await real_wait()
    assert not checking.called
    clock.advance(5)
    assert await checking is None
    assert await sink.outcome() == "lost"
