"""
RTC credentials: known answers, the providers' own published libraries, and
refusal of expired, tampered and foreign credentials.

Checked against: Qiniu's `qiniu` SDK (`get_room_token`, byte for byte),
Tencent's `tls-sig-api-v2` (its generator, byte for byte at the same second:
the package has no verify function), LiveKit's `livekit-api` (`TokenVerifier`)
and PyJWT. The legacy Pili room token has no installable reference (its SDK
is Python 2): it is checked by decoding and recomputing the HMAC by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import types
import zlib

import pytest

from heihei.outbound.rtc import (
    LiveKitTokens,
    QiniuPiliRtc,
    QiniuRtc,
    RtcConfigError,
    RtcProvider,
    RtcRefused,
    RtcUnsupported,
    TrtcUserSig,
    make_rtc_provider,
)

NOW = 1700000000
QINIU = dict(app_id="desmfnkw5", access_key="test-ak-0123456789", secret_key="test-sk-abcdefghijklmnop")
# The sample key of Tencent's own library (TLSSigAPIv2.py main()).
TRTC_APP, TRTC_KEY = 1400000000, "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
LK_KEY, LK_SECRET = "APIheihei", "livekit-test-secret-0123456789abcdef0123"


def b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def issue(provider: RtcProvider, room: str, user: str, **kw):
    """Through the Protocol, as a caller that knows only the interface would."""
    return provider.issue(room, user, **kw)


# --- Qiniu RTC ----------------------------------------------------------------

QINIU_KNOWN = ("test-ak-0123456789:yx7pqnr2y87_1Jk5lfbEE_iLmoY=:eyJhcHBJZCI6ICJkZXNtZm5rdzUiLCAicm9vbU5hbWUiOiAi"
               "cm9vbV8xNTc3ODk5NTI1IiwgInVzZXJJZCI6ICJ1c2VyXzEwNDQ2IiwgImV4cGlyZUF0IjogMTcwMDAwMzYwMCwgInBlcm1p"
               "c3Npb24iOiAidXNlciJ9")


def test_qiniu_room_token_known_answer():
    creds = issue(QiniuRtc(**QINIU), "room_1577899525", "user_10446", ttl_s=3600, now_s=NOW)
    assert creds.token == QINIU_KNOWN
    assert creds.expires_at_s == NOW + 3600
    assert creds.fields == {"roomName": "room_1577899525", "roomToken": QINIU_KNOWN}


def test_qiniu_room_token_is_what_qiniu_sdk_signs():
    import qiniu
    creds = QiniuRtc(**QINIU).issue("room_1", "user_1", ttl_s=600, now_s=NOW + 0.9)
    access = {"appId": "desmfnkw5", "roomName": "room_1", "userId": "user_1",
              "expireAt": NOW + 600, "permission": "user"}
    assert creds.token == qiniu.get_room_token(QINIU["access_key"], QINIU["secret_key"], access)


def test_qiniu_room_token_by_hand():
    ak, sign, data = QINIU_KNOWN.split(":")
    assert ak == QINIU["access_key"]
    mac = hmac.new(QINIU["secret_key"].encode(), data.encode(), hashlib.sha1).digest()
    assert base64.urlsafe_b64decode(sign) == mac
    assert b64url_json(data) == {"appId": "desmfnkw5", "roomName": "room_1577899525", "userId": "user_10446",
                                 "expireAt": NOW + 3600, "permission": "user"}


def test_qiniu_verify_expiry_boundary():
    provider = QiniuRtc(**QINIU)
    token = provider.issue("room_1", "user_1", ttl_s=60, now_s=NOW).token
    assert provider.verify(token, now_s=NOW + 60)["roomName"] == "room_1"
    with pytest.raises(RtcRefused) as refused:
        provider.verify(token, now_s=NOW + 61)
    assert refused.value.reason == "expired"


def test_qiniu_verify_refuses_tampering_and_foreign_tokens():
    provider = QiniuRtc(**QINIU)
    token = provider.issue("room_1", "user_1", ttl_s=60, now_s=NOW).token
    ak, sign, data = token.split(":")
    doc = b64url_json(data)
    doc["roomName"] = "room_2"
    moved = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    cases = {
        f"{ak}:{sign}:{moved}": "forged",
        QiniuRtc(**{**QINIU, "secret_key": "another-secret"}).issue("room_1", "user_1", ttl_s=60,
                                                                     now_s=NOW).token: "forged",
        QiniuRtc(**{**QINIU, "access_key": "another-ak"}).issue("room_1", "user_1", ttl_s=60,
                                                                now_s=NOW).token: "mismatch",
        # Same keys, another app: the signature holds, the app does not.
        QiniuRtc(**{**QINIU, "app_id": "otherapp"}).issue("room_1", "user_1", ttl_s=60, now_s=NOW).token:
            "mismatch",
        "not-a-token": "malformed",
        f"{ak}:{sign}": "malformed",
    }
    for bad, reason in cases.items():
        with pytest.raises(RtcRefused) as refused:
            provider.verify(bad, now_s=NOW)
        assert refused.value.reason == reason, bad


def test_qiniu_refuses_what_it_cannot_sign():
    provider = QiniuRtc(**QINIU)
    with pytest.raises(ValueError, match="userId"):
        provider.issue("room_1", "6", ttl_s=60, now_s=NOW)  # Qiniu wants 3-50 characters
    with pytest.raises(ValueError, match="roomName"):
        provider.issue("room 1", "user_1", ttl_s=60, now_s=NOW)
    with pytest.raises(RtcUnsupported):
        provider.issue("room_1", "user_1", ttl_s=60, now_s=NOW, can_publish=False)
    for ttl in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="ttl_s"):
            provider.issue("room_1", "user_1", ttl_s=ttl, now_s=NOW)


# --- Qiniu Pili 连麦 (the shipped client's SDK) ---------------------------------

PILI_KNOWN = ("test-ak-0123456789:IOwW_zxLBdbdjxmo8JejI7ApMB0=:eyJ2ZXJzaW9uIjoiMi4wIiwicm9vbV9uYW1lIjoiMTk1NjY0MTkz"
              "MSIsInVzZXJfaWQiOiI2IiwicGVybSI6InVzZXIiLCJleHBpcmVfYXQiOjE3MDAwMDM2MDB9")


def test_pili_room_token_known_answer_and_by_hand():
    provider = QiniuPiliRtc(access_key=QINIU["access_key"], secret_key=QINIU["secret_key"])
    creds = issue(provider, "1956641931", "6", ttl_s=3600, now_s=NOW)
    assert creds.token == PILI_KNOWN
    assert creds.fields == {"roomName": "1956641931", "roomToken": PILI_KNOWN}
    ak, sign, data = creds.token.split(":")
    assert ak == QINIU["access_key"]
    assert base64.urlsafe_b64decode(sign) == hmac.new(QINIU["secret_key"].encode(), data.encode(),
                                                      hashlib.sha1).digest()
    assert base64.urlsafe_b64decode(data) == (
        b'{"version":"2.0","room_name":"1956641931","user_id":"6","perm":"user","expire_at":1700003600}')


def test_pili_token_version_1_has_no_version_field():
    provider = QiniuPiliRtc(access_key="ak", secret_key="sk", token_version="1.0")
    data = provider.issue("r1", "u1", ttl_s=10, now_s=NOW).token.split(":")[2]
    assert b64url_json(data) == {"room_name": "r1", "user_id": "u1", "perm": "user", "expire_at": NOW + 10}
    with pytest.raises(RtcConfigError):
        QiniuPiliRtc(access_key="ak", secret_key="sk", token_version="3")


def test_pili_verify():
    provider = QiniuPiliRtc(access_key="ak", secret_key="sk")
    token = provider.issue("r1", "u1", ttl_s=10, now_s=NOW).token
    assert provider.verify(token, now_s=NOW + 10)["room_name"] == "r1"
    for bad, now, reason in ((token, NOW + 11, "expired"),
                             (token[:-4] + "AAAA", NOW, "forged"),
                             (QiniuPiliRtc(access_key="ak", secret_key="other").issue(
                                 "r1", "u1", ttl_s=10, now_s=NOW).token, NOW, "forged")):
        with pytest.raises(RtcRefused) as refused:
            provider.verify(bad, now_s=now)
        assert refused.value.reason == reason


# --- Tencent TRTC UserSig -------------------------------------------------------

TRTC_KNOWN = ("eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YF"
              "FzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__")


def tencent_at(monkeypatch, now_s: int):
    """Tencent's own generator, its clock (`time.time()` in its module) pinned to `now_s`."""
    import TLSSigAPIv2 as module
    monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: now_s))
    return module.TLSSigAPIv2(TRTC_APP, TRTC_KEY)


def test_trtc_user_sig_known_answer():
    provider = TrtcUserSig(sdk_app_id=TRTC_APP, secret_key=TRTC_KEY)
    assert provider.user_sig("xiaojun", ttl_s=180 * 86400, now_s=NOW) == TRTC_KNOWN


def test_trtc_user_sig_is_what_tencent_library_signs(monkeypatch):
    tencent = tencent_at(monkeypatch, NOW)
    provider = TrtcUserSig(sdk_app_id=TRTC_APP, secret_key=TRTC_KEY)
    for user, ttl in (("xiaojun", 180 * 86400), ("10446", 3600), ("a_b-C", 1)):
        assert provider.user_sig(user, ttl_s=ttl, now_s=NOW) == tencent.gen_sig(user, ttl)


def test_trtc_verify_accepts_tencent_user_sigs(monkeypatch):
    sig = tencent_at(monkeypatch, NOW).gen_sig("10446", 3600)
    doc = TrtcUserSig(sdk_app_id=TRTC_APP, secret_key=TRTC_KEY).verify("10446", sig, now_s=NOW + 3600)
    assert doc["TLS.identifier"] == "10446" and doc["TLS.time"] == NOW and doc["TLS.expire"] == 3600


def test_trtc_issue_fields():
    provider = TrtcUserSig(sdk_app_id=TRTC_APP, secret_key=TRTC_KEY)
    creds = issue(provider, "1577899525", "10446", ttl_s=600, now_s=NOW)
    assert creds.expires_at_s == NOW + 600
    assert creds.fields == {"sdkAppId": TRTC_APP, "userId": "10446", "userSig": creds.token, "roomId": 1577899525}
    assert provider.issue("chat-9", "10446", ttl_s=600, now_s=NOW).fields["strRoomId"] == "chat-9"
    assert "roomId" not in provider.issue("4294967295", "10446", ttl_s=600, now_s=NOW).fields
    with pytest.raises(RtcUnsupported):
        provider.issue("1", "10446", ttl_s=600, now_s=NOW, can_publish=False)
    with pytest.raises(ValueError, match="userId"):
        provider.issue("1", "x" * 33, ttl_s=600, now_s=NOW)


def recompress(sig: str, **changes) -> str:
    raw = base64.b64decode(sig.replace("*", "+").replace("-", "/").replace("_", "="))
    doc = json.loads(zlib.decompress(raw))
    doc.update(changes)
    out = base64.b64encode(zlib.compress(json.dumps(doc).encode())).decode()
    return out.replace("+", "*").replace("/", "-").replace("=", "_")


def test_trtc_verify_refusals(monkeypatch):
    provider = TrtcUserSig(sdk_app_id=TRTC_APP, secret_key=TRTC_KEY)
    sig = provider.user_sig("10446", ttl_s=60, now_s=NOW)
    assert provider.verify("10446", sig, now_s=NOW + 60)
    tencent = tencent_at(monkeypatch, NOW)
    cases = [
        ("10446", sig, NOW + 61, "expired"),
        ("10447", sig, NOW, "mismatch"),
        ("10446", TrtcUserSig(sdk_app_id=TRTC_APP + 1, secret_key=TRTC_KEY).user_sig(
            "10446", ttl_s=60, now_s=NOW), NOW, "mismatch"),
        ("10446", TrtcUserSig(sdk_app_id=TRTC_APP, secret_key="another-key").user_sig(
            "10446", ttl_s=60, now_s=NOW), NOW, "forged"),
        ("10446", recompress(sig, **{"TLS.expire": 86400}), NOW + 61, "forged"),
        ("10446", recompress(sig, **{"TLS.time": NOW + 1000}), NOW + 61, "forged"),
        ("10446", tencent.gen_sig_with_userbuf("10446", 60, b"room"), NOW, "mismatch"),
        ("10446", "not*a*sig", NOW, "malformed"),
        ("10446", sig[:-6], NOW, "malformed"),
    ]
    for user, bad, now, reason in cases:
        with pytest.raises(RtcRefused) as refused:
            provider.verify(user, bad, now_s=now)
        assert refused.value.reason == reason, (user, now, reason)


# --- LiveKit --------------------------------------------------------------------

def test_livekit_token_passes_livekit_token_verifier():
    from livekit import api
    provider = LiveKitTokens(api_key=LK_KEY, api_secret=LK_SECRET, url="wss://rtc.example.com")
    now = time.time()
    creds = issue(provider, "live-1577899525", "10446", ttl_s=600, now_s=now)
    assert creds.fields == {"url": "wss://rtc.example.com", "token": creds.token}
    claims = api.TokenVerifier(LK_KEY, LK_SECRET).verify(creds.token)
    assert claims.identity == "10446"
    assert claims.video.room == "live-1577899525"
    assert claims.video.room_join is True
    assert claims.video.can_publish is True and claims.video.can_subscribe is True
    viewer = provider.issue("live-1577899525", "10447", ttl_s=600, now_s=now, can_publish=False)
    claims = api.TokenVerifier(LK_KEY, LK_SECRET).verify(viewer.token)
    assert claims.video.can_publish is False and claims.video.can_publish_data is False
    assert claims.video.can_subscribe is True


def test_livekit_token_is_what_pyjwt_signs():
    import jwt
    token = LiveKitTokens(api_key=LK_KEY, api_secret=LK_SECRET).issue("r1", "u1", ttl_s=600, now_s=NOW).token
    claims = {"video": {"roomJoin": True, "room": "r1", "canPublish": True, "canSubscribe": True,
                        "canPublishData": True},
              "sub": "u1", "iss": LK_KEY, "nbf": NOW, "exp": NOW + 600}
    assert token == jwt.encode(claims, LK_SECRET, algorithm="HS256")


def test_livekit_verifier_refuses_expired_early_tampered_and_foreign():
    from livekit import api
    import jwt
    verifier = api.TokenVerifier(LK_KEY, LK_SECRET)  # one minute of leeway, as LiveKit's default
    provider = LiveKitTokens(api_key=LK_KEY, api_secret=LK_SECRET)
    now = time.time()
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(provider.issue("r1", "u1", ttl_s=600, now_s=now - 600 - 120).token)
    with pytest.raises(jwt.ImmatureSignatureError):
        verifier.verify(provider.issue("r1", "u1", ttl_s=600, now_s=now + 3600).token)
    header, payload, signature = provider.issue("r1", "u1", ttl_s=600, now_s=now).token.split(".")
    claims = b64url_json(payload)
    claims["video"]["room"] = "r2"
    moved = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(f"{header}.{moved}.{signature}")
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(LiveKitTokens(api_key=LK_KEY, api_secret="x" * 40).issue(
            "r1", "u1", ttl_s=600, now_s=now).token)
    with pytest.raises(jwt.InvalidIssuerError):
        verifier.verify(LiveKitTokens(api_key="APIother", api_secret=LK_SECRET).issue(
            "r1", "u1", ttl_s=600, now_s=now).token)


# --- factory and hygiene -------------------------------------------------------

def test_factory_builds_each_kind():
    assert isinstance(make_rtc_provider("qiniu", **QINIU), QiniuRtc)
    assert isinstance(make_rtc_provider("qiniu-pili", access_key="ak", secret_key="sk"), QiniuPiliRtc)
    assert isinstance(make_rtc_provider("trtc", sdk_app_id=TRTC_APP, secret_key=TRTC_KEY), TrtcUserSig)
    assert isinstance(make_rtc_provider("livekit", api_key=LK_KEY, api_secret=LK_SECRET), LiveKitTokens)


def test_factory_errors_are_clear_and_never_show_secrets():
    with pytest.raises(RtcConfigError, match="unknown rtc provider 'agora'; known: livekit, qiniu, "
                                             "qiniu-pili, trtc"):
        make_rtc_provider("agora")
    with pytest.raises(RtcConfigError, match="missing setting.*app_id") as missing:
        make_rtc_provider("qiniu", access_key="ak", secret_key="hush-hush")
    with pytest.raises(RtcConfigError, match="unknown setting.*api_secrets") as unknown:
        make_rtc_provider("livekit", api_key="k", api_secret="hush-hush", api_secrets="hush-hush")
    with pytest.raises(RtcConfigError, match="empty setting.*secret_key") as empty:
        make_rtc_provider("trtc", sdk_app_id=TRTC_APP, secret_key="")
    with pytest.raises(RtcConfigError, match="sdk_app_id"):
        make_rtc_provider("trtc", sdk_app_id="1400000000", secret_key="k")
    for error in (missing, unknown, empty):
        assert "hush-hush" not in str(error.value)


def test_reprs_hide_secrets_and_tokens():
    providers = [QiniuRtc(**QINIU), QiniuPiliRtc(access_key="ak", secret_key=QINIU["secret_key"]),
                 TrtcUserSig(sdk_app_id=TRTC_APP, secret_key=TRTC_KEY),
                 LiveKitTokens(api_key=LK_KEY, api_secret=LK_SECRET)]
    for provider, secret in zip(providers, (QINIU["secret_key"], QINIU["secret_key"], TRTC_KEY, LK_SECRET)):
        assert secret not in repr(provider)
        creds = provider.issue("1577899525", "user_10446", ttl_s=60, now_s=NOW)
        assert creds.token not in repr(creds)
