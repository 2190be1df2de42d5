"""
WeChat's API: one client for both uses, at a configurable base URL.

- `exchange_code(code)`: web OAuth2, for the live realm's Login. Needs the
  app's appid and secret.
  1. `GET {api}/sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`
     -> `{"access_token", "openid", ...}`
  2. `userinfo(access_token, openid)`
- `userinfo(access_token, openid)`: for the heihei app's sign-in, whose client
  already holds a token.
  `GET {api}/sns/userinfo?access_token&openid&lang=zh_CN`
  -> `{"openid", "nickname", "sex", "headimgurl", "unionid", ...}`

WeChat answers errors with HTTP 200 and `{"errcode": n, "errmsg": ...}`. Two
errors, so each caller keeps its own mapping:

    WeChatRejected     WeChat said no: an errcode, a token without openid, the userinfo
                       of another openid (`errmsg` is WeChat's own words, may be "")
    WeChatUnavailable  no usable answer: not configured, unreachable, HTTP status not
                       200, too large, not a JSON object, fields of the wrong type, or the
                       whole exchange (both calls of `exchange_code`) not done in `timeout_s`

Their `reason` starts with the path and never contains a URL: the secret
travels in a query string, so URLs are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from heihei.outbound.http import HttpClient, OutboundError, TimedOut

#: WeChat's answers are a few hundred bytes; anything this big is not one
MAX_BODY_BYTES = 64 * 1024
ACCESS_TOKEN_PATH = "/sns/oauth2/access_token"
USERINFO_PATH = "/sns/userinfo"


class WeChatError(Exception):
    """`reason` is for logs, not for clients."""

    def __init__(self, reason: str, errmsg: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.errmsg = errmsg


class WeChatRejected(WeChatError):
    pass


class WeChatUnavailable(WeChatError):
    pass


@dataclass(frozen=True)
class WeChatUser:
    """Who WeChat says the user is (untruncated: each caller applies its own limits)."""

    openid: str
    nickname: str
    headimgurl: str
    unionid: str = ""
    sex: int = 0  # 1 male, 2 female, 0 unknown


class WeChatApi(Protocol):
    #: whether `exchange_code` can work (an appid and a secret are set)
    configured: bool

    async def exchange_code(self, code: str) -> WeChatUser:
        """The user behind a web OAuth2 `code`; `WeChatRejected` or `WeChatUnavailable`."""

    async def userinfo(self, access_token: str, openid: str) -> WeChatUser:
        """The user `openid` as `access_token` shows them; `WeChatRejected` or `WeChatUnavailable`."""


class NoWeChat:
    """No WeChat app configured: every call is `WeChatUnavailable`, nothing is sent."""

    configured = False

    async def exchange_code(self, code: str) -> WeChatUser:
        raise WeChatUnavailable("WeChat is not configured")

    async def userinfo(self, access_token: str, openid: str) -> WeChatUser:
        raise WeChatUnavailable("WeChat is not configured")


class WeChatClient:
    """The real WeChat API (or anything speaking it at `api_base`)."""

    def __init__(self, http: HttpClient, api_base: str, *, appid: str = "", secret: str = "", timeout_s: float,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.http = http
        self.api_base = api_base.rstrip("/")
        self.appid = appid
        self.secret = secret
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes

    @property
    def configured(self) -> bool:
        return bool(self.appid and self.secret)

    async def exchange_code(self, code: str) -> WeChatUser:
        if not self.configured:
            raise WeChatUnavailable("WeChat web login is not configured (no appid or secret)")
        deadline = self.http.clock.seconds() + self.timeout_s
        token = await self._call(ACCESS_TOKEN_PATH, {"appid": self.appid, "secret": self.secret, "code": code,
                                                     "grant_type": "authorization_code"}, deadline)
        access_token, openid = token.get("access_token"), token.get("openid")
        if not _nonempty(access_token) or not _nonempty(openid):
            raise WeChatRejected("access_token answer without access_token or openid")
        return await self._userinfo(access_token, openid, deadline)

    async def userinfo(self, access_token: str, openid: str) -> WeChatUser:
        return await self._userinfo(access_token, openid, self.http.clock.seconds() + self.timeout_s)

    async def _userinfo(self, access_token: str, openid: str, deadline: float) -> WeChatUser:
        info = await self._call(USERINFO_PATH, {"access_token": access_token, "openid": openid, "lang": "zh_CN"},
                                deadline)
        if info.get("openid") != openid:
            raise WeChatRejected(f"{USERINFO_PATH}: the answer is about another openid")
        nickname, headimgurl, unionid = info.get("nickname", ""), info.get("headimgurl", ""), info.get("unionid", "")
        if not all(isinstance(v, str) for v in (nickname, headimgurl, unionid)):
            raise WeChatUnavailable(f"{USERINFO_PATH}: fields of the wrong type")
        sex = info.get("sex")
        sex = sex if isinstance(sex, int) and not isinstance(sex, bool) else 0
        return WeChatUser(openid=openid, nickname=nickname, headimgurl=headimgurl, unionid=unionid, sex=sex)

    async def _call(self, path: str, params: dict[str, str], deadline: float) -> dict[str, Any]:
        left = deadline - self.http.clock.seconds()
        try:
            if left <= 0:
                raise TimedOut(self.timeout_s)
            status, answer = await self.http.get_json(self.api_base + path, params=params, timeout_s=left,
                                                      max_bytes=self.max_body_bytes)
        except TimedOut:
            raise WeChatUnavailable(f"WeChat did not answer within {self.timeout_s} s") from None
        except OutboundError as e:
            raise WeChatUnavailable(f"{path}: {e.reason}") from None
        if status != 200:
            raise WeChatUnavailable(f"{path}: HTTP {status}")
        errcode = answer.get("errcode", 0)
        if errcode not in (0, None):
            errmsg = answer.get("errmsg")
            errmsg = errmsg[:200] if isinstance(errmsg, str) else ""
            raise WeChatRejected(f"{path}: errcode {str(errcode)[:20]}: {errmsg}", errmsg)
        return answer


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and bool(value) and len(value) <= 512
