"""
Sign-in with WeChat and Weibo: the client's `accountToken` (and WeChat
`openId`) are checked with the provider's own API through treq, at base URLs
from `[heihei] wechat_api_url` / `weibo_api_url` (tests run fakes on loopback).

- WeChat: `GET {base}/sns/userinfo?access_token=&openid=` must answer the same
  `openid` (and gives nickname, sex, headimgurl, unionid); anything else → 702.
- Weibo: `GET {base}/2/account/get_uid.json?access_token=` gives the `uid`
  (an error → 701); `GET {base}/2/users/show.json?access_token=&uid=` gives
  screen_name, gender, avatar, description. A client `openId` that is not that
  uid → 701.

A provider that cannot be reached or answers garbage is not a rejection: 400
业务失败 with the reason, and the log says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import treq
from twisted.logger import Logger

from heihei.jsonsafe import BadJSON, decode_json_object
from heihei.heihei.errors import ApiError, BAD_OPENID, BAD_SIGNATURE, BUSINESS_FAILED
from heihei.outbound.http import read_bounded

#: the most bytes read from a provider's answer
MAX_ANSWER_BYTES = 256 * 1024


class Unreachable(Exception):
    pass


async def get_json(url: str, timeout_s: float, http=treq) -> tuple[int, dict]:
    """GET a JSON object, reading at most MAX_ANSWER_BYTES; raises Unreachable."""
    from twisted.internet import reactor

    try:
        response = await http.get(url, timeout=timeout_s, unbuffered=True)
        # treq's timeout covers the headers only: a stalled body needs its own deadline
        body = await read_bounded(response, MAX_ANSWER_BYTES).addTimeout(timeout_s, reactor)
    except Exception as e:
        raise Unreachable(f"{type(e).__name__}: {e}") from e
    try:
        return response.code, decode_json_object(body, max_bytes=MAX_ANSWER_BYTES)
    except BadJSON as e:
        raise Unreachable(f"HTTP {response.code}, not a JSON object: {e.reason}") from None


@dataclass(frozen=True)
class External:
    """Who the provider says the user is."""

    source: str  # "Wechat" | "Weibo"
    external_id: str  # WeChat openid / Weibo uid
    union_id: str
    display_name: str
    cover_url: str
    gender: str  # Male | Female | Unspecified
    description: str = ""


def _text(value, limit: int = 256) -> str:
    return value[:limit] if isinstance(value, str) else ""


class WeChat:
    _log = Logger()

    def __init__(self, base_url: str, timeout_s: float, http=treq) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = http

    async def verify(self, access_token: str, open_id: str) -> External:
        url = f"{self.base_url}/sns/userinfo?" + urlencode({"access_token": access_token, "openid": open_id,
                                                            "lang": "zh_CN"})
        try:
            code, info = await get_json(url, self.timeout_s, self.http)
        except Unreachable as e:
            self._log.warn("WeChat userinfo failed: {why}", why=str(e))
            raise ApiError(BUSINESS_FAILED, "WeChat is not reachable") from None
        if info.get("errcode") or info.get("openid") != open_id:
            raise ApiError(BAD_OPENID, _text(info.get("errmsg"), 120) or "WeChat rejected the token")
        sex = info.get("sex")
        gender = "Male" if sex == 1 else "Female" if sex == 2 else "Unspecified"
        return External("Wechat", open_id, _text(info.get("unionid"), 128), _text(info.get("nickname"), 64),
                        _text(info.get("headimgurl"), 1024), gender)


class Weibo:
    _log = Logger()

    def __init__(self, base_url: str, timeout_s: float, http=treq) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = http

    async def verify(self, access_token: str, open_id: str | None) -> External:
        try:
            code, got = await get_json(f"{self.base_url}/2/account/get_uid.json?"
                                       + urlencode({"access_token": access_token}), self.timeout_s, self.http)
            uid = got.get("uid")
            if code != 200 or isinstance(uid, bool) or not isinstance(uid, (int, str)) or not str(uid).isdigit():
                raise ApiError(BAD_SIGNATURE, _text(got.get("error"), 120) or "Weibo rejected the token",
                               message="weibo token无效")
            uid = str(uid)
            if open_id and open_id != uid:
                raise ApiError(BAD_SIGNATURE, "openId is not the token's user", message="weibo token无效")
            code, user = await get_json(f"{self.base_url}/2/users/show.json?"
                                        + urlencode({"access_token": access_token, "uid": uid}),
                                        self.timeout_s, self.http)
        except Unreachable as e:
            self._log.warn("Weibo API failed: {why}", why=str(e))
            raise ApiError(BUSINESS_FAILED, "Weibo is not reachable") from None
        if code != 200 or user.get("error_code"):
            raise ApiError(BAD_SIGNATURE, _text(user.get("error"), 120) or "Weibo rejected the token",
                           message="weibo token无效")
        g = user.get("gender")
        gender = "Male" if g == "m" else "Female" if g == "f" else "Unspecified"
        cover = _text(user.get("avatar_large"), 1024) or _text(user.get("profile_image_url"), 1024)
        return External("Weibo", uid, "", _text(user.get("screen_name"), 64), cover, gender,
                        _text(user.get("description"), 512))
