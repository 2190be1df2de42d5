"""
People as other users see them, and the rules of the social graph (seed 001).

- User objects: every answer that shows a user (`user/info`, the follower,
  following, blocked, by-type and active lists, topic `users` maps, records)
  is built here, with `followerCount` / `followingCount` from the follow graph
  (the sets' sizes, so they cannot drift) and `isFollowed` as the viewer sees
  it, all read in one Redis call per page.
- Follow: idempotent (a second follow is a success that changes nothing);
  following yourself is 700; an unknown user 710; following someone who
  blocked you, or whom you blocked, 711. Blocking someone severs the follows
  both ways (`heihei.heihei.follows.Follows.sever`).
- Discovery: `list-user-byType` (recommended by operators, newest, anchors)
  and `list-active-user` (seen recently), both newest first and paged.
- Live status: `isinlive` asks a `LiveStatus`; until the live-rooms module
  exists it is `NoLives` (nobody is live).

Redis (realm id "heihei", every key from `heihei.store.keys.key`):
- `usersnew:heihei` ZSET uid -> ms of the first saved profile (the newest
  `[social] new_users_max`)
- `usersrec:heihei` ZSET uid -> weight (operators; highest first)
- `usertype:heihei:<type>` ZSET uid -> ms (operators mark anchors)
- `active:heihei` ZSET uid -> ms last seen (an authenticated API call or a
  channel connection), written at most once a minute per user and node,
  trimmed to `[social] active_window_s` and `MAX_ACTIVE` entries
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from heihei.core.errors import Refused
from heihei.heihei import profiles
from heihei.heihei.accounts import REALM, Accounts, Blocks
from heihei.heihei.errors import BAD_PARAMETER, BANNED, CANNOT_VIEW_USER, NO_SUCH_USER, NOT_ALLOWED, PHONE_TAKEN
from heihei.heihei.follows import Follows
from heihei.store.keys import key
from heihei.store.scripts import Script

#: the most entries the activity index keeps
MAX_ACTIVE = 100_000
#: a user's activity is written at most this often per node
ACTIVITY_WRITE_INTERVAL_S = 60.0
#: how many users one node remembers having written the activity of
ACTIVITY_MEMORY = 50_000
#: the largest page of any user list
MAX_PAGE = 20

#: list-user-byType: the type names, with the synonyms clients may send
USER_TYPES = {"recommend": "recommend", "recommended": "recommend", "hot": "recommend", "0": "recommend",
              "new": "new", "newest": "new", "1": "new",
              "anchor": "anchor", "Anchor": "anchor", "2": "anchor"}
#: operators may give a user one of these user types (the seed shows "Anchor"; "Normal" is the default)
OPERATOR_USER_TYPES = ("Normal", "Anchor")

TOUCH = Script("heihei_touch_active", r"""
-- KEYS: 1 active zset. ARGV: 1 uid, 2 now ms, 3 cutoff ms, 4 max entries
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
return 1
""")

NOTE_NEW = Script("heihei_note_new_user", r"""
-- KEYS: 1 new-users zset. ARGV: 1 uid, 2 now ms, 3 max entries. The first time counts.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
return 1
""")


@dataclass(frozen=True)
class LiveState:
    """A user who is live now: in which live (and its room)."""

    live_id: str
    room_id: str = ""


class LiveStatus(Protocol):
    async def live_of(self, uid: str) -> LiveState | None:
        """The live `uid` is broadcasting now, or None."""


class NoLives:
    """Until the live-rooms module exists, nobody is live."""

    async def live_of(self, uid: str) -> LiveState | None:
        return None


def new_users_key() -> str:
    return key("usersnew", REALM)


def recommended_key() -> str:
    return key("usersrec", REALM)


def user_type_key(user_type: str) -> str:
    return key("usertype", REALM, user_type)


def active_key() -> str:
    return key("active", REALM)


class People:
    def __init__(self, store, clock, *, accounts: Accounts, blocks: Blocks, follows: Follows, settings,
                 live: LiveStatus | None = None) -> None:
        self.store = store
        self.clock = clock
        self.accounts = accounts
        self.blocks = blocks
        self.follows = follows
        self.settings = settings
        self.live: LiveStatus = live or NoLives()
        self._written: OrderedDict[str, float] = OrderedDict()

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- user objects ------------------------------------------------------------------------

    async def _existing(self, uid: str) -> dict[str, str]:
        profile = await self.accounts.get(uid)
        if profile is None:
            raise Refused(NO_SUCH_USER)
        return profile

    async def info(self, caller: str, uid: str, cuid: str | None) -> dict[str, Any]:
        """`user/info`'s `result`: 710 unknown, 736 if `uid` blocked the caller; `isFollowed` and
        `isBlocked` as `cuid` (default: the caller) sees them."""
        profile = await self._existing(uid)
        if uid != caller and await self.blocks.has_blocked(uid, caller):
            raise Refused(CANNOT_VIEW_USER)
        viewer = cuid or caller
        followed = blocked = False
        if viewer != uid:
            followed = await self.follows.follows(viewer, uid)
            blocked = await self.blocks.has_blocked(viewer, uid)
        counts = (await self.follows.counts_many([uid]))[uid]
        return profiles.user_result(profile, is_self=uid == caller, is_followed=followed, is_blocked=blocked,
                                    counts=counts)

    async def list_users(self, viewer: str, uids: list[str]) -> list[dict[str, Any]]:
        """User objects of a list, in the order given (users since deleted are left out)."""
        found = await self.accounts.get_many(uids)
        present = [u for u in uids if u in found]
        flags = await self.follows.flags(viewer, [u for u in present if u != viewer])
        counts = await self.follows.counts_many(present)
        return [profiles.list_user(found[u], is_followed=flags.get(u, False), counts=counts[u]) for u in present]

    async def users_map(self, viewer: str, uids) -> dict[str, dict[str, Any]]:
        """The seed's `users` map of topics and subjects: id -> brief user with `isFollowed`."""
        wanted = [u for u in dict.fromkeys(str(u) for u in uids) if u and u != "0"]
        found = await self.accounts.get_many(wanted)
        flags = await self.follows.flags(viewer, [u for u in found if u != viewer])
        return {u: profiles.brief(found[u], is_followed=flags.get(u, False)) for u in wanted if u in found}

    # -- the graph ---------------------------------------------------------------------------

    async def follow(self, uid: str, target: str) -> bool:
        """`uid` follows `target` (True if new). 700 yourself, 710 unknown, 711 blocked either way."""
        if uid == target:
            raise Refused(BAD_PARAMETER, "userId (cannot follow yourself)")
        await self._existing(target)
        if await self.blocks.has_blocked(target, uid):
            raise Refused(NOT_ALLOWED, "this user has blocked you")
        if await self.blocks.has_blocked(uid, target):
            raise Refused(NOT_ALLOWED, "you have blocked this user; unblock first")
        return await self.follows.follow(uid, target)

    async def unfollow(self, uid: str, target: str) -> bool:
        await self._existing(target)
        return await self.follows.unfollow(uid, target)

    async def block(self, uid: str, target: str) -> None:
        """Block `target`: no IM either way, and neither follows the other any more."""
        if uid == target:
            raise Refused(BAD_PARAMETER, "userId (cannot block yourself)")
        await self._existing(target)
        await self.blocks.block(uid, target)
        await self.follows.sever(uid, target)

    async def unblock(self, uid: str, target: str) -> None:
        await self._existing(target)
        await self.blocks.unblock(uid, target)

    async def _graph_page(self, caller: str, uid: str, offset: int, limit: int, viewer: str | None,
                          followers: bool) -> tuple[int, list[dict[str, Any]]]:
        await self._existing(uid)
        if uid != caller and await self.blocks.has_blocked(uid, caller):
            raise Refused(CANNOT_VIEW_USER)
        limit = min(limit, MAX_PAGE)
        page = self.follows.followers if followers else self.follows.following
        total, ids = await page(uid, offset, limit)
        return total, await self.list_users(viewer or caller, ids)

    async def followers_page(self, caller: str, uid: str, offset: int, limit: int,
                             viewer: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """(total, a page of `uid`'s followers, the most recent first); `isFollowed` as `viewer`
        (default: the caller) sees each. 710 unknown, 736 if `uid` blocked the caller."""
        return await self._graph_page(caller, uid, offset, limit, viewer, True)

    async def following_page(self, caller: str, uid: str, offset: int, limit: int,
                             viewer: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        return await self._graph_page(caller, uid, offset, limit, viewer, False)

    async def blocked_page(self, uid: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        total, ids = await self.blocks.page(uid, offset, min(limit, MAX_PAGE))
        return total, await self.list_users(uid, ids)

    # -- profiles and discovery ---------------------------------------------------------------

    async def save_profile(self, uid: str, fields: dict[str, str]) -> None:
        """`user/update`: the profile is saved; a user's first saved profile puts them on the
        newest-users list."""
        await self.accounts.update(uid, fields)
        await NOTE_NEW(self.store, [new_users_key()], [uid, self.now_ms(), self.settings.new_users_max])

    async def by_type(self, viewer: str, user_type: str, offset: int, limit: int) -> tuple[int, list[dict]]:
        """`list-user-byType`: recommend (operators' order), new (newest profiles) or anchor."""
        kind = USER_TYPES.get(user_type)
        if kind is None:
            raise Refused(BAD_PARAMETER, "type (one of recommend, new, anchor)")
        k = {"recommend": recommended_key(), "new": new_users_key(), "anchor": user_type_key("Anchor")}[kind]
        limit = min(limit, MAX_PAGE)
        total = int(await self.store.zcard(k))
        ids = list(await self.store.zrevrange(k, offset, offset + limit - 1)) if offset < total else []
        return total, await self.list_users(viewer, ids)

    async def seen(self, uid: str) -> None:
        """Note that `uid` is active (an API call, a channel connection); at most once a minute
        per user on this node."""
        now_s = self.clock.seconds()
        last = self._written.get(uid)
        if last is not None and now_s - last < ACTIVITY_WRITE_INTERVAL_S:
            return
        self._written[uid] = now_s
        self._written.move_to_end(uid)
        while len(self._written) > ACTIVITY_MEMORY:
            self._written.popitem(last=False)
        now_ms = int(now_s * 1000)
        await TOUCH(self.store, [active_key()],
                    [uid, now_ms, now_ms - int(self.settings.active_window_s * 1000), MAX_ACTIVE])

    async def active(self, viewer: str, offset: int, limit: int) -> tuple[int, list[dict]]:
        """`list-active-user`: users seen within `[social] active_window_s`, the most recent first."""
        limit = min(limit, MAX_PAGE)
        cutoff = self.now_ms() - int(self.settings.active_window_s * 1000)
        total = int(await self.store.zcount(active_key(), cutoff, "+inf"))
        ids = []
        if offset < total:
            ids = list(await self.store.zrevrangebyscore(active_key(), "+inf", cutoff, offset=offset, count=limit))
        return total, await self.list_users(viewer, ids)

    async def register_phone(self, uid: str, phone: str, sms) -> int:
        """`sms/register-phone`: send a code to bind `phone` to `uid` (403 at once if another account
        has it); returns the seconds before another code may be asked for."""
        owner = await self.accounts.phone_owner(phone)
        if owner is not None and owner != uid:
            raise Refused(PHONE_TAKEN)
        return await sms.send_code(phone)

    async def verify_phone(self, uid: str, phone: str, code: str, sms) -> None:
        """`sms/verify-phone`: the code of `phone` is right (else 401): bind it to `uid` (403 taken)."""
        await sms.check(phone, code)
        if not await self.accounts.bind_phone(uid, phone):
            raise Refused(PHONE_TAKEN)

    async def live_status(self, uid: str) -> LiveState | None:
        """`isinlive`: 710 for an unknown user, else the live they broadcast now (None: not live)."""
        await self._existing(uid)
        return await self.live.live_of(uid)

    async def check_not_banned(self, uid: str) -> None:
        """Sign-in of a banned account is refused (711)."""
        profile = await self.accounts.get(uid) or {}
        if profile.get("banned") == "1":
            raise Refused(BANNED, "this account is banned")

    # -- operators ---------------------------------------------------------------------------

    async def set_user_type(self, uid: str, user_type: str) -> None:
        if user_type not in OPERATOR_USER_TYPES:
            raise Refused(BAD_PARAMETER, f"userType (one of {', '.join(OPERATOR_USER_TYPES)})")
        await self._existing(uid)
        await self.accounts.update(uid, {"userType": user_type})
        if user_type == "Anchor":
            await self.store.zadd(user_type_key("Anchor"), self.now_ms(), uid)
        else:
            await self.store.zrem(user_type_key("Anchor"), uid)

    async def recommend(self, uid: str, weight: float | None) -> None:
        """Put `uid` on the recommended list with `weight` (highest first), or take them off (None)."""
        await self._existing(uid)
        if weight is None:
            await self.store.zrem(recommended_key(), uid)
        else:
            await self.store.zadd(recommended_key(), weight, uid)
