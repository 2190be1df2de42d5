"""
WeChat web login: a `code` from WeChat's OAuth2 redirect becomes a user.

Behind the small `LoginProvider` interface (one coroutine, `exchange(code)`)
so the protocol never knows where users come from. `WeChatOAuth` talks to the
real API through treq:

1. `GET {api}/sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`
   -> `{"access_token", "openid", ...}`
2. `GET {api}/sns/userinfo?access_token&openid&lang=zh_CN`
   -> `{"openid", "nickname", "headimgurl", ...}`

WeChat answers errors with HTTP 200 and `{"errcode": n, "errmsg": ...}`.
Every way this can go wrong (errcode, HTTP status, bad or oversized JSON,
connection failure, the whole exchange taking longer than `timeout_s` on the
injected clock) raises `LoginFailed`, which the protocol answers with -1009.
The secret travels in a query string, so URLs are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol as TypingProtocol

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from heihei.jsonsafe import BadJSON, decode_json_object
from heihei.outbound.http import read_bounded

#: WeChat's answers are a few hundred bytes; anything this big is not one
MAX_BODY_BYTES = 64 * 1024


class LoginFailed(Exception):
    """The code did not become a user; `reason` is for logs, not for clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WeChatUser:
    openid: str
    nickname: str
    headimgurl: str
    unionid: str = ""


class LoginProvider(TypingProtocol):
    async def exchange(self, code: str) -> WeChatUser:
        """The user behind an OAuth2 `code`, or `LoginFailed`."""


class WeChatOAuth:
    """The real WeChat web OAuth2 API (or anything speaking it at `api_base`)."""

    _log = Logger()

    def __init__(self, appid: str, secret: str, api_base: str, *, timeout_s: float, reactor, clock,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.appid = appid
        self.secret = secret
        self.api_base = api_base.rstrip("/")
        self.timeout_s = timeout_s
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        # one connection per call: logins are rare, and nothing lingers at shutdown
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=timeout_s))

    @property
    def configured(self) -> bool:
        return bool(self.appid and self.secret)

    async def exchange(self, code: str) -> WeChatUser:
        if not self.configured:
            raise LoginFailed("WeChat login is not configured ([live] wechat_appid and wechat_secret)")
        d = defer.Deferred.fromCoroutine(self._exchange(code))
        d.addTimeout(self.timeout_s, self.clock)
        try:
            return await d
        except defer.TimeoutError:
            raise LoginFailed(f"WeChat did not answer within {self.timeout_s} s") from None

    async def _exchange(self, code: str) -> WeChatUser:
        token = await self._call("/sns/oauth2/access_token", {
            "appid": self.appid, "secret": self.secret, "code": code, "grant_type": "authorization_code"})
        access_token, openid = token.get("access_token"), token.get("openid")
        if not _nonempty(access_token) or not _nonempty(openid):
            raise LoginFailed("access_token answer without access_token or openid")
        info = await self._call("/sns/userinfo", {"access_token": access_token, "openid": openid, "lang": "zh_CN"})
        if info.get("openid", openid) != openid:
            raise LoginFailed("userinfo is about another openid")
        nickname, headimgurl, unionid = info.get("nickname", ""), info.get("headimgurl", ""), info.get("unionid", "")
        if not all(isinstance(v, str) for v in (nickname, headimgurl, unionid)):
            raise LoginFailed("userinfo fields of the wrong type")
        return WeChatUser(openid=openid, nickname=nickname[:100], headimgurl=headimgurl[:2048], unionid=unionid)

    async def _call(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self.http.get(self.api_base + path, params=params, unbuffered=True)
        except defer.CancelledError:
            raise
        except Exception as e:
            raise LoginFailed(f"{path}: {type(e).__name__}: {e}") from None
        try:
            body = await read_bounded(response, self.max_body_bytes)
        except defer.CancelledError:
            raise
        except Exception as e:
            raise LoginFailed(f"{path}: reading the answer failed: {e}") from None
        if response.code != 200:
            raise LoginFailed(f"{path}: HTTP {response.code}")
        try:
            answer = decode_json_object(body, max_bytes=self.max_body_bytes)
        except BadJSON as e:
            raise LoginFailed(f"{path}: {e.reason}") from None
        errcode = answer.get("errcode", 0)
        if errcode not in (0, None):
            raise LoginFailed(f"{path}: errcode {errcode}: {str(answer.get('errmsg', ''))[:200]}")
        return answer


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and bool(value) and len(value) <= 512
