"""
The authentication hook for J-IM's `?username=&password=` handshake.

J-IM left logins to a pluggable processor; here it is an HTTP call to the
app back end (`[jim] auth_url`): `POST {"username": ..., "password": ...}` as
JSON. A 2xx answer whose JSON object has a non-empty `userId` accepts the
login as that user (optional `nick` and `avatar` update the user's record);
anything else, including no answer within `[jim] auth_timeout_s`, or a broken
one, refuses it. With `[jim] auth_secret` the request carries
`X-Heihei-Timestamp` (Unix seconds, from the node's clock) and
`X-Heihei-Signature`, the hex HMAC-SHA256 of `"<timestamp>.<body>"`, so the
back end can tell the call comes from us.

Without `[jim] auth_url` there is no hook: the realm refuses such logins (or,
explicitly insecure, accepts the username), see `heihei.jim.service`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from twisted.logger import Logger

from heihei.jsonsafe import encode_json
from heihei.outbound.http import HttpClient, NotJson, OutboundError, TimedOut

#: the hook's answer is small; anything bigger is refused unread
MAX_ANSWER_BYTES = 64 * 1024
MAX_ID_CHARS = 128


@dataclass(frozen=True)
class Identity:
    user: str
    nick: str | None = None
    avatar: str | None = None


class AuthHook(Protocol):
    async def check(self, username: str, password: str) -> Identity | None:
        """The identity the back end vouches for, or None (refused, broken or too slow); never raises."""


class HttpAuthHook:
    _log = Logger()

    def __init__(self, http: HttpClient, url: str, *, secret: str = "", timeout_s: float = 5.0) -> None:
        self.http = http
        self.url = url
        self.secret = secret.encode("utf-8")
        self.timeout_s = timeout_s

    async def check(self, username: str, password: str) -> Identity | None:
        body = encode_json({"username": username, "password": password})
        headers = {}
        if self.secret:
            stamp = str(int(self.http.clock.seconds())).encode()
            signature = hmac.new(self.secret, stamp + b"." + body, hashlib.sha256).hexdigest()
            headers[b"X-Heihei-Timestamp"] = [stamp]
            headers[b"X-Heihei-Signature"] = [signature.encode()]
        try:
            status, answer = await self.http.post_json(self.url, body, headers=headers, timeout_s=self.timeout_s,
                                                       max_bytes=MAX_ANSWER_BYTES)
        except NotJson:
            return None
        except TimedOut:
            self._log.warn("jim authentication hook did not answer within {s} s", s=self.timeout_s)
            return None
        except OutboundError as e:
            self._log.warn("jim authentication hook failed: {why}", why=e.reason)
            return None
        if not 200 <= status < 300:
            return None
        user = answer.get("userId")
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str) or not user or len(user) > MAX_ID_CHARS:
            return None
        nick = answer.get("nick") if isinstance(answer.get("nick"), str) else None
        avatar = answer.get("avatar") if isinstance(answer.get("avatar"), str) else None
        return Identity(user, nick=nick, avatar=avatar)
