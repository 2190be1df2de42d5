"""
FCM HTTP v1 (Android devices registered with `apnsType=gcm`; the device's
`apnsToken` is its FCM registration token), over HTTPS (HTTP/1.1, treq),
authorised by a Google service account.

Wire format:

    POST {token_uri}   (the service account's, https://oauth2.googleapis.com/token)
        grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>
        JWT RS256, header {kid: private_key_id}, claims {iss: client_email,
        scope: https://www.googleapis.com/auth/firebase.messaging, aud: token_uri, iat, exp: iat + 3600}
      -> {"access_token": ..., "expires_in": 3599, "token_type": "Bearer"}
    POST {base}/v1/projects/{project}/messages:send    authorization: Bearer <access token>
        {"message": {"token": <registration token>,
                     "notification": {"title": ..., "body": ...},
                     "data": {"link": ..., "action": ..., "msgId": ..., ...}}}   (data values are strings)
      -> {"name": "projects/{project}/messages/<id>"}

The notification and data together must stay within 4000 bytes (measured as
their compact JSON): a long body text is shortened to fit, a push that does
not fit even so is refused before sending. The access token is cached until
5 minutes before it expires and fetched once however many pushes need it.

Errors are google.rpc.Status objects, {"error": {"code", "status", "message",
"details": [{"@type": ".../google.firebase.fcm.v1.FcmError", "errorCode"},
{"@type": ".../google.rpc.BadRequest", "fieldViolations": [{"field"}]}]}}:

    errorCode UNREGISTERED (404)                -> DeviceGone
    INVALID_ARGUMENT about message.token (400)  -> DeviceGone
    401 UNAUTHENTICATED                         -> new access token, sent once
                                                   more; again -> CredentialsRejected
    401 THIRD_PARTY_AUTH_ERROR, 403 PERMISSION_DENIED, the token endpoint
    refusing our assertion (invalid_grant, ...) -> CredentialsRejected
    SENDER_ID_MISMATCH (403)                    -> PermanentPushError: the token
                                                   belongs to another Firebase
                                                   project, or [push] fcm_project_id
                                                   is wrong (not DeviceGone, lest a
                                                   settings typo unregister everyone)
    429 QUOTA_EXCEEDED, 500, 503, connection trouble, no answer
                                                -> RetryablePushError (Retry-After kept)
    other INVALID_ARGUMENT and 4xx              -> PermanentPushError
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa
from treq.client import HTTPClient
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from heihei.jsonsafe import BadJSON, decode_json, decode_json_object, encode_json
from heihei.outbound.http import read_bounded
from heihei.outbound.push_auth import Token, TokenCache, load_rsa_key, sign_rs256
from heihei.outbound.push_errors import (
    CredentialsRejected, DeviceGone, PayloadTooLarge, PermanentPushError, RetryablePushError, fit_text,
    retry_after_seconds, short_token, was_cancelled)

SERVICE = "fcm"
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME_S = 3600
ACCESS_TOKEN_MARGIN_S = 300
MAX_PAYLOAD_BYTES = 4000
DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 64 * 1024

#: push fields sent as FCM data (as strings), for the app to act on when tapped
DATA_FIELDS = ("link", "action", "msgId", "fromUserId", "fromUserName", "gender")

_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


class BadServiceAccount(ValueError):
    """The service-account file cannot be used. Never quotes the key."""


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    private_key_id: str
    project_id: str
    token_uri: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ServiceAccount:
        """A service-account key file as downloaded from the Firebase or Google Cloud console."""
        try:
            info = decode_json_object(raw, max_bytes=64 * 1024)
        except BadJSON as e:
            raise BadServiceAccount(f"the FCM service-account file is not JSON: {e.reason}") from None
        if info.get("type") != "service_account":
            raise BadServiceAccount("the FCM service-account file is not of \"type\": \"service_account\"")
        missing = [k for k in ("client_email", "private_key", "private_key_id") if not isinstance(info.get(k), str)
                   or not info[k]]
        if missing:
            raise BadServiceAccount(f"the FCM service-account file lacks {', '.join(missing)}")
        key = load_rsa_key(info["private_key"].encode("utf-8"), "the service account's private_key")
        return cls(client_email=info["client_email"], private_key_id=info["private_key_id"],
                   project_id=str(info.get("project_id") or ""),
                   token_uri=str(info.get("token_uri") or DEFAULT_TOKEN_URI), private_key=key)


class FcmPush:
    """`PushProvider` for FCM HTTP v1. `close()` closes its HTTP connections."""

    _log = Logger()

    def __init__(self, account: ServiceAccount, *, project_id: str = "", base_url: str = DEFAULT_BASE_URL,
                 token_uri: str = "", reactor, clock=None, now_s: Callable[[], float] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, http: HTTPClient | None = None) -> None:
        self.account = account
        self.project_id = project_id or account.project_id
        if not self.project_id:
            raise ValueError("FCM needs a project id ([push] fcm_project_id or the service account's project_id)")
        self.send_url = f"{base_url.rstrip('/')}/v1/projects/{quote(self.project_id, safe='')}/messages:send"
        self.token_uri = token_uri or account.token_uri
        self.clock = clock if clock is not None else reactor
        self.now_s = now_s if now_s is not None else self.clock.seconds
        self.timeout_s = timeout_s
        self._pool = None
        if http is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = 8
            http = HTTPClient(Agent(reactor, pool=self._pool, connectTimeout=timeout_s))
        self.http = http
        self.tokens = TokenCache(self._access_token, self.now_s, refresh_margin_s=ACCESS_TOKEN_MARGIN_S)

    # --- PushProvider

    async def send(self, push: dict[str, Any]) -> None:
        device = str(push.get("clientid") or "")
        if not device or len(device) > 4096:
            raise DeviceGone(SERVICE, device, "no usable FCM registration token")
        body = self.request_body(push, device)
        d = defer.Deferred.fromCoroutine(self._send(device, body))
        d.addTimeout(self.timeout_s, self.clock)
        try:
            await d
        except defer.TimeoutError:
            raise RetryablePushError(SERVICE, f"no answer within {self.timeout_s} s") from None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    # --- building

    @staticmethod
    def content(push: dict[str, Any]) -> bytes:
        """The notification and data, as the JSON whose size counts against the 4000-byte limit."""
        title = str(push.get("title") or "")
        data = {k: str(push[k]) for k in DATA_FIELDS if push.get(k) is not None}

        def encode(body: str) -> bytes:
            return encode_json({"notification": {"title": title, "body": body}, "data": data})

        return fit_text(encode, str(push.get("text") or ""), MAX_PAYLOAD_BYTES, SERVICE)

    def request_body(self, push: dict[str, Any], device: str) -> bytes:
        content = decode_json(self.content(push), max_bytes=MAX_PAYLOAD_BYTES)
        return encode_json({"message": {"token": device, **content}})

    # --- sending

    async def _send(self, device: str, body: bytes) -> None:
        for attempt in (1, 2):
            access = await self.tokens.get()
            status, answer, retry_after = await self._post(
                self.send_url, body, {b"Authorization": [b"Bearer " + access.encode("ascii")],
                                      b"Content-Type": [b"application/json; charset=utf-8"]})
            if status == 200:
                return
            error = _google_error(answer)
            if status == 401 and error.status == "UNAUTHENTICATED" and "THIRD_PARTY_AUTH_ERROR" not in error.codes:
                self.tokens.invalidate(access)
                if attempt == 1:
                    continue
            raise error.exception(device, status, retry_after, len(body))

    async def _access_token(self) -> Token:
        d = defer.Deferred.fromCoroutine(self._ask_access_token())
        d.addTimeout(self.timeout_s, self.clock)
        try:
            return await d
        except defer.TimeoutError:
            raise RetryablePushError(SERVICE, f"token endpoint: no answer within {self.timeout_s} s") from None

    def assertion(self) -> str:
        now = int(self.now_s())
        return sign_rs256(self.account.private_key, {"kid": self.account.private_key_id},
                          {"iss": self.account.client_email, "scope": SCOPE, "aud": self.token_uri,
                           "iat": now, "exp": now + ASSERTION_LIFETIME_S})

    async def _ask_access_token(self) -> Token:
        form = urlencode({"grant_type": GRANT_TYPE, "assertion": self.assertion()}).encode("ascii")
        status, answer, retry_after = await self._post(
            self.token_uri, form, {b"Content-Type": [b"application/x-www-form-urlencoded"]})
        answer = answer or {}
        if status >= 500 or status == 429:
            raise RetryablePushError(SERVICE, f"token endpoint: HTTP {status}",
                                     retry_after_s=retry_after_seconds(retry_after))
        if status != 200:
            error, description = str(answer.get("error", "")), str(answer.get("error_description", ""))
            raise CredentialsRejected(SERVICE, f"Google refused the service account {self.account.client_email}: "
                                               f"HTTP {status} {error}: {description[:200]}")
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise RetryablePushError(SERVICE, "token endpoint: an answer without a usable access token")
        return Token(token, self.now_s() + expires_in)

    async def _post(self, url: str, body: bytes, headers: dict[bytes, list[bytes]]):
        try:
            response = await self.http.post(url, data=body, headers=headers, unbuffered=True)
            raw = await read_bounded(response, MAX_ANSWER_BYTES)
        except Exception as e:
            if was_cancelled(e):
                raise defer.CancelledError() from None  # our deadline: the caller reports it
            raise RetryablePushError(SERVICE, f"{url.rsplit('/', 1)[-1]}: {type(e).__name__}: {e}") from None
        try:
            answer = decode_json_object(raw, max_bytes=MAX_ANSWER_BYTES)
        except BadJSON:
            answer = None
        return response.code, answer, response.headers.getRawHeaders(b"retry-after", [None])[0]


@dataclass
class _GoogleError:
    status: str
    message: str
    codes: set[str]
    token_field: bool

    def exception(self, device: str, http_status: int, retry_after: bytes | None, size: int) -> Exception:
        named = " ".join(part for part in (f"HTTP {http_status}", self.status, "/".join(sorted(self.codes))) if part)
        said = f"{named}: {self.message}" if self.message else named
        if "UNREGISTERED" in self.codes:
            return DeviceGone(SERVICE, device, said)
        if self.status == "INVALID_ARGUMENT" and (self.token_field or "registration token" in self.message.lower()):
            return DeviceGone(SERVICE, device, said)
        if http_status == 429 or http_status >= 500 or self.codes & {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}:
            return RetryablePushError(SERVICE, said, retry_after_s=retry_after_seconds(retry_after))
        if "SENDER_ID_MISMATCH" in self.codes:
            return PermanentPushError(SERVICE, f"{said}: device {short_token(device)} belongs to another Firebase "
                                               "project, or [push] fcm_project_id is wrong")
        if self.status == "INVALID_ARGUMENT" and "too big" in self.message.lower():
            return PayloadTooLarge(SERVICE, size, MAX_PAYLOAD_BYTES)
        if http_status in (401, 403):
            return CredentialsRejected(SERVICE, f"FCM refused our credentials or project: {said}")
        return PermanentPushError(SERVICE, said)


def _google_error(answer: dict[str, Any] | None) -> _GoogleError:
    error = (answer or {}).get("error")
    if not isinstance(error, dict):
        return _GoogleError("", "", set(), False)
    codes, token_field = set(), False
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == _FCM_ERROR and isinstance(detail.get("errorCode"), str):
            codes.add(detail["errorCode"])
        if detail.get("@type") == _BAD_REQUEST:
            token_field = token_field or any(isinstance(v, dict) and v.get("field") == "message.token"
                                             for v in detail.get("fieldViolations") or [])
    return _GoogleError(str(error.get("status", "")), str(error.get("message", ""))[:300], codes, token_field)
