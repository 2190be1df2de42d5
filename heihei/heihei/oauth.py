"""
Sign-in with WeChat and Weibo: the client's `accountToken` (and WeChat
`openId`) are checked with the provider's own API through the node's outbound
clients (`heihei.outbound.wechat` / `weibo`, at base URLs from `[heihei]
wechat_api_url` / `weibo_api_url`; tests run fakes on loopback). This module
maps their answers to the app's errors:

- WeChat: `/sns/userinfo?access_token=&openid=` must answer the same
  `openid` (and gives nickname, sex, headimgurl, unionid); anything else → 702.
- Weibo: `/2/account/get_uid.json` gives the `uid` (an error → 701);
  `/2/users/show.json` gives screen_name, gender, avatar, description. A
  client `openId` that is not that uid → 701.

A provider that cannot be reached or answers garbage is not a rejection: 400
业务失败 with the reason, and the log says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.logger import Logger

from heihei.core.errors import Refused
from heihei.heihei.errors import BAD_OPENID, BUSINESS_FAILED, WEIBO_REJECTED
from heihei.outbound.wechat import WeChatApi, WeChatRejected, WeChatUnavailable
from heihei.outbound.weibo import WeiboApi, WeiboRejected, WeiboUnavailable


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

    def __init__(self, client: WeChatApi) -> None:
        self.client = client

    async def verify(self, access_token: str, open_id: str) -> External:
        try:
            user = await self.client.userinfo(access_token, open_id)
        except WeChatRejected as e:
            raise Refused(BAD_OPENID, _text(e.errmsg, 120) or "WeChat rejected the token") from None
        except WeChatUnavailable as e:
            self._log.warn("WeChat userinfo failed: {why}", why=e.reason)
            raise Refused(BUSINESS_FAILED, "WeChat is not reachable") from None
        gender = "Male" if user.sex == 1 else "Female" if user.sex == 2 else "Unspecified"
        return External("Wechat", open_id, _text(user.unionid, 128), _text(user.nickname, 64),
                        _text(user.headimgurl, 1024), gender)


class Weibo:
    _log = Logger()

    def __init__(self, client: WeiboApi) -> None:
        self.client = client

    async def verify(self, access_token: str, open_id: str | None) -> External:
        try:
            user = await self.client.verify(access_token, open_id)
        except WeiboRejected as e:
            raise Refused(WEIBO_REJECTED, _text(e.error, 120) or "Weibo rejected the token") from None
        except WeiboUnavailable as e:
            self._log.warn("Weibo API failed: {why}", why=e.reason)
            raise Refused(BUSINESS_FAILED, "Weibo is not reachable") from None
        gender = "Male" if user.gender == "m" else "Female" if user.gender == "f" else "Unspecified"
        return External("Weibo", user.uid, "", _text(user.screen_name, 64), _text(user.avatar, 1024), gender,
                        _text(user.description, 512))
