"""
The authentication hook for J-IM's `?username=&password=` handshake.

J-IM left logins to a pluggable processor; here it is an HTTP call to the
app back end (`[jim] auth_url`): `POST {"username": ..., "password": ...}` as
JSON. A 2xx answer whose JSON object has a non-empty `userId` accepts the
login as that user (optional `nick` and `avatar` update the user's record);
anything else, including a timeout or a broken answer, refuses it. With
`[jim] auth_secret` the request carries `X-Heihei-Timestamp` (Unix seconds)
and `X-Heihei-Signature`, the hex HMAC-SHA256 of `"<timestamp>.<body>"`, so
the back end can tell the call comes from us.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.outbound.http import read_bounded

#: the hook's answer is small; anything bigger is refused unread
MAX_ANSWER_BYTES = 64 * 1024
MAX_ID_CHARS = 128


@dataclass(frozen=True)
class Identity:
    user: str
    nick: str | None = None
    avatar: str | None = None


class AuthHook:
    _log = Logger()

    def __init__(self, url: str, *, secret: str = "", timeout_s: float = 5.0, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.url = url
        self.secret = secret.encode("utf-8")
        self.timeout_s = timeout_s
        self.reactor = reactor
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 4
        self.client = HTTPClient(Agent(reactor, pool=self.pool))

    async def check(self, username: str, password: str) -> Identity | None:
        """The identity the back end vouches for, or None (refused, broken or too slow)."""
        d = defer.Deferred.fromCoroutine(self._ask(username, password))
        d.addTimeout(self.timeout_s, self.reactor)
        try:
            return await d
        except defer.TimeoutError:
            self._log.warn("jim authentication hook did not answer within {s} s", s=self.timeout_s)
        except Exception as e:
            self._log.warn("jim authentication hook failed: {why}", why=repr(e))
        return None

    async def _ask(self, username: str, password: str) -> Identity | None:
        body = encode_json({"username": username, "password": password})
        headers = {b"Content-Type": [b"application/json"]}
        if self.secret:
            stamp = str(int(self.reactor.seconds())).encode()
            signature = hmac.new(self.secret, stamp + b"." + body, hashlib.sha256).hexdigest()
            headers[b"X-Heihei-Timestamp"] = [stamp]
            headers[b"X-Heihei-Signature"] = [signature.encode()]
        response = await self.client.post(self.url, data=body, headers=headers, reactor=self.reactor,
                                          unbuffered=True)
        answer_body = await read_bounded(response, MAX_ANSWER_BYTES)
        if not 200 <= response.code < 300:
            return None
        try:
            answer = decode_json_object(answer_body, max_bytes=MAX_ANSWER_BYTES)
        except BadJSON:
            return None
        user = answer.get("userId")
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str) or not user or len(user) > MAX_ID_CHARS:
            return None
        nick = answer.get("nick") if isinstance(answer.get("nick"), str) else None
        avatar = answer.get("avatar") if isinstance(answer.get("avatar"), str) else None
        return Identity(user, nick=nick, avatar=avatar)

    async def close(self) -> None:
        await self.pool.closeCachedConnections()
