"""JWT signing checked by PyJWT (a second implementation), the token cache and single-flight, on a task.Clock."""

from __future__ import annotations

import jwt
import pytest
from twisted.internet import defer, task

from heihei.outbound.push_auth import Token, TokenCache, load_ec_p256_key, load_rsa_key, sign_es256, sign_rs256
from heihei.outbound.push_errors import PayloadTooLarge, fit_text
from heihei.outbound.singleflight import SingleFlight


def test_es256_tokens_verify_with_pyjwt(apns_key):
    token = sign_es256(load_ec_p256_key(apns_key[0], "k"), {"kid": "KEY1"}, {"iss": "TEAM", "iat": 1700000000})
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "kid": "KEY1", "alg": "ES256"}
    assert jwt.decode(token, apns_key[1], algorithms=["ES256"], options={"verify_iat": False}) == \
        {"iss": "TEAM", "iat": 1700000000}
    # r || s, 64 bytes: not DER
    assert len(jwt.utils.base64url_decode(token.rsplit(".", 1)[1])) == 64


def test_rs256_tokens_verify_with_pyjwt(fcm_key, other_rsa_key):
    token = sign_rs256(load_rsa_key(fcm_key[0], "k"), {"kid": "K"}, {"iss": "a@b", "aud": "u", "exp": 2**40})
    assert jwt.decode(token, fcm_key[1], algorithms=["RS256"], audience="u")["iss"] == "a@b"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other_rsa_key[1], algorithms=["RS256"], audience="u")


def run(coro):
    return defer.Deferred.fromCoroutine(coro)


def test_the_cache_fetches_once_for_concurrent_callers_and_renews_before_expiry():
    clock = task.Clock()
    clock.advance(1000)
    pending: list[defer.Deferred] = []

    async def fetch() -> Token:
        d = defer.Deferred()
        pending.append(d)
        return await d

    cache = TokenCache(fetch, clock.seconds, refresh_margin_s=60)
    first, second = run(cache.get()), run(cache.get())
    assert len(pending) == 1 and not first.called
    pending[0].callback(Token("t1", 1000 + 600))
    assert first.result == second.result == "t1"
    clock.advance(600 - 60 - 1)
    assert run(cache.get()).result == "t1"
    clock.advance(1)
    third = run(cache.get())
    assert len(pending) == 2
    pending[1].callback(Token("t2", clock.seconds() + 600))
    assert third.result == "t2" and cache.fetches == 2


def test_invalidate_drops_only_the_refused_token():
    clock = task.Clock()
    tokens = iter(["a", "b"])

    async def fetch() -> Token:
        return Token(next(tokens), 10_000)

    cache = TokenCache(fetch, clock.seconds, refresh_margin_s=0)
    assert run(cache.get()).result == "a"
    cache.invalidate("stale")
    assert cache.current() == "a"
    cache.invalidate("a")
    assert cache.current() is None
    assert run(cache.get()).result == "b"


def test_a_caller_giving_up_does_not_cancel_the_work_for_the_others():
    flight = SingleFlight()
    work = defer.Deferred()

    async def job():
        return await work

    impatient, patient = run(flight.run(job)), run(flight.run(job))
    impatient.cancel()
    impatient.addErrback(lambda f: f.trap(defer.CancelledError))
    work.callback("done")
    assert patient.result == "done"
    assert not flight.running


def test_a_failure_reaches_every_waiter():
    flight = SingleFlight()
    work = defer.Deferred()

    async def job():
        return await work

    failures = []
    for _ in range(3):
        run(flight.run(job)).addErrback(failures.append)
    work.errback(RuntimeError("boom"))
    assert [f.check(RuntimeError) for f in failures] == [RuntimeError] * 3


def test_fit_text_shortens_the_text_or_refuses():
    def encode(text: str) -> bytes:
        return f'{{"t":"{text}"}}'.encode()

    assert fit_text(encode, "short", 100, "x") == b'{"t":"short"}'
    fitted = fit_text(encode, "a" * 200, 20, "x")
    assert len(fitted) <= 20 and fitted.decode().endswith('…"}')
    with pytest.raises(PayloadTooLarge):
        fit_text(encode, "a", 5, "x")
