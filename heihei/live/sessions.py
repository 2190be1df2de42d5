"""
Login tokens: what `Login` hands out and `CheckLogin`/`Message` accept.

A token is 32 random bytes (URL-safe base64), stored in Redis, so it is valid
on every node. The stored record carries its expiry, checked against the
injected clock (tests drive it with `task.Clock`); Redis also expires the key
itself (`PX`) so abandoned tokens do not pile up. The record carries the
profile WeChat gave at login (nickname, avatar), which is what a message
shows: a later rename shows after the next login.

Layout: `live:token:<token>` STRING JSON `{"u","n","h","x"}` (user, nickname,
headimgurl, expiry ms).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import orjson

from heihei.store.keys import key

#: a longer "token" is not one of ours: refused without asking Redis
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True)
class Session:
    token: str
    user: str
    nickname: str
    headimgurl: str
    expires_ms: int


def token_key(token: str) -> str:
    return key("live", "token", token)


def is_live(expires_ms: int, now_ms: int) -> bool:
    """A token is good strictly before its expiry."""
    return now_ms < expires_ms


class Sessions:
    def __init__(self, store, clock, ttl_s: float) -> None:
        self.store = store
        self.clock = clock
        self.ttl_s = ttl_s

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def create(self, user: str, nickname: str, headimgurl: str) -> Session:
        token = secrets.token_urlsafe(32)
        ttl_ms = max(1, int(self.ttl_s * 1000))
        session = Session(token, user, nickname, headimgurl, self.now_ms() + ttl_ms)
        record = orjson.dumps({"u": user, "n": nickname, "h": headimgurl, "x": session.expires_ms})
        await self.store.set(token_key(token), record.decode("utf-8"), pexpire=ttl_ms)
        return session

    async def get(self, token: object) -> Session | None:
        """The session of a token, or None if it is unknown, expired or not a token at all."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        data = await self.store.get(token_key(token))
        if not data:
            return None
        d = orjson.loads(data)
        if not is_live(int(d["x"]), self.now_ms()):
            return None
        return Session(token, d["u"], d["n"], d["h"], int(d["x"]))

    async def revoke(self, token: str) -> bool:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return False
        return bool(await self.store.delete(token_key(token)))
