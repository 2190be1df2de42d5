"""
The boss realm's profile services: who a user is to show, asked of the app
back end in the original's style, and avatar pictures.

- lookup: an HTTP GET to a configured URL (`[boss] profile_nickname_url`,
  `profile_avatar_url`) with the comma-separated ids appended
  (`...&user_id=1,2,3`), answering `{"result": {"<id>": "<value>"}}` (the bare
  `{"<id>": "<value>"}` the original's avatar service sent is accepted too);
  values that are not strings are dropped.
- download: an avatar's bytes from its URL.

Every call must answer 200 within `[boss] profile_timeout_s` (connect,
headers and body) and stay under its size limit, else `FetchError` (whose
`reason` is for logs). Caching, chunking and what a value may be are the
domain's (`heihei.boss.profiles.Profiles`).
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

from heihei.jsonsafe import BadJSON, decode_json
from heihei.outbound.http import HttpClient, OutboundError

MAX_LOOKUP_ANSWER_BYTES = 1024 * 1024
MAX_AVATAR_BYTES = 2 * 1024 * 1024


class FetchError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProfileSource(Protocol):
    def serves(self, field: str) -> bool:
        """Whether `lookup` can find `field` ("nickname" or "snap", the avatar URL)."""

    async def lookup(self, field: str, users: list[str]) -> dict[str, str]:
        """{user: value} for the users the back end knows; `FetchError`."""

    async def download(self, url: str) -> bytes:
        """A picture's bytes; `FetchError`."""


class NoProfiles:
    """No back end: nothing is looked up, no avatar downloaded (every member shows the defaults)."""

    def serves(self, field: str) -> bool:
        return False

    async def lookup(self, field: str, users: list[str]) -> dict[str, str]:
        return {}

    async def download(self, url: str) -> bytes:
        raise FetchError("avatar downloads are off")


class HttpProfiles:
    def __init__(self, http: HttpClient, *, nickname_url: str = "", avatar_url: str = "", timeout_s: float,
                 max_lookup_bytes: int = MAX_LOOKUP_ANSWER_BYTES, max_avatar_bytes: int = MAX_AVATAR_BYTES) -> None:
        self.http = http
        self.urls = {"nickname": nickname_url, "snap": avatar_url}
        self.timeout_s = timeout_s
        self.max_lookup_bytes = max_lookup_bytes
        self.max_avatar_bytes = max_avatar_bytes

    def serves(self, field: str) -> bool:
        return bool(self.urls.get(field))

    async def lookup(self, field: str, users: list[str]) -> dict[str, str]:
        if not self.serves(field):
            return {}
        target = self.urls[field] + quote(",".join(users), safe=",")
        return parse_lookup(await self.fetch(target, max_bytes=self.max_lookup_bytes))

    async def download(self, url: str) -> bytes:
        return await self.fetch(url, max_bytes=self.max_avatar_bytes)

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """GET `url`: the body if the answer is 200 and at most `max_bytes`, else `FetchError`."""
        try:
            status, body = await self.http.get(url, timeout_s=self.timeout_s, max_bytes=max_bytes)
        except OutboundError as e:
            # an error status says more than its oversized body
            raise FetchError(f"HTTP {e.status}" if e.status not in (None, 200) else e.reason) from None
        if status != 200:
            raise FetchError(f"HTTP {status}")
        return body


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
