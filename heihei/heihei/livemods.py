"""
Who may do what in a live room: muting, kicking, room managers, seats,
knocking and invitations, system notices — and the gate every chat item of a
room passes (text, barrage, like).

Rights: the anchor may do everything in their room; the anchor's room
managers (`livemgr`, kept per anchor across lives) may mute, unmute and kick
viewers and post system notices, but not touch the anchor or another manager.
Everyone else gets 711. Moderation items (`shutup-user`, `shutup-open-user`,
the kicked user's `quit-live`) go through the priority lane: never dropped.
"""

from __future__ import annotations

from typing import Any

from heihei.core.errors import Refused
from heihei.heihei import liveinfo
from heihei.heihei.follows import following_key
from heihei.heihei.errors import (BAD_PARAMETER, BAD_ROOM, BUSINESS_FAILED, KEEP_SEATS, KNOCKED_RECENTLY, MUTED_IN_LIVE,
                                  NO_SUCH_LIVE, NO_SUCH_USER, NOT_ALLOWED)
from heihei.heihei.livecore import (DIRTY, LiveCore, kick_key, knock_key, live_key, managers_key, mute_key)
from heihei.heihei.push import link_for
from heihei.store.scripts import Script

SYSTEM_TEXT_MAX = 200
INVITE_LIST_MAX = 50

LOCK_SEAT = Script("heihei_live_lock_seat", r"""
-- KEYS: 1 live, 2 dirty lives. ARGV: 1 '1' unlock / '0' lock, 2 seats, 3 open seats to keep, 4 live id.
-- Returns the locked seats now, or -1 when locking one more would leave too few open.
local locked = tonumber(redis.call('HGET', KEYS[1], 'lockedSeats') or '0')
if ARGV[1] == '1' then
  if locked > 0 then locked = locked - 1 end
else
  if tonumber(ARGV[2]) - locked - 1 < tonumber(ARGV[3]) then return -1 end
  locked = locked + 1
end
redis.call('HSET', KEYS[1], 'lockedSeats', locked)
redis.call('SADD', KEYS[2], ARGV[4])
return locked
""")

KNOCK = Script("heihei_live_knock", r"""
-- KEYS: 1 knocks zset. ARGV: 1 uid, 2 now ms, 3 interval ms. Returns 1 knocked, 0 too soon.
local last = redis.call('ZSCORE', KEYS[1], ARGV[1])
if last and tonumber(ARGV[2]) - tonumber(last) < tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
""")

ADD_MANAGER = Script("heihei_live_add_manager", r"""
-- KEYS: 1 the anchor's managers. ARGV: 1 uid, 2 now ms, 3 at most. Returns 1, or 0 when full.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
""")


class Moderation:
    def __init__(self, core: LiveCore, watching) -> None:
        self.core = core
        self.watching = watching

    # -- rights ------------------------------------------------------------------------

    async def _room_power(self, uid: str, live_id: str) -> tuple[dict[str, str], bool]:
        """(the live, whether uid is its anchor) if uid is the anchor or one of their managers; else 711.
        `uid` None is an operator (admin API, manhole), who has the anchor's powers in every room."""
        live = await self.core.require(live_id)
        if uid is None:
            return live, True
        anchor = live.get("userId")
        if uid == anchor:
            return live, True
        if await self.core.is_manager(anchor, uid):
            return live, False
        raise Refused(NOT_ALLOWED, "only the anchor and the room managers may do this")

    async def _target(self, live: dict[str, str], uid: str, target: str, is_anchor: bool) -> None:
        if not await self.core.accounts.exists(target):
            raise Refused(NO_SUCH_USER, f"userId {target}")
        if target == live.get("userId") or target == uid:
            raise Refused(NOT_ALLOWED, "not on the anchor or yourself")
        if not is_anchor and await self.core.is_manager(live["userId"], target):
            raise Refused(NOT_ALLOWED, "only the anchor may do this to a room manager")

    # -- muting and kicking --------------------------------------------------------------

    async def mute(self, uid: str, live_id: str, target: str, muted: bool) -> None:
        core = self.core
        live, is_anchor = await self._room_power(uid, live_id)
        await self._target(live, uid, target, is_anchor)
        if muted:
            changed = int(await core.store.sadd(mute_key(live_id), target))
        else:
            changed = int(await core.store.srem(mute_key(live_id), target))
        if changed and live.get("status") in ("0", "1"):
            action, comment = ("shutup-user", "被禁言") if muted else ("shutup-open-user", "取消禁言")
            await core.to_room(live_id, {"msgType": "action", "action": action, "comment": comment,
                                         "userId": int(target), "roomId": liveinfo.id_value(live_id),
                                         "liveId": liveinfo.id_value(live_id),
                                         "msgId": await core.messaging.new_msg_id()})

    async def is_muted(self, live_id: str, target: str) -> bool:
        await self.core.require(live_id)
        return bool(await self.core.store.sismember(mute_key(live_id), target))

    async def kick(self, uid: str, live_id: str, target: str) -> None:
        """Out of the room, and out for the rest of this live (join-live answers 737)."""
        core = self.core
        live, is_anchor = await self._room_power(uid, live_id)
        await self._target(live, uid, target, is_anchor)
        await core.store.sadd(kick_key(live_id), target)
        await core.to_user(target, {"msgType": "action", "action": "quit-live", "comment": "踢出房间动作消息",
                                    "liveId": liveinfo.id_value(live_id)})
        await self.watching.leave(live_id, target)

    # -- managers -----------------------------------------------------------------------

    async def set_manager(self, uid: str, target: str, add: bool) -> None:
        core = self.core
        if target == uid:
            raise Refused(BAD_PARAMETER, "userId (yourself)")
        if not await core.accounts.exists(target):
            raise Refused(NO_SUCH_USER, f"userId {target}")
        if not add:
            await core.store.zrem(managers_key(uid), target)
            return
        added = int(await ADD_MANAGER(core.store, [managers_key(uid)],
                                      [target, core.now_ms(), core.settings.max_managers]))
        if not added:
            raise Refused(BUSINESS_FAILED, f"at most {core.settings.max_managers} room managers")

    async def managers(self, viewer: str, anchor: str) -> dict[str, Any]:
        core = self.core
        if not await core.accounts.exists(anchor):
            raise Refused(NO_SUCH_USER, f"userId {anchor}")
        ids = list(await core.store.zrevrange(managers_key(anchor), 0, -1))
        profiles = await core.accounts.get_many(ids)
        flags = await core.follows.flags(viewer, ids)
        return {"users": [liveinfo.user_entry(profiles[m], flags.get(m, False), isMgr=True)
                          for m in ids if m in profiles]}

    async def user_card(self, viewer: str, live_id: str, target: str) -> dict[str, Any]:
        """getuser: a user as seen from a live room (the card the client opens on a name)."""
        core = self.core
        live = await core.require(live_id)
        profile = await core.accounts.get(target)
        if profile is None:
            raise Refused(NO_SUCH_USER, f"userId {target}")
        followed = viewer != target and await core.follows.follows(viewer, target)
        in_room = await self.watching.in_room(live, target)
        return {"user": liveinfo.user_entry(profile, followed),
                "isCreator": target == live.get("userId"),
                "isMgr": await core.is_manager(live["userId"], target),
                "isshutup": 1 if await core.store.sismember(mute_key(live_id), target) else 2,
                "inRoom": in_room,
                "canManage": viewer == live.get("userId") or (await core.is_manager(live["userId"], viewer)
                                                              and target != live.get("userId"))}

    # -- seats, knocks and invitations ------------------------------------------------------

    async def lock_seat(self, uid: str, live_id: str, unlock: bool) -> None:
        core = self.core
        live = await core.require(live_id)
        if live.get("userId") != uid:
            raise Refused(NOT_ALLOWED, "not your live")
        if live.get("status") not in ("0", "1"):
            raise Refused(NO_SUCH_LIVE, "the live has ended")
        if not core.settings.seat_count:
            raise Refused(BUSINESS_FAILED, "this server's rooms have no seats")
        locked = int(await LOCK_SEAT(core.store, [live_key(live_id), DIRTY],
                                     ["1" if unlock else "0", core.settings.seat_count,
                                      core.settings.min_open_seats, live_id]))
        core.counts_changed_here = True
        if locked < 0:
            raise Refused(KEEP_SEATS, f"keep at least {core.settings.min_open_seats} seats open")

    async def knock(self, uid: str, live_id: str) -> None:
        core = self.core
        live = await core.require(live_id)
        if live.get("status") != "1":
            raise Refused(NO_SUCH_LIVE, "the live is not playing")
        if uid == live.get("userId"):
            raise Refused(NOT_ALLOWED, "your own room")
        if not int(await KNOCK(core.store, [knock_key(live_id)],
                               [uid, core.now_ms(), int(core.settings.knock_interval_s * 1000)])):
            raise Refused(KNOCKED_RECENTLY, "knocked a moment ago")
        profile = await core.accounts.get(uid)
        msg = {"msgType": "action", "action": "knock-live-room", "comment": "敲门",
               "text": f"{(profile or {}).get('displayName', '')}敲门想加入", "liveId": liveinfo.id_value(live_id),
               **core.from_fields(profile, uid)}
        anchor = live["userId"]
        for who in [anchor, *await core.store.zrange(managers_key(anchor), 0, -1)]:
            await core.to_user(who, msg)

    async def invite_list(self, uid: str, live_id: str) -> dict[str, Any]:
        """Who the anchor may invite: those who knocked (newest first), then the users they follow."""
        core = self.core
        live = await core.require(live_id)
        if live.get("userId") != uid:
            raise Refused(NOT_ALLOWED, "not your live")
        knocked = list(await core.store.zrevrange(knock_key(live_id), 0, INVITE_LIST_MAX - 1))
        following = list(await core.store.zrevrange(following_key(uid), 0, INVITE_LIST_MAX - 1))
        ids = list(dict.fromkeys(knocked + following))[:INVITE_LIST_MAX]
        profiles = await core.accounts.get_many(ids)
        flags = await core.follows.flags(uid, ids)
        knocked_set = set(knocked)
        return {"users": [liveinfo.user_entry(profiles[m], flags.get(m, False), knocked=m in knocked_set)
                          for m in ids if m in profiles]}

    async def invite(self, uid: str, live_id: str, target: str) -> None:
        """A `live-invite` item with the user's `liveKey` (join-live with it passes the seat limit);
        a push too when they are connected nowhere."""
        core = self.core
        live = await core.require(live_id)
        if live.get("userId") != uid:
            raise Refused(NOT_ALLOWED, "not your live")
        if live.get("status") not in ("0", "1"):
            raise Refused(NO_SUCH_LIVE, "the live has ended")
        if not await core.accounts.exists(target) or target == uid:
            raise Refused(NO_SUCH_USER, f"userId {target}")
        profile = await core.accounts.get(uid) or {}
        name = profile.get("displayName", "")
        live_key_value = core.live_key_for(live_id, target)
        link = f"{link_for('live', id=live_id)}&liveKey={live_key_value}"
        text = f"队长{name}想邀请你加入队伍，是否加入？"
        msg_id = await core.messaging.new_msg_id()
        msg = {"msgType": "action", "action": "live-invite", "liveId": liveinfo.id_value(live_id),
               "liveKey": live_key_value, "text": text, "link": link, **core.from_fields(profile, uid),
               "honours": [], "msgId": msg_id}
        await core.to_user(target, msg)
        if not await core.hub.presence.is_online("channel", target):
            core.pusher.notify(target, {"title": text, "text": text, "action": "live-invite", "link": link,
                                        "msgId": msg_id, "fromUserName": name, "fromUserId": int(uid),
                                        "gender": profile.get("gender", ""), "data": {}})

    async def system_notice(self, uid: str, live_id: str, text: str) -> None:
        """systemnotify: the anchor or a manager posts a `system` item to the room."""
        core = self.core
        live, _ = await self._room_power(uid, live_id)
        if live.get("status") not in ("0", "1"):
            raise Refused(NO_SUCH_LIVE, "the live has ended")
        text = text.strip()
        if not text or len(text) > SYSTEM_TEXT_MAX:
            raise Refused(BAD_PARAMETER, f"text (1 to {SYSTEM_TEXT_MAX} characters)")
        await core.to_room(live_id, {"msgType": "system", "text": core.hub.moderation.clean(text),
                                     "msgId": await core.messaging.new_msg_id(),
                                     "roomId": liveinfo.id_value(live_id)})

    # -- what the room's members say ------------------------------------------------------

    async def speaker(self, uid: str, live_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """(the live, the speaker's profile) for one who may speak in it now: a playing (or about to
        start) live, in the room, not muted. 731 / 506 / 722 otherwise."""
        core = self.core
        live = await core.require(live_id)
        if live.get("status") not in ("0", "1"):
            raise Refused(NO_SUCH_LIVE, "the live has ended")
        await self.watching.require_in_room(live, uid)
        if await core.store.sismember(mute_key(live_id), uid):
            raise Refused(MUTED_IN_LIVE, f"muted in live {live_id}")
        return live, await core.accounts.get(uid) or {}

    async def may_speak(self, uid: str, live_id: str) -> None:
        """Room text from a member: 733 when the live has ended, 722 when muted. Lives that back ends
        run themselves (a room bound with open-room.action, no live here) have no mutes."""
        core = self.core
        live = await core.get(live_id)
        if live is None:
            return
        if live.get("status") not in ("0", "1"):
            raise Refused(BAD_ROOM, "the live has ended")
        if await core.store.sismember(mute_key(live_id), uid):
            raise Refused(MUTED_IN_LIVE, f"muted in live {live_id}")

    async def barrage(self, uid: str, live_id: str, text: str, total_ticket: int = 0) -> str:
        """A `barrage` item (buy-bullet, issue 19, charges for it and then calls this)."""
        core = self.core
        _, profile = await self.speaker(uid, live_id)
        msg = {"msgType": "barrage", **core.from_fields(profile, uid), "text": core.hub.moderation.clean(text),
               "roomId": liveinfo.id_value(live_id), "totalTicket": total_ticket,
               "msgId": await core.messaging.new_msg_id()}
        return await core.to_room(live_id, msg, sender=uid)

    async def like(self, uid: str, live_id: str, kind: int) -> None:
        """live-like: counted into the room's next `like` item (muted users may like)."""
        core = self.core
        live = await core.require(live_id)
        if live.get("status") != "1":
            raise Refused(NO_SUCH_LIVE, "the live is not playing")
        await self.watching.require_in_room(live, uid)
        profile = await core.accounts.get(uid)
        core.lanes.like(live_id, {"msgType": "like", "text": "点亮了", "type": kind, **core.from_fields(profile, uid),
                                  "roomId": liveinfo.id_value(live_id)})
