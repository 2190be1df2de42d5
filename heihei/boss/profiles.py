"""
Who a boss user is to show: nickname and avatar ("snap"), for the group API.

Two sources, as the original had:
- back ends push profiles through `setuser?userid&nickname&snap`; kept in
  `bossprof:<user>` until replaced;
- lookups of the injected `ProfileSource` (`heihei.outbound.profiles`: HTTP
  GETs in the original's style, at most `LOOKUP_CHUNK` ids each). Answers
  are cached in `bossprofc:<user>` for `profile_cache_s`; an id the back end
  does not know is cached as "" so it is not asked for again and again.

A member with no profile shows their id as nickname and the default avatar
(the caller fills those in: the avatar URL depends on the request's host).
Every outbound call is bounded in time and size; a failing back end means
defaults, never a failing request.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger

from heihei.outbound.profiles import FetchError, ProfileSource
from heihei.store.keys import key

REALM = "boss"
#: ids per lookup call (keeps the URL short)
LOOKUP_CHUNK = 50
MAX_NICKNAME_CHARS = 64
MAX_URL_CHARS = 1024


@dataclass(frozen=True)
class Profile:
    nickname: str | None = None
    snap: str | None = None  # avatar URL


def valid_url(value: str) -> bool:
    return (value.startswith("http://") or value.startswith("https://")) and len(value) <= MAX_URL_CHARS \
        and not any(c.isspace() for c in value)


def pushed_key(user: str) -> str:
    return key("bossprof", REALM, user)


def cached_key(user: str) -> str:
    return key("bossprofc", REALM, user)


class Profiles:
    _log = Logger()

    def __init__(self, store, source: ProfileSource, *, cache_s: float = 600.0) -> None:
        self.store = store
        self.source = source
        self.cache_s = cache_s

    async def push(self, user: str, nickname: str | None, snap: str | None) -> None:
        """A back end tells us the user's profile (fields left None are kept)."""
        fields = {}
        if nickname is not None:
            fields["nickname"] = nickname
        if snap is not None:
            fields["snap"] = snap
        if fields:
            await self.store.hmset(pushed_key(user), fields)

    async def lookup(self, users: list[str]) -> dict[str, Profile]:
        """Profiles of `users` (pushed, else cached, else asked for now); unknown parts are None."""
        users = list(dict.fromkeys(users))
        pushed = await defer.gatherResults([defer.ensureDeferred(self.store.hgetall(pushed_key(u))) for u in users])
        cached = await defer.gatherResults([defer.ensureDeferred(self.store.hgetall(cached_key(u))) for u in users])
        known = {u: {**(c or {}), **(p or {})} for u, p, c in zip(users, pushed, cached)}
        for field in ("nickname", "snap"):
            if not self.source.serves(field):
                continue
            missing = [u for u in users if field not in known[u]]
            for start in range(0, len(missing), LOOKUP_CHUNK):
                chunk = missing[start:start + LOOKUP_CHUNK]
                found = await self._ask(chunk, field)
                if found is None:
                    continue
                for user in chunk:
                    value = found.get(user, "")
                    known[user][field] = value
                    await self.store.hset(cached_key(user), field, value)
                    await self.store.expire(cached_key(user), max(1, int(self.cache_s)))
        return {u: Profile(nickname=known[u].get("nickname") or None, snap=known[u].get("snap") or None)
                for u in users}

    async def _ask(self, users: list[str], field: str) -> dict[str, str] | None:
        try:
            found = await self.source.lookup(field, users)
        except FetchError as e:
            self._log.warn("profile lookup ({field}) failed: {error}", field=field, error=e.reason)
            return None
        if field == "nickname":
            return {k: v[:MAX_NICKNAME_CHARS] for k, v in found.items()}
        return {k: v for k, v in found.items() if valid_url(v)}

    async def download(self, url: str) -> bytes | None:
        """An avatar's bytes, or None (the picture then shows the default)."""
        try:
            return await self.source.download(url)
        except FetchError as e:
            self._log.info("avatar {url} not available: {error}", url=url, error=e.reason)
            return None
