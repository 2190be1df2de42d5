"""
A live's life: created (0), playing (1), stopped (2; it stays as a replay),
banned (3, by an operator), deleted (4, by its anchor) — seed 001's statuses.

    create-live ──▶ 0 ──(the anchor's stream arrives: the media server's publish
                         callback; or start-live when no media server calls back)──▶ 1
    1 ──stop-live / no anchor heart-beat for heartbeat_timeout_s / the stream gone
        for stream_grace_s / paused longer than pause_max_s / a new create-live──▶ 2
    any ──delete-live──▶ 4 (a playing live is stopped first)

Pausing is a flag, not a status: the live stays 1 (the shipped anchor client
restarts its stream when get-live says 1), the room gets a `pause-live` item
and, on continue-live or the stream's return, `continue-live`. While the
anchor paused, the heart-beat expiry waits and `pause_max_s` counts instead.

Every timer is a deadline in Redis (heihei.heihei.deadlines) that any node
fires; every transition is one script, so two nodes never disagree and a
repeated stop changes nothing.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from heihei.core.errors import Refused
from heihei.core.hub import Notice
from heihei.heihei import liveinfo
from heihei.heihei.errors import (BAD_PARAMETER, BUSINESS_FAILED, LIVE_ENDED, NO_SUCH_LIVE, NOT_ALLOWED)
from heihei.heihei.livecore import (ANCHOR_BEAT, CLOSE_ROOM, LIVE_PREFIX, PAUSE_LIMIT, PLAYING, REPLAYS,
                                    ROOM_LINGER_S, SEQ, STREAM_GRACE, TIMERS, LiveCore, live_key, segments_key,
                                    timer, ulives_key, uopen_key, viewers_key)
from heihei.heihei.messages import ITEM
from heihei.heihei.push import link_for
from heihei.heihei.rooms import CHANNEL, RoomError
from heihei.store.scripts import Script

CREATE = Script("heihei_live_create", r"""
-- KEYS: 1 live seq, 2 the anchor's open live, 3 the anchor's lives.
-- ARGV: 1 first live id, 2 anchor, 3 title, 4 now ms, 5 live key prefix, 6 city.
-- Returns {new live id, the anchor's previous unclosed live or ''}.
local id = string.format('%d', tonumber(ARGV[1]) + redis.call('INCR', KEYS[1]) - 1)
local prev = redis.call('GET', KEYS[2]) or ''
redis.call('HSET', ARGV[5] .. id, 'liveId', id, 'userId', ARGV[2], 'title', ARGV[3], 'city', ARGV[6],
           'status', '0', 'visible', '1', 'paused', '0', 'streaming', '0', 'createTime', ARGV[4],
           'startTime', '', 'endTime', '', 'lockedSeats', '0', 'totalTickets', '0')
redis.call('SET', KEYS[2], id)
redis.call('ZADD', KEYS[3], ARGV[4], id)
return {id, prev}
""")

START = Script("heihei_live_start", r"""
-- KEYS: 1 live, 2 playing zset. ARGV: 1 now ms, 2 live id. Returns the status before (-1: no live).
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st == '0' then
  redis.call('HSET', KEYS[1], 'status', '1', 'startTime', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
end
return tonumber(st)
""")

STOP = Script("heihei_live_stop", r"""
-- KEYS: 1 live, 2 playing, 3 replays, 4 the anchor's open live, 5 viewers, 6 timers, 7 segments.
-- ARGV: 1 now ms, 2 live id, 3 viewer timer prefix ('v|<live>|').
-- Returns {the status before (-1: no live), viewers at the end}. Only 0 and 1 change.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1, 0} end
if st ~= '0' and st ~= '1' then return {tonumber(st), 0} end
local viewers = redis.call('ZRANGE', KEYS[5], 0, -1)
for i = 1, #viewers do redis.call('ZREM', KEYS[6], ARGV[3] .. viewers[i]) end
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[1], 'status', '2', 'endTime', ARGV[1], 'paused', '0', 'streaming', '0',
           'endOnline', #viewers)
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[1], 'startTime') ~= '' then redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2]) end
if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
local last = redis.call('LINDEX', KEYS[7], -1)
if last and string.sub(last, -1) == '|' then redis.call('LSET', KEYS[7], -1, last .. ARGV[1]) end
return {tonumber(st), #viewers}
""")

DELETE = Script("heihei_live_delete", r"""
-- KEYS: 1 live, 2 playing, 3 replays, 4 the anchor's open live. ARGV: 1 live id.
-- Returns the status before (-1: no live).
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
redis.call('HSET', KEYS[1], 'status', '4')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return tonumber(st)
""")

STREAM_UP = Script("heihei_live_stream_up", r"""
-- KEYS: 1 live, 2 segments. ARGV: 1 now ms, 2 publisher id. Returns the status (-1: no live).
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st ~= '0' and st ~= '1' then return tonumber(st) end
if redis.call('HGET', KEYS[1], 'streaming') ~= '1' then
  local last = redis.call('LINDEX', KEYS[2], -1)
  if not (last and string.sub(last, -1) == '|') then redis.call('RPUSH', KEYS[2], ARGV[1] .. '|') end
end
redis.call('HSET', KEYS[1], 'streaming', '1', 'publisher', ARGV[2])
return tonumber(st)
""")

STREAM_DOWN = Script("heihei_live_stream_down", r"""
-- KEYS: 1 live, 2 segments. ARGV: 1 now ms, 2 publisher id ('' = any).
-- Returns 1 if the live's stream is now down, 0 if it was not this publisher's or not up.
if redis.call('HGET', KEYS[1], 'streaming') ~= '1' then return 0 end
local who = redis.call('HGET', KEYS[1], 'publisher') or ''
if ARGV[2] ~= '' and who ~= '' and who ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'streaming', '0')
local last = redis.call('LINDEX', KEYS[2], -1)
if last and string.sub(last, -1) == '|' then redis.call('LSET', KEYS[2], -1, last .. ARGV[1]) end
return 1
""")

BAN = Script("heihei_live_ban", r"""
-- KEYS: 1 live, 2 playing, 3 replays, 4 the anchor's open live. ARGV: 1 live id, 2 now ms.
-- Returns the status before (-1: no live). A stopped (2) or banned (3) live becomes 3 and leaves the
-- listings; a deleted one (4) stays as it is. The caller stops a live that is 0 or 1 first.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st == '2' or st == '3' then
  redis.call('HSET', KEYS[1], 'status', '3', 'bannedTime', ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
end
return tonumber(st)
""")

REASON_TEXT = {"anchor": "主播结束了直播", "heartbeat": "主播已离开", "stream": "直播信号中断",
               "pause": "主播暂停太久", "replaced": "主播开始了新的直播", "deleted": "直播已删除",
               "operator": "直播已结束", "banned": "直播已被禁播"}


class Lives:
    """Creating, starting, pausing, stopping and deleting lives; the media server's stream events."""

    _log = Logger()

    def __init__(self, core: LiveCore) -> None:
        self.core = core
        self._background: set[defer.Deferred] = set()

    # -- helpers ----------------------------------------------------------------------

    def _title(self, title: str) -> str:
        title = title.strip()
        if not title:
            raise Refused(BAD_PARAMETER, "title (empty)")
        if len(title) > self.core.settings.title_max_chars:
            raise Refused(BAD_PARAMETER, f"title (longer than {self.core.settings.title_max_chars} characters)")
        return self.core.hub.moderation.clean(title)

    async def owned(self, uid: str, live_id: str) -> dict[str, str]:
        """The live if `uid` is its anchor: 731 when there is none, 711 when it is someone else's."""
        live = await self.core.require(live_id)
        if live.get("userId") != uid:
            raise Refused(NOT_ALLOWED, "not your live")
        return live

    def _background_task(self, coro) -> None:
        d = defer.Deferred.fromCoroutine(coro)
        self._background.add(d)
        d.addErrback(lambda f: self._log.failure("live background task failed", failure=f))
        d.addBoth(lambda _: self._background.discard(d))

    async def drain(self) -> None:
        if self._background:
            await defer.DeferredList(list(self._background), consumeErrors=True)

    async def _anchor_answer(self, live: dict[str, str], uid: str) -> dict[str, Any]:
        core = self.core
        anchor = await core.accounts.get(uid) or {}
        return {"live": await core.info(live, viewer=uid, anchor=anchor), "share": await core.share(live, anchor),
                "liveOptions": liveinfo.live_options(core.settings)}

    # -- the anchor's calls --------------------------------------------------------------

    async def create(self, uid: str, title: str) -> dict[str, Any]:
        core = self.core
        title = self._title(title)
        profile = await core.accounts.get(uid) or {}
        now = core.now_ms()
        live_id, previous = await CREATE(core.store, [SEQ, uopen_key(uid), ulives_key(uid)],
                                         [core.settings.first_live_id, uid, title, now, LIVE_PREFIX,
                                          profile.get("address", "")])
        if previous:
            await self.end(previous, "replaced")
        await core.rooms.open(live_id, live_id=live_id, broadcasting=True)
        try:
            await core.rooms.add_member(live_id, uid)
        except RoomError as e:
            await self.end(live_id, "anchor")
            raise Refused(BUSINESS_FAILED, f"cannot open the room ({e.reason})") from None
        await core.deadlines.set(timer(ANCHOR_BEAT, live_id), now + int(core.settings.heartbeat_timeout_s * 1000))
        self._log.info("user {user} created live {live}", user=uid, live=live_id)
        return await self._anchor_answer(await core.get(live_id), uid)

    async def unclosed(self, uid: str) -> dict[str, Any] | None:
        live_id = await self.core.store.get(uopen_key(uid))
        live = await self.core.get(live_id) if live_id else None
        if live is None or live.get("status") not in ("0", "1"):
            return None
        return await self._anchor_answer(live, uid)

    async def change(self, uid: str, live_id: str, title: str) -> dict[str, Any]:
        core = self.core
        live = await self.owned(uid, live_id)
        title = self._title(title)
        await core.store.hset(live_key(live_id), "title", title)
        live["title"] = title
        if live.get("status") in ("0", "1"):
            await core.to_room(live_id, {"msgType": "action", "action": "live-change", "comment": "修改直播标题",
                                         "liveId": liveinfo.id_value(live_id), "title": title,
                                         "msgId": await core.messaging.new_msg_id()})
        return {"live": await core.info(live, viewer=uid)}

    async def start(self, uid: str, live_id: str) -> None:
        """start-live: the anchor's app says its stream is up. With a media server that calls back,
        the live goes on when the stream really arrives (publish callback); without, now."""
        live = await self.owned(uid, live_id)
        if live.get("status") not in ("0", "1"):
            raise Refused(NO_SUCH_LIVE, "the live has ended")
        await self._beat_anchor(live_id)
        if not self.core.media.callback_key:
            await self.go_live(live_id)

    async def stop(self, uid: str, live_id: str) -> dict[str, Any]:
        core = self.core
        live = await self.owned(uid, live_id)
        if live.get("status") in ("0", "1"):
            await self.end(live_id, "anchor")
        live = await core.require(live_id)
        counts = await core.counts(live)
        counts = liveinfo.Counts(online=int(live.get("endOnline") or 0), total=counts.total, seats=counts.seats,
                                 locked=counts.locked)
        anchor = await core.accounts.get(uid) or {}
        return {"live": await core.info(live, viewer=uid, anchor=anchor, counts=counts),
                "share": await core.share(live, anchor)}

    async def pause(self, uid: str, live_id: str) -> None:
        live = await self.owned(uid, live_id)
        if live.get("status") not in ("0", "1"):
            raise Refused(LIVE_ENDED, f"liveId {live_id}")
        core = self.core
        await core.deadlines.cancel(timer(ANCHOR_BEAT, live_id))
        await core.deadlines.set(timer(PAUSE_LIMIT, live_id), core.now_ms() + int(core.settings.pause_max_s * 1000))
        await self._set_paused(live_id, live, True, "anchor")

    async def resume(self, uid: str, live_id: str) -> None:
        live = await self.owned(uid, live_id)
        if live.get("status") not in ("0", "1"):
            raise Refused(LIVE_ENDED, f"liveId {live_id}")
        await self.core.deadlines.cancel(timer(PAUSE_LIMIT, live_id))
        await self._beat_anchor(live_id)
        if live.get("pausedBy") != "stream" or live.get("streaming") == "1":
            await self._set_paused(live_id, live, False, "anchor")

    async def delete(self, uid: str, live_id: str) -> dict[str, Any]:
        core = self.core
        live = await self.owned(uid, live_id)
        if live.get("status") in ("0", "1"):
            await self.end(live_id, "deleted")
        await DELETE(core.store, [live_key(live_id), PLAYING, REPLAYS, uopen_key(uid)], [live_id])
        return {"live": await core.info(await core.require(live_id, deleted_ok=True), viewer=uid)}

    async def set_visible(self, uid: str, live_id: str, visible: int) -> dict[str, Any]:
        live = await self.owned(uid, live_id)
        await self.core.store.hset(live_key(live_id), "visible", str(visible))
        live["visible"] = str(visible)
        return {"live": await self.core.info(live, viewer=uid)}

    async def live_status(self, uid: str) -> dict[str, Any]:
        """`user/isinlive`'s answer fields: is `uid` an anchor live right now, and which live."""
        live_id = await self.core.store.get(uopen_key(uid))
        live = await self.core.get(live_id) if live_id else None
        if live is None or live.get("status") not in ("0", "1"):
            return {"isinlive": False}
        return {"isinlive": live["status"] == "1", "liveId": liveinfo.id_value(live_id),
                "liveStatus": int(live["status"])}

    # -- transitions ------------------------------------------------------------------

    async def _beat_anchor(self, live_id: str) -> None:
        core = self.core
        due = core.now_ms() + int(core.settings.heartbeat_timeout_s * 1000)
        await core.deadlines.set(timer(ANCHOR_BEAT, live_id), due)

    async def _set_paused(self, live_id: str, live: dict[str, str], paused: bool, by: str) -> None:
        core = self.core
        if (live.get("paused") == "1") == paused:
            return
        await core.store.hmset(live_key(live_id), {"paused": "1" if paused else "0", "pausedBy": by if paused else ""})
        live["paused"] = "1" if paused else "0"
        if paused:
            msg = {"msgType": "action", "action": "pause-live", "comment": "暂停直播", "text": "主播离开一下",
                   "liveId": liveinfo.id_value(live_id), "reason": by}
        else:
            msg = {"msgType": "action", "action": "continue-live", "comment": "继续直播", "text": "主播回来了",
                   "liveId": liveinfo.id_value(live_id)}
        await core.to_room(live_id, msg)

    async def go_live(self, live_id: str) -> bool:
        """0 → 1 (once): the live is on; the anchor's followers hear of it."""
        core = self.core
        before = int(await START(core.store, [live_key(live_id), PLAYING], [core.now_ms(), live_id]))
        if before != 0:
            return False
        live = await core.get(live_id)
        await core.mark_counts_changed(live_id)
        self._log.info("live {live} of user {user} is on", live=live_id, user=live.get("userId"))
        self._background_task(self._tell_followers(live))
        return True

    async def _tell_followers(self, live: dict[str, str]) -> None:
        """`start-live-notify` to every follower's connections, a push to those connected nowhere."""
        core = self.core
        anchor = live["userId"]
        profile = await core.accounts.get(anchor) or {}
        name = profile.get("displayName", "")
        link = link_for("live", id=live["liveId"])
        msg_id = await core.messaging.new_msg_id()
        msg = {"msgType": "action", "action": "start-live-notify", "comment": "系统通知", "link": link,
               "text": f"您关注的{name}开播了", "fromUserId": int(anchor), "fromUserName": name,
               "gender": profile.get("gender", "Unspecified"), "msgId": msg_id, "text-head": "您关注的",
               "text-tail": "开播了", "getuiAction": "live", "liveId": liveinfo.id_value(live["liveId"])}
        push = {"title": core.messaging.settings.push_title, "text": f"您关注的{name}开播了", "action": "live",
                "link": link, "msgId": msg_id, "fromUserName": name, "fromUserId": int(anchor),
                "gender": profile.get("gender", ""), "data": {"liveId": liveinfo.id_value(live["liveId"])}}
        item = {"msg": msg, "timeStamp": core.now_s()}
        async for chunk in core.follows.all_followers(anchor):
            await core.hub.notify_users(CHANNEL, chunk, Notice(ITEM, {"item": item}))
            online = set(await core.hub.presence.online_among(CHANNEL, chunk))
            pushes = [core.pusher.notify(u, push) for u in chunk if u not in online]
            if pushes:
                await defer.DeferredList(pushes, consumeErrors=True)

    async def end(self, live_id: str, reason: str) -> bool:
        """Stop a live that is 0 or 1 (idempotent): the room gets `stop-live`, then closes."""
        core = self.core
        live = await core.get(live_id)
        if live is None:
            return False
        before, online = await STOP(core.store, [live_key(live_id), PLAYING, REPLAYS, uopen_key(live["userId"]),
                                                 viewers_key(live_id), TIMERS, segments_key(live_id)],
                                    [core.now_ms(), live_id, timer("v", live_id) + "|"])
        if int(before) not in (0, 1):
            return False
        await core.deadlines.cancel(timer(ANCHOR_BEAT, live_id), timer(STREAM_GRACE, live_id),
                                    timer(PAUSE_LIMIT, live_id))
        live = await core.get(live_id)
        counts = await core.counts(live)
        counts = liveinfo.Counts(online=int(online), total=counts.total, seats=counts.seats, locked=counts.locked)
        public = await core.info(live, viewer=None, counts=counts)
        await core.to_room(live_id, {"msgType": "action", "action": "stop-live", "comment": "直播结束",
                                     "roomId": liveinfo.id_value(live_id), "liveId": liveinfo.id_value(live_id),
                                     "reason": reason, "text": REASON_TEXT.get(reason, "直播已结束"),
                                     "live": public, "msgId": await core.messaging.new_msg_id()})
        await core.deadlines.set(timer(CLOSE_ROOM, live_id), core.now_ms() + int(ROOM_LINGER_S * 1000))
        self._log.info("live {live} stopped ({reason})", live=live_id, reason=reason)
        return True

    async def ban(self, live_id: str) -> dict[str, Any]:
        """An operator's ban (the seed's status 3, 客服禁播): a live on now stops (its room gets `stop-live`
        with reason `banned`), and the live leaves the playing list and the replays for good."""
        core = self.core
        live = await core.require(live_id)
        if live.get("status") in ("0", "1"):
            await self.end(live_id, "banned")
        before = int(await BAN(core.store, [live_key(live_id), PLAYING, REPLAYS, uopen_key(live["userId"])],
                               [live_id, core.now_ms()]))
        if before == -1 or before == 4:
            raise Refused(NO_SUCH_LIVE, f"liveId {live_id}")
        self._log.info("live {live} banned", live=live_id)
        return {"liveId": live_id, "status": liveinfo.BANNED}

    async def close_room(self, live_id: str) -> None:
        await self.core.rooms.close(live_id)
        self.core.lanes.forget(live_id)

    # -- the media server's stream events (heihei.web.media) ---------------------------------

    async def stream_published(self, live_id: str, publisher: str) -> None:
        """A publish the callback admitted (its sign and proof already checked)."""
        core = self.core
        status = int(await STREAM_UP(core.store, [live_key(live_id), segments_key(live_id)],
                                     [core.now_ms(), publisher or "-"]))
        await core.deadlines.cancel(timer(STREAM_GRACE, live_id))
        if status == 0:
            await self.go_live(live_id)
        live = await core.get(live_id)
        if live and live.get("paused") == "1" and live.get("pausedBy") == "stream":
            await self._set_paused(live_id, live, False, "stream")

    async def stream_unpublished(self, live_id: str, publisher: str) -> None:
        core = self.core
        down = int(await STREAM_DOWN(core.store, [live_key(live_id), segments_key(live_id)],
                                     [core.now_ms(), publisher or ""]))
        live = await core.get(live_id)
        if not down or live is None or live.get("status") not in ("0", "1"):
            return
        await core.deadlines.set(timer(STREAM_GRACE, live_id), core.now_ms() + int(core.settings.stream_grace_s * 1000))
        if live.get("paused") != "1":
            await self._set_paused(live_id, live, True, "stream")

    async def recorded(self, live_id: str, path: str) -> None:
        """The media server finished a recording file of this live: `{file}` of lookbackAddr."""
        if path and await self.core.get(live_id) is not None:
            await self.core.store.hset(live_key(live_id), "recording", os.path.basename(path))
