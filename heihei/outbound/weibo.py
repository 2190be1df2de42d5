"""
Weibo's API, for the heihei app's sign-in, at a configurable base URL
(`[heihei] weibo_api_url`):

1. `GET {base}/2/account/get_uid.json?access_token=` -> `{"uid"}`
2. `GET {base}/2/users/show.json?access_token=&uid=` -> `{"screen_name", "gender",
   "avatar_large", "profile_image_url", "description", ...}`

Two errors, so the caller keeps its own mapping:

    WeiboRejected     Weibo said no: an error answer (any HTTP status but 200, or an
                      `error_code`), a token of another user than the client's `openId`
    WeiboUnavailable  no usable answer: unreachable, too large, not a JSON object, too slow

`reason` is for logs and never contains a URL (the token is in the query string).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from heihei.outbound.http import HttpClient, OutboundError
from heihei.textnum import is_digits

#: the most bytes read from one of Weibo's answers
MAX_ANSWER_BYTES = 256 * 1024


class WeiboError(Exception):
    """`reason` is for logs; `error` is Weibo's own words, may be ""."""

    def __init__(self, reason: str, error: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class WeiboRejected(WeiboError):
    pass


class WeiboUnavailable(WeiboError):
    pass


@dataclass(frozen=True)
class WeiboUser:
    """Who Weibo says the user is; text fields are "" when Weibo sent none (or not text), untruncated."""

    uid: str
    screen_name: str
    gender: str  # "m" | "f" | anything else: unspecified
    avatar: str  # avatar_large, else profile_image_url
    description: str


class WeiboApi(Protocol):
    async def verify(self, access_token: str, open_id: str | None) -> WeiboUser:
        """The owner of `access_token` (who must be `open_id` if given); `WeiboRejected` or `WeiboUnavailable`."""


class WeiboClient:
    def __init__(self, http: HttpClient, base_url: str, *, timeout_s: float,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_answer_bytes = max_answer_bytes

    async def verify(self, access_token: str, open_id: str | None) -> WeiboUser:
        status, got = await self._get("/2/account/get_uid.json", {"access_token": access_token})
        uid = got.get("uid")
        if status != 200 or isinstance(uid, bool) or not isinstance(uid, (int, str)) or not is_digits(str(uid)):
            raise WeiboRejected(f"get_uid: HTTP {status}, no uid", _text(got.get("error")))
        uid = str(uid)
        if open_id and open_id != uid:
            raise WeiboRejected("openId is not the token's user", "openId is not the token's user")
        status, user = await self._get("/2/users/show.json", {"access_token": access_token, "uid": uid})
        if status != 200 or user.get("error_code"):
            raise WeiboRejected(f"users/show: HTTP {status}, error_code {str(user.get('error_code'))[:20]}",
                                _text(user.get("error")))
        return WeiboUser(uid=uid, screen_name=_text(user.get("screen_name")), gender=_text(user.get("gender")),
                         avatar=_text(user.get("avatar_large")) or _text(user.get("profile_image_url")),
                         description=_text(user.get("description")))

    async def _get(self, path: str, params: dict[str, str]) -> tuple[int, dict]:
        try:
            return await self.http.get_json(self.base_url + path, params=params, timeout_s=self.timeout_s,
                                            max_bytes=self.max_answer_bytes)
        except OutboundError as e:
            raise WeiboUnavailable(f"{path}: {e.reason}") from None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
