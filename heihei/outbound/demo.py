"""
The demo profile's stand-ins for WeChat and the SMS gateway (`twistd heihei --demo` only).

They send nothing anywhere, like the `log` SMS provider: `DemoWeChat` accepts any OAuth `code`
and makes up a user from it (the same code is always the same user, so two browser tabs can be
two people), for the live realm's Login and the heihei app's WeChat sign-in alike; `DemoSms` logs each code and keeps the latest one per phone so the demo page can
show it (`GET /demo/sms-code` on the loopback-only demo node). `Outbound.from_settings` builds
them only when `[server] demo` is on; no setting selects them otherwise.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from twisted.logger import Logger

from heihei.outbound.wechat import WeChatRejected, WeChatUser

#: the codes kept for the page: the most recent phones, oldest forgotten first
DEMO_SMS_KEPT = 1000
#: a made-up user's nickname is the code, cut to this many characters
DEMO_NICKNAME_CHARS = 32


def demo_openid(code: str) -> str:
    """The made-up openid of the user behind `code` (stable, so a code is always the same user)."""
    return "demo-" + hashlib.sha256(code.encode("utf-8", "surrogateescape")).hexdigest()[:20]


class DemoWeChat:
    """WeChat web login without WeChat: the `code` names the user."""

    configured = True

    async def exchange_code(self, code: str) -> WeChatUser:
        nickname = code.strip()[:DEMO_NICKNAME_CHARS]
        if not nickname:
            raise WeChatRejected("demo WeChat: an empty code names nobody")
        return WeChatUser(openid=demo_openid(code), nickname=nickname, headimgurl="")

    async def userinfo(self, access_token: str, openid: str) -> WeChatUser:
        # the heihei app's sign-in: the app names the openid; the access token is the nickname
        user = await self.exchange_code(access_token)
        return WeChatUser(openid=openid or user.openid, nickname=user.nickname, headimgurl="")


class DemoSms:
    """Keeps the latest code per phone for the demo page (`GET /demo/sms-code`); the log line says a code
    was sent, never the code (a verification code is a secret in every log line)."""

    _log = Logger()

    def __init__(self, kept: int = DEMO_SMS_KEPT) -> None:
        self.kept = kept
        self._latest: OrderedDict[str, str] = OrderedDict()

    async def send(self, phone: str, code: str, text: str) -> None:
        self._log.info("demo SMS to {phone}: a code, kept for GET /demo/sms-code", phone=phone)
        self._latest.pop(phone, None)
        self._latest[phone] = code
        while len(self._latest) > self.kept:
            self._latest.popitem(last=False)

    def latest(self, phone: str) -> str | None:
        """The last code sent to `phone` (still to be checked by the sign-in, which may refuse it)."""
        return self._latest.get(phone)
