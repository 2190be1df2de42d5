"""
Who a boss user is to show: nickname and avatar ("snap"), for the group API.

Two sources, as the original had:
- back ends push profiles through `setuser?userid&nickname&snap`; kept in
  `bossprof:<user>` until replaced;
- lookups in the original's style: an HTTP GET to a configured URL with the
  comma-separated ids appended (`...&user_id=1,2,3`), answering
  `{"result": {"<id>": "<value>"}}` (the bare `{"<id>": "<value>"}` the
  original's avatar service sent is accepted too). Answers are cached in
  `bossprofc:<user>` for `profile_cache_s`; an id the back end does not know is
  cached as "" so it is not asked for again and again.

A member with no profile shows their id as nickname and the default avatar
(the caller fills those in: the avatar URL depends on the request's host).
Every outbound call is bounded in time and size; a failing back end means
defaults, never a failing request.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from heihei.jsonsafe import BadJSON, decode_json
from heihei.store.keys import key
from heihei.outbound.http import BodyTooLarge, read_bounded

REALM = "boss"
#: ids per lookup call (keeps the URL short)
LOOKUP_CHUNK = 50
MAX_LOOKUP_ANSWER_BYTES = 1024 * 1024
MAX_AVATAR_BYTES = 2 * 1024 * 1024
MAX_NICKNAME_CHARS = 64
MAX_URL_CHARS = 1024


class FetchError(Exception):
    pass


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


def make_http_client(reactor, connect_timeout_s: float) -> HTTPClient:
    """Non-persistent connections: a lookup now and then does not need a pool held open."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    return HTTPClient(Agent(reactor, pool=pool, connectTimeout=connect_timeout_s))


async def fetch_bounded(http: HTTPClient, url: str, *, max_bytes: int, timeout_s: float, reactor) -> bytes:
    """GET `url`: the body if the answer is 200 and at most `max_bytes`, else `FetchError`.

    The whole exchange (connect, headers, body) must finish within `timeout_s`."""

    async def get() -> bytes:
        response = await http.get(url, reactor=reactor, unbuffered=True)
        refuse = f"HTTP {response.code}" if response.code != 200 else None
        try:
            # a refused answer is not read: a limit of 0 closes the connection at its first byte
            body = await read_bounded(response, 0 if refuse else max_bytes)
        except defer.CancelledError:
            raise
        except BodyTooLarge:
            raise FetchError(refuse or f"answer larger than {max_bytes} bytes") from None
        except Exception as e:
            raise FetchError(refuse or f"connection lost: {e}") from None
        if refuse:
            raise FetchError(refuse)
        return body

    d = defer.Deferred.fromCoroutine(get())
    timer = reactor.callLater(timeout_s, d.cancel)
    try:
        return await d
    except FetchError:
        raise
    except Exception as e:
        if not timer.active():  # cancelled by the timer (whatever error the cancel surfaced as)
            raise FetchError(f"no answer within {timeout_s} s") from None
        raise FetchError(f"{type(e).__name__}: {e}") from None
    finally:
        if timer.active():
            timer.cancel()


def parse_lookup(body: bytes) -> dict[str, str]:
    """`{"result": {id: value}}` or `{id: value}` -> {id: value}, string values only."""
    try:
        value = decode_json(body, max_bytes=MAX_LOOKUP_ANSWER_BYTES)
    except BadJSON as e:
        raise FetchError(f"lookup answer is not JSON: {e.reason}") from None
    if isinstance(value, dict) and "result" in value:
        value = value["result"]
    if not isinstance(value, dict):
        raise FetchError("lookup answer is not a JSON object")
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


class Profiles:
    _log = Logger()

    def __init__(self, store, http: HTTPClient, *, reactor, avatar_url: str = "", nickname_url: str = "",
                 timeout_s: float = 5.0, cache_s: float = 600.0) -> None:
        self.store = store
        self.http = http
        self.reactor = reactor
        self.avatar_url = avatar_url
        self.nickname_url = nickname_url
        self.timeout_s = timeout_s
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
        for field, url in (("nickname", self.nickname_url), ("snap", self.avatar_url)):
            if not url:
                continue
            missing = [u for u in users if field not in known[u]]
            for start in range(0, len(missing), LOOKUP_CHUNK):
                chunk = missing[start:start + LOOKUP_CHUNK]
                found = await self._ask(url, chunk, field)
                if found is None:
                    continue
                for user in chunk:
                    value = found.get(user, "")
                    known[user][field] = value
                    await self.store.hset(cached_key(user), field, value)
                    await self.store.expire(cached_key(user), max(1, int(self.cache_s)))
        return {u: Profile(nickname=known[u].get("nickname") or None, snap=known[u].get("snap") or None)
                for u in users}

    async def _ask(self, url: str, users: list[str], field: str) -> dict[str, str] | None:
        target = url + quote(",".join(users), safe=",")
        try:
            found = parse_lookup(await fetch_bounded(self.http, target, max_bytes=MAX_LOOKUP_ANSWER_BYTES,
                                                     timeout_s=self.timeout_s, reactor=self.reactor))
        except FetchError as e:
            self._log.warn("profile lookup ({field}) failed: {error}", field=field, error=str(e))
            return None
        if field == "nickname":
            return {k: v[:MAX_NICKNAME_CHARS] for k, v in found.items()}
        return {k: v for k, v in found.items() if valid_url(v)}

    async def download(self, url: str) -> bytes | None:
        """An avatar's bytes, or None (the picture then shows the default)."""
        try:
            return await fetch_bounded(self.http, url, max_bytes=MAX_AVATAR_BYTES, timeout_s=self.timeout_s,
                                       reactor=self.reactor)
        except FetchError as e:
            self._log.info("avatar {url} not available: {error}", url=url, error=str(e))
            return None
