"""
Watching lives: joining and leaving a room, heart-beats, what a viewer sees,
the lists of lives and of the people in a room, and the online counts.

A viewer is in a room from join-live until quit-live, a kick, the live's end,
or `heartbeat_timeout_s` without a heart-beat (a deadline in Redis any node
fires). Who is in it is one sorted set per live (uid -> join ms), so counts
are exact across nodes; a changed count marks the live, and the sweeper
pushes it to the room at most every `count_interval_s` (one node per push:
a short-lived gate key). Each joiner also gets the count at once, so the
first room item reaches a viewer right after join-live answers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from heihei.core.errors import Refused
from heihei.core.hub import Notice
from heihei.heihei import liveinfo
from heihei.heihei.errors import (BAD_PARAMETER, CANNOT_WATCH, LIVE_NOT_ACTIVE, NO_SEAT, NO_SUCH_LIVE,
                                  NO_SUCH_USER, NOT_ALLOWED, NOT_IN_ROOM)
from heihei.heihei.follows import following_key
from heihei.heihei.livecore import (DIRTY, PLAYING, REPLAYS, VIEWER_BEAT, LiveCore, kick_key, live_key,
                                    replay_viewers_key, settle, timer, together, ulives_key, viewers_key,
                                    visits_key)
from heihei.heihei.messages import ITEM
from heihei.heihei.rooms import CHANNEL, RoomError, hub_room
from heihei.store.keys import key
from heihei.store.scripts import Script

PAGE = 20
REPLAY_USERS_MAX = 50

JOIN = Script("heihei_live_join", r"""
-- KEYS: 1 live, 2 viewers, 3 visits, 4 kicked, 5 dirty lives.
-- ARGV: 1 uid, 2 now ms, 3 seats (0: no limit), 4 '1' past the seat limit, 5 live id.
-- Returns 1 joined, 2 already in, -1 no live, -3 not playing, -4 kicked out, -5 no open seat.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st ~= '1' then return -3 end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return -4 end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 2 end
local seats = tonumber(ARGV[3])
if seats > 0 and ARGV[4] ~= '1' then
  local locked = tonumber(redis.call('HGET', KEYS[1], 'lockedSeats') or '0')
  -- the anchor takes a seat
  if redis.call('ZCARD', KEYS[2]) + 1 >= seats - locked then return -5 end
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[5])
return 1
""")

LEAVE = Script("heihei_live_leave", r"""
-- KEYS: 1 viewers, 2 dirty lives. ARGV: 1 uid, 2 live id. Returns 1 if they were in.
local n = redis.call('ZREM', KEYS[1], ARGV[1])
if n == 1 then redis.call('SADD', KEYS[2], ARGV[2]) end
return n
""")

TAKE_DIRTY = Script("heihei_live_take_dirty", r"""
-- KEYS: 1 dirty lives. ARGV: 1 at most, 2 gate key prefix, 3 gate ms.
-- Returns {the lives whose count this caller pushes now..., how many still wait}: those pushed a
-- moment ago wait for their gate.
local ids = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
local out, later = {}, {}
for i = 1, #ids do
  if redis.call('SET', ARGV[2] .. ids[i], '1', 'NX', 'PX', ARGV[3]) then
    out[#out + 1] = ids[i]
  else
    later[#later + 1] = ids[i]
  end
end
if #later > 0 then redis.call('SADD', KEYS[1], unpack(later)) end
out[#out + 1] = redis.call('SCARD', KEYS[1])
return out
""")

FOLLOWED_LIVES = Script("heihei_live_followed", r"""
-- KEYS: 1 the viewer's following zset. ARGV: 1 open-live key prefix, 2 lives key prefix,
-- 3 live key prefix, 4 at most this many lives per followed user.
-- Returns {open live ids..., '|', latest ended live ids...} of the users the viewer follows.
local open, ended = {}, {}
local users = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #users do
  local id = redis.call('GET', ARGV[1] .. users[i])
  if id then open[#open + 1] = id end
  local recent = redis.call('ZREVRANGE', ARGV[2] .. users[i], 0, tonumber(ARGV[4]) - 1)
  for j = 1, #recent do
    if redis.call('HGET', ARGV[3] .. recent[j], 'status') == '2' then ended[#ended + 1] = recent[j] end
  end
end
open[#open + 1] = '|'
for i = 1, #ended do open[#open + 1] = ended[i] end
return open
""")


class Watching:
    def __init__(self, core: LiveCore) -> None:
        self.core = core

    # -- in and out -------------------------------------------------------------------

    async def _viewable(self, uid: str, live_id: str) -> dict[str, str]:
        """A live `uid` may look at: 731 none or deleted; 737 hidden, or its anchor blocked `uid`."""
        live, _ = await self._viewable_with_rights(uid, live_id, ask_manager=False)
        return live

    async def _viewable_with_rights(self, uid: str, live_id: str, *, ask_manager: bool) -> tuple[dict, bool]:
        """`_viewable`, and (`ask_manager`) whether `uid` manages the anchor's rooms, asked with the
        block check in one round trip (join-live's path to the joiner's first item is round trips)."""
        core = self.core
        live = await core.require(live_id)
        anchor = live.get("userId")
        manager = False
        if uid != anchor:
            if live.get("visible") == "0":
                raise Refused(CANNOT_WATCH, "the live is hidden")
            asked = [core.blocks.has_blocked(anchor, uid)] + ([core.is_manager(anchor, uid)] if ask_manager else [])
            answers = await together(*asked)
            if answers[0]:
                raise Refused(CANNOT_WATCH, "the anchor blocked you")
            manager = bool(ask_manager and answers[1])
        return live, manager

    async def _answer(self, live: dict[str, str], uid: str) -> dict[str, Any]:
        core = self.core
        anchor = await core.accounts.get(live["userId"]) or {}
        followed = uid != live["userId"] and await core.follows.follows(uid, live["userId"])
        return {"live": await core.info(live, viewer=uid, anchor=anchor), "share": await core.share(live, anchor),
                "userInfo": liveinfo.user_entry(anchor, followed)}

    async def join(self, uid: str, live_id: str, live_key_given: str | None = None) -> dict[str, Any]:
        """join-live. A live that is not playing is answered with its status (the client shows the
        replay or "ended" screen); only a playing live is joined."""
        core = self.core
        live, manager = await self._viewable_with_rights(uid, live_id, ask_manager=True)
        anchor = live["userId"]
        if uid == anchor:
            if live.get("status") in ("0", "1"):
                await core.rooms.add_member(live_id, uid)
            return await self._answer(live, uid)
        if live.get("status") != "1":
            if live.get("status") == "2":
                await core.store.zadd(replay_viewers_key(live_id), core.now_ms(), uid)
            return await self._answer(live, uid)
        invited = False
        if live_key_given is not None:
            if live_key_given != core.live_key_for(live_id, uid):
                raise Refused(BAD_PARAMETER, "liveKey (not an invitation of yours to this live)")
            invited = True
        past_seats = invited or manager
        now = core.now_ms()
        joined = int(await JOIN(core.store, [live_key(live_id), viewers_key(live_id), visits_key(live_id),
                                             kick_key(live_id), DIRTY],
                                [uid, now, core.settings.seat_count, "1" if past_seats else "0", live_id]))
        core.counts_changed_here = True
        if joined == -1:
            raise Refused(NO_SUCH_LIVE, f"liveId {live_id}")
        if joined == -4:
            raise Refused(CANNOT_WATCH, "you were kicked out of this live")
        if joined == -5:
            raise Refused(NO_SEAT, "every open seat is taken")
        if joined == -3:  # it ended meanwhile
            return await self._answer(await core.require(live_id), uid)
        # the heart-beat deadline (a viewer whose join fails after this still expires) and the count's
        # reads (the JOIN script changed them already; no field a join changes) go out with the room
        # membership, in one round trip; the joiner's first item as soon as it is in the room
        armed = defer.ensureDeferred(core.deadlines.set(timer(VIEWER_BEAT, live_id, uid),
                                                        now + int(core.settings.heartbeat_timeout_s * 1000)))
        counting = defer.ensureDeferred(core.counts(live))
        try:
            await core.rooms.add_member(live_id, uid)
        except RoomError as e:
            await settle(armed, counting)
            await self.leave(live_id, uid)
            if e.reason == "closed":
                return await self._answer(await core.require(live_id), uid)
            raise Refused(NOT_ALLOWED, f"cannot enter the room ({e.reason})") from None
        except BaseException:
            await settle(armed, counting)
            raise
        try:
            await core.to_user(uid, liveinfo.counts_msg(live_id, await counting))
        finally:
            await armed
        live = await core.require(live_id)
        if core.on_viewer_joined is not None:
            await core.on_viewer_joined(live_id, uid)
        return await self._answer(live, uid)

    async def quit(self, uid: str, live_id: str) -> None:
        live = await self.core.require(live_id)
        if uid != live.get("userId"):
            await self.leave(live_id, uid)

    async def leave(self, live_id: str, uid: str) -> bool:
        """`uid` is out of the room (quit, kicked, heart-beat expired)."""
        core = self.core
        was_in = bool(int(await LEAVE(core.store, [viewers_key(live_id), DIRTY], [uid, live_id])))
        core.counts_changed_here = core.counts_changed_here or was_in
        await core.deadlines.cancel(timer(VIEWER_BEAT, live_id, uid))
        await core.rooms.remove_member(live_id, uid)
        return was_in

    async def in_room(self, live: dict[str, str], uid: str) -> bool:
        if uid == live.get("userId"):
            return True
        return await self.core.store.zscore(viewers_key(live["liveId"]), uid) is not None

    async def require_in_room(self, live: dict[str, str], uid: str) -> None:
        if not await self.in_room(live, uid):
            raise Refused(NOT_IN_ROOM, f"you are not in live {live['liveId']}")

    async def heart_beat(self, uid: str, live_id: str, is_creator: bool, lives) -> dict[str, Any]:
        core = self.core
        live = await core.require(live_id)
        if is_creator:
            if live.get("userId") != uid:
                raise Refused(NOT_ALLOWED, "not your live")
            if live.get("status") not in ("0", "1"):
                raise Refused(LIVE_NOT_ACTIVE, "the live has ended")
            if live.get("paused") != "1" or live.get("pausedBy") != "anchor":
                await lives._beat_anchor(live_id)
        else:
            if live.get("status") != "1":
                raise Refused(LIVE_NOT_ACTIVE, "the live is not playing")
            if uid != live.get("userId"):
                await self.require_in_room(live, uid)
                await core.deadlines.set(timer(VIEWER_BEAT, live_id, uid),
                                         core.now_ms() + int(core.settings.heartbeat_timeout_s * 1000))
        return {"liveId": liveinfo.id_value(live_id), "nextTimeout": core.settings.heartbeat_s}

    async def get(self, uid: str, live_id: str) -> dict[str, Any]:
        """get-live: any status is an answer (the anchor's screen retries errors forever); 506 only
        for a playing live the caller is not in."""
        core = self.core
        live = await self._viewable(uid, live_id)
        if live.get("status") == "1" and not await self.in_room(live, uid):
            raise Refused(NOT_IN_ROOM, f"you are not in live {live_id}")
        if live.get("status") == "2" and uid != live.get("userId"):
            await core.store.zadd(replay_viewers_key(live_id), core.now_ms(), uid)
        return await self._answer(live, uid)

    # -- lists --------------------------------------------------------------------------

    async def _infos(self, ids: list[str], viewer: str, *, want_status: str, followed: bool | None = None,
                     limit: int) -> list[dict[str, Any]]:
        core = self.core
        out = []
        for live_id in ids:
            live = await core.get(live_id)
            if live is None or live.get("status") != want_status:
                continue
            if live.get("visible") == "0" and live.get("userId") != viewer:
                continue
            info = await core.info(live, viewer=viewer)
            if followed is not None:
                info["isFollowed"] = followed
            out.append(info)
            if len(out) >= limit:
                break
        return out

    async def recommended(self, uid: str) -> dict[str, Any]:
        core, s = self.core, self.core.settings
        playing = await core.store.zrevrange(PLAYING, 0, s.recommend_max * 2 - 1)
        replays = await core.store.zrevrange(REPLAYS, 0, s.replays_max * 2 - 1)
        return {"expireTime": s.list_expire_s,
                "lives": await self._infos(list(playing), uid, want_status="1", limit=s.recommend_max),
                "liveskback": await self._infos(list(replays), uid, want_status="2", limit=s.replays_max)}

    async def followed(self, uid: str) -> dict[str, Any]:
        core, s = self.core, self.core.settings
        flat = await FOLLOWED_LIVES(core.store, [following_key(uid)],
                                    [key("uopen", "heihei") + ":", key("ulives", "heihei") + ":",
                                     key("live", "heihei") + ":", 2])
        cut = flat.index("|")
        ended = []
        for live_id in flat[cut + 1:]:
            end = await core.store.hget(live_key(live_id), "endTime")
            ended.append((int(end or 0), live_id))
        ended.sort(reverse=True)
        return {"expireTime": s.list_expire_s,
                "lives": await self._infos(flat[:cut], uid, want_status="1", followed=True, limit=s.recommend_max),
                "lookbacks": await self._infos([i for _, i in ended], uid, want_status="2", followed=True,
                                               limit=s.replays_max)}

    async def by_user(self, uid: str, target: str, offset: int, limit: int) -> dict[str, Any]:
        core = self.core
        if not await core.accounts.exists(target):
            raise Refused(NO_SUCH_USER, f"userId {target}")
        ids = await core.store.zrevrange(ulives_key(target), 0, -1)
        shown = []
        for live_id in ids:
            live = await core.get(live_id)
            if live is None or live.get("status") in ("3", "4"):
                continue
            if live.get("visible") == "0" and target != uid:
                continue
            shown.append(live)
        page = [await core.info(live, viewer=uid) for live in shown[offset:offset + limit]]
        followed = target != uid and await core.follows.follows(uid, target)
        return {"expireTime": 120, "totalCount": len(shown), "lives": page, "isFollowed": followed}

    async def users(self, uid: str, live_id: str, last_join: int, direction: int) -> dict[str, Any]:
        """list-live-users: newest first; direction 0 those who joined after `last_join`, 1 before it
        (`last_join` in seconds as the seed's joinTime, or ms (joinTimeMs) when ≥ 10^12)."""
        core = self.core
        live = await core.require(live_id)
        await self.require_in_room(live, uid)
        last_ms = last_join if last_join >= 10 ** 12 else last_join * 1000
        k = viewers_key(live_id)
        if direction == 1 and last_join > 0:
            rows = await core.store.zrevrangebyscore(k, f"({last_ms}", "-inf", withscores=True, offset=0, count=PAGE)
        elif last_join > 0:
            rows = await core.store.zrangebyscore(k, f"({last_ms}", "+inf", withscores=True, offset=0, count=PAGE)
            rows = list(reversed(rows))
        else:
            rows = await core.store.zrevrangebyscore(k, "+inf", "-inf", withscores=True, offset=0, count=PAGE)
        ids = [m for m, _ in rows]
        profiles = await core.accounts.get_many(ids)
        flags = await core.follows.flags(uid, ids)
        counts = await core.counts(live)
        return {"expireTime": 60, "totalCount": counts.online + 1, "roomSeatCount": counts.seats,
                "roomLockedCount": counts.locked,
                "users": [liveinfo.viewer_entry(profiles.get(m, {"id": m}), int(float(ms)), flags.get(m, False))
                          for m, ms in rows]}

    async def replay_users(self, uid: str, live_id: str) -> dict[str, Any]:
        core = self.core
        await core.require(live_id)
        ids = list(await core.store.zrevrange(replay_viewers_key(live_id), 0, REPLAY_USERS_MAX - 1))
        profiles = await core.accounts.get_many(ids)
        flags = await core.follows.flags(uid, ids)
        return {"users": [liveinfo.user_entry(profiles[m], flags.get(m, False)) for m in ids if m in profiles]}

    async def knock_status(self, live_id: str) -> dict[str, Any]:
        core = self.core
        live = await core.require(live_id)
        counts = await core.counts(live)
        capacity = counts.seats - counts.locked if counts.seats else 0
        return {"needKnock": bool(capacity) and counts.online + 1 >= capacity, "roomUserCount": capacity,
                "roomNowUserCount": counts.online + 1, "liveStatus": int(live.get("status") or 0)}

    # -- online counts --------------------------------------------------------------------

    async def push_counts(self) -> int:
        """Push the changed counts (each live at most every count_interval_s, by one node); returns how
        many lives still wait for theirs."""
        core = self.core
        ids = list(await TAKE_DIRTY(core.store, [DIRTY], [100, key("lcntgate", "heihei") + ":",
                                                            int(core.settings.count_interval_s * 1000)]))
        waiting = int(ids.pop())
        for live_id in ids:
            live = await core.get(live_id)
            if live is None or live.get("status") != "1":
                continue
            item = {"msg": liveinfo.counts_msg(live_id, await core.counts(live)), "timeStamp": core.now_s()}
            await core.hub.notify_room(CHANNEL, hub_room(live_id), Notice(ITEM, {"item": item}))
        return waiting

