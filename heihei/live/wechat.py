"""
WeChat web login for the live realm: a `code` from WeChat's OAuth2 redirect
becomes a user.

Behind the small `LoginProvider` interface (one coroutine, `exchange(code)`)
so the protocol never knows where users come from. `WeChatLogin` puts it on
the node's WeChat client (`heihei.outbound.wechat`, configured by `[live]
wechat_api`, `wechat_appid`, `wechat_secret`, `wechat_timeout_s`): every way
the exchange can go wrong (an errcode, HTTP status, bad or oversized JSON,
connection failure, the whole exchange taking longer than `wechat_timeout_s`
on the node's clock) raises `LoginFailed`, which the protocol answers with
-1009. The secret travels in a query string, so URLs are never logged.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol as TypingProtocol

from heihei.outbound.wechat import WeChatApi, WeChatError, WeChatUser

MAX_NICKNAME_CHARS = 100
MAX_HEADIMGURL_CHARS = 2048

__all__ = ["LoginFailed", "LoginProvider", "WeChatLogin", "WeChatUser"]


class LoginFailed(Exception):
    """The code did not become a user; `reason` is for logs, not for clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoginProvider(TypingProtocol):
    async def exchange(self, code: str) -> WeChatUser:
        """The user behind an OAuth2 `code`, or `LoginFailed`."""


class WeChatLogin:
    """`LoginProvider` over a WeChat client: its errors become `LoginFailed`."""

    def __init__(self, wechat: WeChatApi) -> None:
        self.wechat = wechat

    @property
    def configured(self) -> bool:
        return self.wechat.configured

    async def exchange(self, code: str) -> WeChatUser:
        if not self.configured:
            raise LoginFailed("WeChat login is not configured ([live] wechat_appid and wechat_secret)")
        try:
            user = await self.wechat.exchange_code(code)
        except WeChatError as e:
            raise LoginFailed(e.reason) from None
        return dataclasses.replace(user, nickname=user.nickname[:MAX_NICKNAME_CHARS],
                                   headimgurl=user.headimgurl[:MAX_HEADIMGURL_CHARS])
