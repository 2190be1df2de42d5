"""
Getui (个推, Android devices, `apnsType=getui`; the device's `apnsToken` is its
Getui cid): REST API v2 over HTTPS (HTTP/1.1, treq).

Wire format (docs.getui.com/getui/server/rest_v2/token, .../push, .../code):

    POST {base}/v2/{appId}/auth
        {"sign": sha256_hex(appkey + timestamp + mastersecret), "timestamp": "<ms>", "appkey": ...}
      -> {"code": 0, "data": {"token": ..., "expire_time": "<ms>"}}     (a token lives a day)
    POST {base}/v2/{appId}/push/single/cid          header `token: <token>`
        {"request_id": <32 hex>, "settings": {"ttl": <ms>}, "audience": {"cid": [<cid>]},
         "push_message": {"notification": {"title", "body", "click_type", <the link>}}}
      -> {"code": 0, "data": {<taskid>: {<cid>: "successed_online" | ...}}}

The token is cached until an hour before `expire_time` (as Getui's own SDK
does) and fetched once however many pushes need it (auth is limited to 100
calls a minute). How the notification carries our `link`, `[push] getui_click_type`:

    payload   (default) the app starts and its Getui SDK receives, as the
              click payload, the push as JSON: {title, text, action, link,
              msgId, fromUserName, fromUserId, gender, data} -- the structure
              the original server pushed
    intent    an Android intent URI opening `getui_intent_component`
              (package/activity) with the link as its data:
              intent://<link after scheme>#Intent;scheme=<scheme>;launchFlags=0x14000000;component=...;end
    url       the link itself (Getui opens it; meant for http(s) links)
    startapp  just opens the app

Getui's field limits (characters): title 50, body 256, payload 3072, url 1024,
intent 4096. Title and body are shortened to fit (ending in "…"); a payload,
url or intent over its limit is refused before sending (PayloadTooLarge).
`[push] getui_vendor_channel` also fills push_channel.android.ups (the phone
makers' channels, for apps that integrated them).

Answers -> outcome:

    code 0                                      -> delivered to Getui
    code 10001 (token wrong/expired, HTTP 401)  -> new token, sent once more;
                                                   again -> CredentialsRejected
    code 20001 "target user is invalid"         -> DeviceGone (invalid cid, or
                                                   a cid of another app)
    auth answered with any non-zero code        -> CredentialsRejected
    10002 (app id or IP blacklisted), 10004, HTTP 403 (plan limits)
                                                -> CredentialsRejected
    10003, 10005 (rate limits), code 2 (starting), 301 (domain moved),
    HTTP 5xx, connection trouble, no answer     -> RetryablePushError
    other codes                                 -> PermanentPushError
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.outbound.http import read_bounded
from heihei.outbound.push_auth import Token, TokenCache
from heihei.outbound.push_errors import (
    CredentialsRejected, DeviceGone, PayloadTooLarge, PermanentPushError, RetryablePushError, clip_chars,
    retry_after_seconds, was_cancelled)

SERVICE = "getui"
DEFAULT_BASE_URL = "https://restapi.getui.com"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_TTL_S = 2 * 3600
MAX_TTL_S = 3 * 24 * 3600
#: Getui's SDK refreshes a token when less than an hour of its day is left
TOKEN_REFRESH_MARGIN_S = 3600
MAX_ANSWER_BYTES = 64 * 1024

MAX_TITLE_CHARS = 50
MAX_BODY_CHARS = 256
MAX_PAYLOAD_CHARS = 3072
MAX_URL_CHARS = 1024
MAX_INTENT_CHARS = 4096
CLICK_TYPES = ("payload", "intent", "url", "startapp")

#: the push fields the app gets back as the click payload
PAYLOAD_FIELDS = ("title", "text", "action", "link", "msgId", "fromUserName", "fromUserId", "gender", "data")

TOKEN_ERROR = 10001
DEAD_CID_MESSAGE = "target user is invalid"
_RETRYABLE_CODES = {2, 301, 10003, 10005}
_CREDENTIAL_CODES = {10002, 10004}


class GetuiPush:
    """`PushProvider` for Getui. `close()` closes its HTTP connections."""

    _log = Logger()

    def __init__(self, *, app_id: str, app_key: str, master_secret: str, base_url: str = DEFAULT_BASE_URL,
                 reactor, clock=None, now_s: Callable[[], float] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, ttl_s: int = DEFAULT_TTL_S, click_type: str = "payload",
                 intent_component: str = "", vendor_channel: bool = False, http: HTTPClient | None = None) -> None:
        if not (app_id and app_key and master_secret):
            raise ValueError("Getui needs an app id, an app key and a master secret")
        if click_type not in CLICK_TYPES:
            raise ValueError(f"Getui click_type is one of {', '.join(CLICK_TYPES)}, not {click_type!r}")
        if click_type == "intent" and "/" not in intent_component:
            raise ValueError("Getui click_type \"intent\" needs intent_component = \"<package>/<activity>\"")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"Getui ttl is 1 s to 3 days, not {ttl_s!r} s")
        self.app_id = app_id
        self.app_key = app_key
        self._master_secret = master_secret
        self.api = f"{base_url.rstrip('/')}/v2/{app_id}"
        self.clock = clock if clock is not None else reactor
        self.now_s = now_s if now_s is not None else self.clock.seconds
        self.timeout_s = timeout_s
        self.ttl_ms = int(ttl_s * 1000)
        self.click_type = click_type
        self.intent_component = intent_component
        self.vendor_channel = vendor_channel
        self._pool = None
        if http is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = 8
            http = HTTPClient(Agent(reactor, pool=self._pool, connectTimeout=timeout_s))
        self.http = http
        self.tokens = TokenCache(self._auth, self.now_s, refresh_margin_s=TOKEN_REFRESH_MARGIN_S)

    # --- PushProvider

    async def send(self, push: dict[str, Any]) -> None:
        cid = str(push.get("clientid") or "")
        if not cid or len(cid) > 128:
            raise DeviceGone(SERVICE, cid, "no usable Getui cid")
        body = self.request_body(push, cid)
        d = defer.Deferred.fromCoroutine(self._send(cid, body))
        d.addTimeout(self.timeout_s, self.clock)
        try:
            await d
        except defer.TimeoutError:
            raise RetryablePushError(SERVICE, f"no answer within {self.timeout_s} s") from None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    # --- building

    def request_body(self, push: dict[str, Any], cid: str) -> dict[str, Any]:
        notification = self.notification(push)
        message: dict[str, Any] = {
            "request_id": uuid.uuid4().hex,
            "settings": {"ttl": self.ttl_ms},
            "audience": {"cid": [cid]},
            "push_message": {"notification": notification},
        }
        if self.vendor_channel:
            message["push_channel"] = {"android": {"ups": {"notification": dict(notification)}}}
        return message

    def notification(self, push: dict[str, Any]) -> dict[str, Any]:
        link = str(push.get("link") or "")
        notification = {"title": clip_chars(str(push.get("title") or ""), MAX_TITLE_CHARS),
                        "body": clip_chars(str(push.get("text") or ""), MAX_BODY_CHARS),
                        "click_type": self.click_type}
        if self.click_type == "payload":
            payload = encode_json({k: push[k] for k in PAYLOAD_FIELDS if k in push}).decode("utf-8")
            notification["payload"] = _within(payload, MAX_PAYLOAD_CHARS, "payload")
        elif self.click_type == "intent":
            notification["intent"] = _within(intent_uri(link, self.intent_component), MAX_INTENT_CHARS, "intent")
        elif self.click_type == "url":
            notification["url"] = _within(link, MAX_URL_CHARS, "url")
        return notification

    # --- sending

    async def _send(self, cid: str, body: dict[str, Any]) -> None:
        for attempt in (1, 2):
            token = await self.tokens.get()
            status, answer, headers = await self._post("/push/single/cid", body, token)
            code = answer.get("code") if answer is not None else None
            if status == 200 and code == 0:
                return
            msg = str(answer.get("msg", ""))[:200] if answer is not None else ""
            if code == TOKEN_ERROR:
                self.tokens.invalidate(token)
                if attempt == 1:
                    continue
                raise CredentialsRejected(SERVICE, f"Getui refused a token it had just given us: {msg}")
            raise _error(cid, status, code, msg, headers.getRawHeaders(b"retry-after", [None])[0])

    async def _auth(self) -> Token:
        d = defer.Deferred.fromCoroutine(self._ask_token())
        d.addTimeout(self.timeout_s, self.clock)
        try:
            return await d
        except defer.TimeoutError:
            raise RetryablePushError(SERVICE, f"auth: no answer within {self.timeout_s} s") from None

    async def _ask_token(self) -> Token:
        timestamp = str(int(self.now_s() * 1000))
        sign = hashlib.sha256((self.app_key + timestamp + self._master_secret).encode("utf-8")).hexdigest()
        status, answer, _headers = await self._post("/auth", {"sign": sign, "timestamp": timestamp,
                                                              "appkey": self.app_key})
        if status >= 500 or answer is None:
            raise RetryablePushError(SERVICE, f"auth: HTTP {status}")
        code, msg = answer.get("code"), str(answer.get("msg", ""))[:200]
        if code in _RETRYABLE_CODES:
            raise RetryablePushError(SERVICE, f"auth: code {code} {msg}".strip())
        data = answer.get("data")
        if code != 0 or not isinstance(data, dict):
            raise CredentialsRejected(SERVICE, f"Getui refused our app key / master secret: "
                                               f"HTTP {status}, code {code} {msg}".strip())
        token, expire_ms = data.get("token"), data.get("expire_time")
        try:
            expires_at_s = int(expire_ms) / 1000
        except (TypeError, ValueError):
            expires_at_s = 0
        if not isinstance(token, str) or not token or expires_at_s <= self.now_s():
            raise RetryablePushError(SERVICE, "auth: an answer without a usable token")
        self._log.info("Getui token obtained, valid for {hours:.1f} h", hours=(expires_at_s - self.now_s()) / 3600)
        return Token(token, expires_at_s)

    async def _post(self, path: str, body: dict[str, Any], token: str | None = None):
        headers = {b"Content-Type": [b"application/json;charset=utf-8"]}
        if token is not None:
            headers[b"token"] = [token.encode("utf-8")]
        try:
            response = await self.http.post(self.api + path, data=encode_json(body), headers=headers,
                                            unbuffered=True)
            raw = await read_bounded(response, MAX_ANSWER_BYTES)
        except Exception as e:
            if was_cancelled(e):
                raise defer.CancelledError() from None  # our deadline: the caller reports it
            raise RetryablePushError(SERVICE, f"{path}: {type(e).__name__}: {e}") from None
        try:
            answer = decode_json_object(raw, max_bytes=MAX_ANSWER_BYTES)
        except BadJSON:
            answer = None
        return response.code, answer, response.headers


def intent_uri(link: str, component: str) -> str:
    """An Android intent URI that opens `component` with `link` as its data."""
    scheme, sep, rest = link.partition("://")
    if not sep or not scheme:
        raise PermanentPushError(SERVICE, f"the link {link[:80]!r} has no scheme to build an intent from")
    if any(c in component for c in ";#"):
        raise ValueError(f"not an Android component: {component!r}")
    return f"intent://{rest}#Intent;scheme={scheme};launchFlags=0x14000000;component={component};end"


def _within(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise PayloadTooLarge(SERVICE, len(value), limit, what=f"the notification's {what}", unit="characters")
    return value


def _error(cid: str, status: int, code: Any, msg: str, retry_after: bytes | None) -> Exception:
    said = f"HTTP {status}, code {code}: {msg}"
    if code == 20001 and DEAD_CID_MESSAGE in msg.lower():
        return DeviceGone(SERVICE, cid, said)
    if code in _RETRYABLE_CODES or status >= 500 or status == 429:
        return RetryablePushError(SERVICE, said, retry_after_s=retry_after_seconds(retry_after))
    if code in _CREDENTIAL_CODES or status == 403:
        return CredentialsRejected(SERVICE, f"Getui refused our app or plan: {said}")
    return PermanentPushError(SERVICE, said)
