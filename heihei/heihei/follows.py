"""
The social graph of the heihei app (seed 001): who follows whom.

Redis (every key from `heihei.store.keys.key`, realm id "heihei"):
- `following:heihei:<uid>` ZSET target -> ms when uid followed them
- `followers:heihei:<uid>` ZSET follower -> ms

Both sides change in one script, so a follow is never half there: the two
sets always agree, on every node. Following is idempotent (a second follow
keeps the first time), you cannot follow yourself, a user who blocked you
cannot be followed by you (the caller checks blocks; `Blocks.block` drops an
existing follow the other way with `sever`), and one user follows at most
`MAX_FOLLOWING` others. Counts are the sets' sizes, so they cannot drift.
"""

from __future__ import annotations

from heihei.core.errors import Refused
from heihei.heihei.errors import BAD_PARAMETER, BUSINESS_FAILED
from heihei.store.keys import key
from heihei.store.scripts import Script

REALM = "heihei"
#: the most users one user may follow
MAX_FOLLOWING = 5000
#: the largest page of a follow list
MAX_PAGE = 100

FOLLOW = Script("heihei_follow", r"""
-- KEYS: 1 following:<uid>, 2 followers:<target>. ARGV: 1 uid, 2 target, 3 now ms, 4 max following.
-- Returns 1 followed now, 0 already followed, -1 following too many.
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
""")

UNFOLLOW = Script("heihei_unfollow", r"""
-- KEYS: 1 following:<uid>, 2 followers:<target>. ARGV: 1 uid, 2 target. Returns 1 if it was followed.
local was = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return was
""")

FLAGS = Script("heihei_follow_flags", r"""
-- KEYS: 1 following:<viewer>. ARGV: targets. Returns 1/0 per target.
local out = {}
for i = 1, #ARGV do out[i] = redis.call('ZSCORE', KEYS[1], ARGV[i]) and 1 or 0 end
return out
""")

COUNTS = Script("heihei_follow_counts", r"""
-- KEYS: followers:<uid>, following:<uid> for each user, in pairs. Returns the two sizes per user.
local out = {}
for i = 1, #KEYS do out[i] = redis.call('ZCARD', KEYS[i]) end
return out
""")


def following_key(uid: str) -> str:
    return key("following", REALM, uid)


def followers_key(uid: str) -> str:
    return key("followers", REALM, uid)


class Follows:
    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock

    async def follow(self, uid: str, target: str) -> bool:
        """`uid` follows `target`; True if that is new. Blocks are the caller's to check."""
        if uid == target:
            raise Refused(BAD_PARAMETER, "userId (cannot follow yourself)")
        done = int(await FOLLOW(self.store, [following_key(uid), followers_key(target)],
                                [uid, target, int(self.clock.seconds() * 1000), MAX_FOLLOWING]))
        if done < 0:
            raise Refused(BUSINESS_FAILED, f"following at most {MAX_FOLLOWING} users")
        return done == 1

    async def unfollow(self, uid: str, target: str) -> bool:
        return bool(int(await UNFOLLOW(self.store, [following_key(uid), followers_key(target)], [uid, target])))

    async def sever(self, a: str, b: str) -> None:
        """Neither follows the other any more (a block)."""
        await self.unfollow(a, b)
        await self.unfollow(b, a)

    async def follows(self, viewer: str, target: str) -> bool:
        return await self.store.zscore(following_key(viewer), target) is not None

    async def flags(self, viewer: str, targets: list[str]) -> dict[str, bool]:
        """For each of `targets`, does `viewer` follow them (one call)."""
        if not targets:
            return {}
        found = await FLAGS(self.store, [following_key(viewer)], list(targets))
        return {t: bool(int(f)) for t, f in zip(targets, found)}

    async def counts(self, uid: str) -> tuple[int, int]:
        """(followers, following)."""
        return int(await self.store.zcard(followers_key(uid))), int(await self.store.zcard(following_key(uid)))

    async def counts_many(self, uids: list[str]) -> dict[str, tuple[int, int]]:
        """(followers, following) of each user, in one call."""
        if not uids:
            return {}
        keys = [k for uid in uids for k in (followers_key(uid), following_key(uid))]
        sizes = [int(n) for n in await COUNTS(self.store, keys, [])]
        return {uid: (sizes[2 * i], sizes[2 * i + 1]) for i, uid in enumerate(uids)}

    async def followers(self, uid: str, offset: int, limit: int) -> tuple[int, list[str]]:
        """(total, a page of followers, the most recent first)."""
        return await self._page(followers_key(uid), offset, limit)

    async def following(self, uid: str, offset: int, limit: int) -> tuple[int, list[str]]:
        return await self._page(following_key(uid), offset, limit)

    async def all_followers(self, uid: str, chunk: int = 1000):
        """Every follower, in chunks (start-live notices to a large audience)."""
        start = 0
        while True:
            ids = await self.store.zrange(followers_key(uid), start, start + chunk - 1)
            if not ids:
                return
            yield list(ids)
            start += chunk

    async def _page(self, k: str, offset: int, limit: int) -> tuple[int, list[str]]:
        if offset < 0 or not 0 < limit <= MAX_PAGE:
            raise Refused(BAD_PARAMETER, f"offset/limit (limit 1 to {MAX_PAGE})")
        total = int(await self.store.zcard(k))
        ids = await self.store.zrevrange(k, offset, offset + limit - 1) if offset < total else []
        return total, list(ids)

