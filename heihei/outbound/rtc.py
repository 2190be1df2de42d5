"""
RTC credentials: what a client shows a real-time audio/video service to join a
room, issued by us from keys the operator configured.

One interface, `RtcProvider.issue(room, user, *, ttl_s, now_s, can_publish=True)`,
four kinds of credential behind it (`make_rtc_provider(kind, **settings)`):

    kind         credential                            RtcCredentials.fields (for the client)
    qiniu        Qiniu RTC room token                  {"roomName", "roomToken"}
    qiniu-pili   Qiniu Pili 连麦 room token (legacy)    {"roomName", "roomToken"}
    trtc         Tencent TRTC / IM UserSig (v2)        {"sdkAppId", "userId", "userSig",
                                                        "roomId" or "strRoomId"}
    livekit      LiveKit access token (JWT HS256)      {"url", "token"}

`qiniu-pili` exists because the shipped Android client (seed 001) links
pldroid-rtc-streaming 2.0.3, which exchanges the room token at
`rtc.qiniuapi.com/v1/rooms/<room>/auth?user=<uid>&token=<roomToken>`, the
2017 连麦 service whose room access document is
{"version": "2.0", "room_name", "user_id", "perm", "expire_at"}
(Pili's own server SDK, pili-sdk-python `RoomClient.roomToken`), not the
later Qiniu RTC document {"appId", "roomName", "userId", "expireAt",
"permission"} that `qiniu` signs. Both are signed the same way.

Nothing here reads the clock or does I/O: `now_s` (Unix seconds) comes from
the caller, so every answer is a pure function of its arguments. Secret keys
stay out of every repr, and the issued token out of the credentials' repr, so
logging an object never leaks either.

`can_publish=False` (a viewer) is honoured where the credential can say it
(LiveKit's `canPublish` grant). A Qiniu room token and a TRTC UserSig have no
such field, so asking them for a viewer credential raises `RtcUnsupported`
instead of quietly issuing one that may publish.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol


class RtcConfigError(ValueError):
    """An unknown provider kind, or settings missing, unknown or empty (named, never shown)."""


class RtcUnsupported(ValueError):
    """The provider's credential cannot express what was asked (e.g. a viewer-only grant)."""


class RtcRefused(ValueError):
    """A credential failed verification; `reason` is one of REFUSAL_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


REFUSAL_REASONS = ("malformed", "expired", "forged", "mismatch")


@dataclass(frozen=True)
class RtcCredentials:
    """One issued credential. `fields` is what the client needs, ready for a JSON answer."""

    kind: str
    room: str
    user: str
    expires_at_s: int
    token: str = field(repr=False)
    fields: dict[str, Any] = field(repr=False)


class RtcProvider(Protocol):
    """Issues credentials for one RTC service; constructed from config, never from code."""

    kind: str

    def issue(self, room: str, user: str, *, ttl_s: int, now_s: float,
              can_publish: bool = True) -> RtcCredentials:
        """A credential for `user` in `room`, valid from `now_s` for `ttl_s` seconds."""
        ...


# --- shared helpers ---------------------------------------------------------

def _need(kind: str, **values: Any) -> None:
    empty = [name for name, value in values.items() if value in ("", None, 0)]
    if empty:
        raise RtcConfigError(f"rtc provider {kind!r}: empty setting(s) {', '.join(empty)}")


def _window(ttl_s: int, now_s: float) -> tuple[int, int]:
    """(now, expiry) in whole seconds; a non-positive TTL is a caller bug, not a short token."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
        raise ValueError(f"ttl_s must be a positive int of seconds, got {ttl_s!r}")
    now = int(now_s)
    return now, now + ttl_s


def _check_name(what: str, value: str, pattern: re.Pattern[str], rule: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not valid here ({rule})")


def _b64url(data: bytes) -> str:
    """URL-safe base64 with padding, as Qiniu's `urlsafe_base64_encode`."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def _b64url_decode(text: str) -> bytes:
    # Qiniu keeps the padding; be lenient if a client stripped it.
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- Qiniu: room tokens (RTC and the legacy Pili 连麦 service) -----------------

def qiniu_token_with_data(access_key: str, secret_key: str, data: bytes) -> str:
    """Qiniu's `Auth.token_with_data`: `AK:b64url(hmac_sha1(SK, b64url(data))):b64url(data)`.

    The HMAC covers the *encoded* document, so whoever checks the token needs
    no JSON canonical form: it recomputes the HMAC over the third part as sent.
    """
    encoded = _b64url(data)
    digest = hmac.new(secret_key.encode("utf-8"), encoded.encode("ascii"), hashlib.sha1).digest()
    return f"{access_key}:{_b64url(digest)}:{encoded}"


def qiniu_verify_token_with_data(access_key: str, secret_key: str, token: str) -> dict[str, Any]:
    """The check Qiniu's service makes of a room token; returns the decoded room access document.

    Raises RtcRefused: `malformed` (not three parts, not base64/JSON),
    `mismatch` (another access key), `forged` (the HMAC does not match).
    Expiry is the caller's (the field name differs between documents).
    """
    parts = token.split(":")
    if len(parts) != 3:
        raise RtcRefused("malformed", "a room token has three ':'-separated parts")
    ak, sign, encoded = parts
    if not hmac.compare_digest(ak.encode("utf-8"), access_key.encode("utf-8")):
        raise RtcRefused("mismatch", "signed with another access key")
    expected = _b64url(hmac.new(secret_key.encode("utf-8"), encoded.encode("ascii", "replace"),
                                hashlib.sha1).digest())
    if not hmac.compare_digest(sign.encode("ascii", "replace"), expected.encode("ascii")):
        raise RtcRefused("forged", "room token signature does not match")
    try:
        doc = json.loads(_b64url_decode(encoded))
    except ValueError:
        raise RtcRefused("malformed", "room access is not base64 JSON") from None
    if not isinstance(doc, dict):
        raise RtcRefused("malformed", "room access is not a JSON object")
    return doc


# Qiniu RTC's documented limits (qiniu/python-sdk examples/rtc_server.py).
QINIU_ROOM_NAME = re.compile(r"[A-Za-z0-9_-]{3,64}")
QINIU_USER_ID = re.compile(r"[A-Za-z0-9_-]{3,50}")
# The legacy service's limits are not published; refuse only what cannot
# travel in its auth URL's query unescaped.
PILI_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class QiniuRtc:
    """Qiniu RTC (实时音视频) room tokens.

    Room access {"appId", "roomName", "userId", "expireAt", "permission"}
    serialized with `json.dumps` defaults, then `qiniu_token_with_data`. The
    result equals, byte for byte, what Qiniu's own published Python SDK
    (`qiniu` on PyPI, `qiniu.get_room_token`) returns for the same document;
    tests/outbound/test_rtc.py checks that. `permission` is always "user":
    "admin" (kicking others) is not something our rooms hand out.
    """

    kind = "qiniu"

    def __init__(self, *, app_id: str, access_key: str, secret_key: str) -> None:
        _need(self.kind, app_id=app_id, access_key=access_key, secret_key=secret_key)
        self.app_id = app_id
        self.access_key = access_key
        self._secret_key = secret_key

    def __repr__(self) -> str:
        return f"QiniuRtc(app_id={self.app_id!r}, access_key={self.access_key!r})"

    def room_access(self, room: str, user: str, *, expires_at_s: int) -> dict[str, Any]:
        _check_name("Qiniu roomName", room, QINIU_ROOM_NAME, "3-64 of A-Z a-z 0-9 _ -")
        _check_name("Qiniu userId", user, QINIU_USER_ID, "3-50 of A-Z a-z 0-9 _ -")
        return {"appId": self.app_id, "roomName": room, "userId": user,
                "expireAt": expires_at_s, "permission": "user"}

    def issue(self, room: str, user: str, *, ttl_s: int, now_s: float,
              can_publish: bool = True) -> RtcCredentials:
        if not can_publish:
            raise RtcUnsupported("a Qiniu room token cannot forbid publishing")
        _, expires = _window(ttl_s, now_s)
        access = self.room_access(room, user, expires_at_s=expires)
        token = qiniu_token_with_data(self.access_key, self._secret_key, json.dumps(access).encode("utf-8"))
        return RtcCredentials(self.kind, room, user, expires, token, {"roomName": room, "roomToken": token})

    def verify(self, token: str, *, now_s: float) -> dict[str, Any]:
        """The room access document of a valid token; RtcRefused otherwise (`expired` once past expireAt)."""
        doc = qiniu_verify_token_with_data(self.access_key, self._secret_key, token)
        if doc.get("appId") != self.app_id:
            raise RtcRefused("mismatch", "room token of another app")
        return _check_expiry(doc, "expireAt", now_s)


class QiniuPiliRtc:
    """Room tokens of Qiniu's 2017 Pili 连麦 service, the one the shipped client's SDK talks to.

    Room access {"version": "2.0", "room_name", "user_id", "perm", "expire_at"}
    (`token_version="1.0"`: the same without "version"), compact JSON, then
    `qiniu_token_with_data`: the algorithm of pili-sdk-python's
    `RoomClient.roomToken`. That SDK is Python 2 only and not installable
    here, so the tests check the algorithm by an independent decode and
    HMAC, not against its output. `perm` is always "user".
    """

    kind = "qiniu-pili"

    def __init__(self, *, access_key: str, secret_key: str, token_version: str = "2.0") -> None:
        _need(self.kind, access_key=access_key, secret_key=secret_key)
        if token_version not in ("1.0", "2.0"):
            raise RtcConfigError(f"rtc provider {self.kind!r}: token_version must be '1.0' or '2.0'")
        self.access_key = access_key
        self._secret_key = secret_key
        self.token_version = token_version

    def __repr__(self) -> str:
        return f"QiniuPiliRtc(access_key={self.access_key!r}, token_version={self.token_version!r})"

    def room_access(self, room: str, user: str, *, expires_at_s: int) -> dict[str, Any]:
        _check_name("Pili room_name", room, PILI_NAME, "1-64 of A-Z a-z 0-9 _ . -")
        _check_name("Pili user_id", user, PILI_NAME, "1-64 of A-Z a-z 0-9 _ . -")
        head = {"version": "2.0"} if self.token_version == "2.0" else {}
        return {**head, "room_name": room, "user_id": user, "perm": "user", "expire_at": expires_at_s}

    def issue(self, room: str, user: str, *, ttl_s: int, now_s: float,
              can_publish: bool = True) -> RtcCredentials:
        if not can_publish:
            raise RtcUnsupported("a Pili room token cannot forbid publishing")
        _, expires = _window(ttl_s, now_s)
        access = self.room_access(room, user, expires_at_s=expires)
        data = json.dumps(access, separators=(",", ":")).encode("utf-8")
        token = qiniu_token_with_data(self.access_key, self._secret_key, data)
        return RtcCredentials(self.kind, room, user, expires, token, {"roomName": room, "roomToken": token})

    def verify(self, token: str, *, now_s: float) -> dict[str, Any]:
        """The room access document of a valid token; RtcRefused otherwise (`expired` once past expire_at)."""
        doc = qiniu_verify_token_with_data(self.access_key, self._secret_key, token)
        return _check_expiry(doc, "expire_at", now_s)


def _check_expiry(doc: dict[str, Any], name: str, now_s: float) -> dict[str, Any]:
    expires = doc.get(name)
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise RtcRefused("malformed", f"room access has no integer {name}")
    if int(now_s) > expires:
        raise RtcRefused("expired", f"expired at {expires}")
    return doc


# --- Tencent TRTC / IM: UserSig v2 --------------------------------------------

TRTC_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
TRTC_MAX_ROOM_ID = 4294967294  # a numeric roomId is a uint32 other than 0 and 2**32-1


def _trtc_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").replace("+", "*").replace("/", "-").replace("=", "_")


def _trtc_b64_decode(text: str) -> bytes:
    return base64.b64decode(text.replace("*", "+").replace("-", "/").replace("_", "="), validate=True)


class TrtcUserSig:
    """Tencent TRTC / IM UserSig, HMAC-SHA256 "v2".

    sig = base64(hmac_sha256(key, "TLS.identifier:<user>\\nTLS.sdkappid:<app>\\n"
                                  "TLS.time:<now>\\nTLS.expire:<ttl>\\n"))
    UserSig = trtc_b64(zlib(JSON {"TLS.ver": "2.0", "TLS.identifier", "TLS.sdkappid",
                                  "TLS.expire", "TLS.time", "TLS.sig"}))
    where trtc_b64 is base64 with + -> *, / -> -, = -> _.

    Serialized as Tencent's published Python library (`tls-sig-api-v2` on
    PyPI) does, so for the same second the two UserSigs are identical (tested).
    That library has no verify function; `verify` here mirrors the one in
    Tencent's Go library (`VerifyUserSig`, tls-sig-api-v2-golang), which the
    tests also run when a Go toolchain is present.

    A UserSig names no room (rooms are enforced by TRTC's PrivateMapKey,
    not issued here): `room` only travels to the client in `fields`.
    """

    kind = "trtc"

    def __init__(self, *, sdk_app_id: int, secret_key: str) -> None:
        _need(self.kind, sdk_app_id=sdk_app_id, secret_key=secret_key)
        if isinstance(sdk_app_id, bool) or not isinstance(sdk_app_id, int) or sdk_app_id <= 0:
            raise RtcConfigError(f"rtc provider {self.kind!r}: sdk_app_id must be a positive integer")
        self.sdk_app_id = sdk_app_id
        self._secret_key = secret_key

    def __repr__(self) -> str:
        return f"TrtcUserSig(sdk_app_id={self.sdk_app_id!r})"

    def _hmac(self, user: str, time_s: int, expire_s: int) -> str:
        content = (f"TLS.identifier:{user}\nTLS.sdkappid:{self.sdk_app_id}\n"
                   f"TLS.time:{time_s}\nTLS.expire:{expire_s}\n")
        digest = hmac.new(self._secret_key.encode("utf-8"), content.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")

    def user_sig(self, user: str, *, ttl_s: int, now_s: float) -> str:
        _check_name("TRTC userId", user, TRTC_USER_ID, "1-32 of A-Z a-z 0-9 _ -")
        now, _ = _window(ttl_s, now_s)
        doc = {"TLS.ver": "2.0", "TLS.identifier": user, "TLS.sdkappid": self.sdk_app_id,
               "TLS.expire": ttl_s, "TLS.time": now, "TLS.sig": self._hmac(user, now, ttl_s)}
        return _trtc_b64(zlib.compress(json.dumps(doc).encode("utf-8")))

    def issue(self, room: str, user: str, *, ttl_s: int, now_s: float,
              can_publish: bool = True) -> RtcCredentials:
        if not can_publish:
            raise RtcUnsupported("a TRTC UserSig cannot forbid publishing (that is a PrivateMapKey)")
        if not room:
            raise ValueError("TRTC room must not be empty")
        sig = self.user_sig(user, ttl_s=ttl_s, now_s=now_s)
        fields: dict[str, Any] = {"sdkAppId": self.sdk_app_id, "userId": user, "userSig": sig}
        if room.isascii() and room.isdigit() and 0 < int(room) <= TRTC_MAX_ROOM_ID:
            fields["roomId"] = int(room)
        else:
            fields["strRoomId"] = room
        return RtcCredentials(self.kind, room, user, int(now_s) + ttl_s, sig, fields)

    def verify(self, user: str, user_sig: str, *, now_s: float) -> dict[str, Any]:
        """The decoded document of a UserSig valid for `user` at `now_s`; RtcRefused otherwise.

        As Tencent's Go `VerifyUserSig`: app and identifier must match, it is
        expired once now > TLS.time + TLS.expire, a UserSig carrying a
        userbuf (a PrivateMapKey) is not a UserSig, then the HMAC must match.
        """
        try:
            doc = json.loads(zlib.decompress(_trtc_b64_decode(user_sig)))
        except (ValueError, zlib.error):
            raise RtcRefused("malformed", "not a base64 zlib JSON UserSig") from None
        if not isinstance(doc, dict):
            raise RtcRefused("malformed", "UserSig is not a JSON object")
        time_s, expire_s = doc.get("TLS.time"), doc.get("TLS.expire")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (time_s, expire_s)):
            raise RtcRefused("malformed", "TLS.time and TLS.expire must be integers")
        if doc.get("TLS.sdkappid") != self.sdk_app_id:
            raise RtcRefused("mismatch", "UserSig of another SDKAppID")
        if doc.get("TLS.identifier") != user:
            raise RtcRefused("mismatch", "UserSig of another user")
        if int(now_s) > time_s + expire_s:
            raise RtcRefused("expired", f"expired at {time_s + expire_s}")
        if "TLS.userbuf" in doc:
            raise RtcRefused("mismatch", "a PrivateMapKey, not a UserSig")
        sig = doc.get("TLS.sig")
        if not isinstance(sig, str) or not hmac.compare_digest(
                sig.encode("ascii", "replace"), self._hmac(user, time_s, expire_s).encode("ascii")):
            raise RtcRefused("forged", "UserSig signature does not match")
        return doc


# --- LiveKit: access tokens ---------------------------------------------------

def _jwt_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class LiveKitTokens:
    """LiveKit access tokens: JWT HS256 signed with the API secret.

    Claims: {"video": {"roomJoin": true, "room", "canPublish", "canSubscribe": true,
    "canPublishData"}, "sub": user (the participant identity), "iss": API key,
    "nbf": now, "exp": now + ttl}; `canPublishData` follows `can_publish`
    (our chat runs through heihei, not data channels). Checked in the tests
    with LiveKit's own `livekit-api` `TokenVerifier`. LiveKit servers want an
    API secret of at least 32 characters.
    """

    kind = "livekit"

    def __init__(self, *, api_key: str, api_secret: str, url: str = "") -> None:
        _need(self.kind, api_key=api_key, api_secret=api_secret)
        self.api_key = api_key
        self._api_secret = api_secret
        self.url = url

    def __repr__(self) -> str:
        return f"LiveKitTokens(api_key={self.api_key!r}, url={self.url!r})"

    def issue(self, room: str, user: str, *, ttl_s: int, now_s: float,
              can_publish: bool = True) -> RtcCredentials:
        if not room or not user:
            raise ValueError("LiveKit room and identity must not be empty")
        now, expires = _window(ttl_s, now_s)
        claims = {
            "video": {"roomJoin": True, "room": room, "canPublish": bool(can_publish),
                      "canSubscribe": True, "canPublishData": bool(can_publish)},
            "sub": user, "iss": self.api_key, "nbf": now, "exp": expires,
        }
        header = {"alg": "HS256", "typ": "JWT"}
        signing_input = ".".join(_jwt_b64(json.dumps(part, separators=(",", ":")).encode("utf-8"))
                                 for part in (header, claims))
        mac = hmac.new(self._api_secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256)
        token = f"{signing_input}.{_jwt_b64(mac.digest())}"
        return RtcCredentials(self.kind, room, user, expires, token, {"url": self.url, "token": token})


# --- factory ------------------------------------------------------------------

PROVIDERS: dict[str, type] = {
    QiniuRtc.kind: QiniuRtc,
    QiniuPiliRtc.kind: QiniuPiliRtc,
    TrtcUserSig.kind: TrtcUserSig,
    LiveKitTokens.kind: LiveKitTokens,
}


def make_rtc_provider(kind: str, **settings: Any) -> RtcProvider:
    """The provider of `kind`, built from its settings (the constructor's keyword names).

    Errors name the settings that are missing, unknown or empty, never their values.
    """
    try:
        cls = PROVIDERS[kind]
    except KeyError:
        raise RtcConfigError(f"unknown rtc provider {kind!r}; known: {', '.join(sorted(PROVIDERS))}") from None
    params = inspect.signature(cls).parameters
    unknown = sorted(set(settings) - set(params))
    missing = sorted(name for name, p in params.items()
                     if p.default is inspect.Parameter.empty and name not in settings)
    if unknown or missing:
        problems = ([f"unknown setting(s) {', '.join(unknown)}"] if unknown else []) + \
                   ([f"missing setting(s) {', '.join(missing)}"] if missing else [])
        raise RtcConfigError(f"rtc provider {kind!r}: {'; '.join(problems)}; accepted: {', '.join(params)}")
    return cls(**settings)
