"""
`Conferences`: co-hosting a live (seed 001's 连麦): a viewer joins the
anchor's video for everyone in the room.

How one starts: a viewer asks (`call-request` without userId: queued for
`REQUEST_S`, the anchor gets a `conference-request` item and the room's user
list is refreshed), and the anchor takes the request (`call-request` or
`accept-conference` with the viewer's userId); or the anchor invites
(`call-request` with userId of a viewer who did not ask: a
`conference-notify` to the viewer, valid `REQUEST_S`) and the viewer accepts
(`accept-conference`). Either way both get `join-conference`, call
`join-conference` for the RTC room token, and report `conference-success`
once their stream is up; when both have, the room gets `conference-status`
1. Refusals: `refuse-conference` (a `show-tip` to the one refused).

One conference per live and one per user at a time (739), held in Redis
(scripts below). Its countdowns are deadlines in Redis that any node fires
(heihei.heihei.countdowns, the chats' set): `cjoin|<liveId>|<created>` ends a
conference not up `JOIN_S` after its last join-conference (the seed's 6 s
from joinConference to conferenceSuccess), and `ccheck|<liveId>|<created>`
looks every `CHECK_S` whether the live still plays and the co-host is still
in its room (a viewer whose heart-beats stopped leaves it), so a dead
client or a dead node never leaves a user co-hosting. Requests and
invitations expire by their score (the deadline is the score itself): no
timer needs to fire for them.

The scripts that start and end a conference arm and remove its countdowns in
the same step: a node killed right after cannot leave one without them.

Redis (REALM "heihei"):
- `confreq:heihei:<liveId>`, `confinv:heihei:<liveId>` ZSET uid -> expiry ms
  (at most `QUEUE_MAX` each);
- `conf:heihei:<liveId>` HASH user, anchor, status (0 connecting, 1 on),
  ok_anchor, ok_user, created;
- `confu:heihei:<uid>` -> the live the viewer co-hosts in.
"""

from __future__ import annotations

from typing import Any

from heihei.core.errors import Refused
from heihei.heihei.accounts import REALM
from heihei.heihei.errors import BAD_USER_STATE, CONNECT_FAILED, LATE, MUTED_IN_LIVE, NO_SUCH_LIVE, USER_BUSY
from heihei.heihei.livecore import mute_key, viewers_key
from heihei.heihei.liveinfo import id_value
from heihei.store.keys import key
from heihei.store.scripts import Script

REQUEST_S = 30
JOIN_S = 6
CHECK_S = 10
QUEUE_MAX = 200
JOIN_TIMER, CHECK_TIMER = "cjoin", "ccheck"
#: conference-status's status: 0 connecting, 1 on, 2 ended
CONNECTING, ON, ENDED = 0, 1, 2


def requests_key(live_id: str) -> str:
    return key("confreq", REALM, live_id)


def invitations_key(live_id: str) -> str:
    return key("confinv", REALM, live_id)


def conf_key(live_id: str) -> str:
    return key("conf", REALM, live_id)


def cohost_key(uid: str) -> str:
    return key("confu", REALM, uid)


OFFER = Script("heihei_conf_offer", r"""
-- KEYS: 1 the requests or invitations zset. ARGV: 1 uid, 2 now ms, 3 expiry ms, 4 at most.
-- Returns 1 queued (or its expiry renewed), 0 the queue is full.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
""")

START = Script("heihei_conf_start", r"""
-- KEYS: 1 the conference, 2 the viewer's co-host key, 3 the zset the offer must be in, 4 the other zset,
--   5 the timers zset. ARGV: 1 viewer, 2 anchor, 3 now ms, 4 live id, 5 '1' if no offer is needed,
--   6 when the join timeout ends, 7 when the first liveness check is due (ms).
-- Returns 1 started; -1 the live has a conference; -2 the viewer co-hosts already; -3 no such offer (late).
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
if ARGV[5] ~= '1' then
  local until_ms = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if not until_ms or tonumber(until_ms) <= tonumber(ARGV[3]) then return -3 end
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'anchor', ARGV[2], 'status', '0', 'created', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[6], 'cjoin|' .. ARGV[4] .. '|' .. ARGV[3],
           ARGV[7], 'ccheck|' .. ARGV[4] .. '|' .. ARGV[3])
return 1
""")

END = Script("heihei_conf_end", r"""
-- KEYS: 1 the conference, 2 the timers zset. ARGV: 1 co-host key prefix, 2 live id, 3 its `created` ('' any).
-- Returns {user, anchor} of the conference ended, {} when there was none (or another one now).
local conf = redis.call('HMGET', KEYS[1], 'user', 'anchor', 'created')
if not conf[1] then return {} end
if ARGV[3] ~= '' and conf[3] ~= ARGV[3] then return {} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], 'cjoin|' .. ARGV[2] .. '|' .. conf[3], 'ccheck|' .. ARGV[2] .. '|' .. conf[3])
if redis.call('GET', ARGV[1] .. conf[1]) == ARGV[2] then redis.call('DEL', ARGV[1] .. conf[1]) end
return {conf[1], conf[2]}
""")

SUCCESS = Script("heihei_conf_success", r"""
-- KEYS: 1 the conference. ARGV: 1 'anchor' or 'user'.
-- Returns -1 no conference, 2 both are up now (status 1), 1 noted (status unchanged).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'ok_' .. ARGV[1], '1')
if redis.call('HGET', KEYS[1], 'status') == '0' and redis.call('HGET', KEYS[1], 'ok_anchor') == '1'
    and redis.call('HGET', KEYS[1], 'ok_user') == '1' then
  redis.call('HSET', KEYS[1], 'status', '1')
  return 2
end
return 1
""")

COHOST_PREFIX = key("confu", REALM) + ":"


def action(name: str, comment: str, live_id: str, **fields: Any) -> dict[str, Any]:
    return {"msgType": "action", "action": name, "comment": comment, "liveId": id_value(live_id), **fields}


def show_tip(desc: str, timeout_s: int = 3) -> dict[str, Any]:
    return {"msgType": "action", "action": "show-tip", "comment": "tip消息",
            "message": {"type": "toast", "title": "", "desc": desc, "jump": "", "timeout": timeout_s, "image": "",
                        "buttons": []}}


class Conferences:
    def __init__(self, *, lives, accounts, rtc, deadlines) -> None:
        #: heihei.heihei.liveservice.LiveRooms
        self.lives = lives
        self.core = lives.core
        self.store = self.core.store
        self.accounts = accounts
        self.rtc = rtc
        self.deadlines = deadlines
        self.core.on_viewer_joined = self.viewer_joined

    def now_ms(self) -> int:
        return self.core.now_ms()

    async def _playing(self, live_id: str) -> dict[str, str]:
        live = await self.core.require(live_id)
        if live.get("status") != "1":
            raise Refused(NO_SUCH_LIVE, f"live {live_id} is not playing")
        return live

    async def conference(self, live_id: str) -> dict[str, str]:
        return await self.store.hgetall(conf_key(live_id)) or {}

    async def _status_msg(self, live_id: str, conf: dict[str, str], status: int) -> dict[str, Any]:
        p = await self.accounts.get(conf.get("user")) or {}
        return action("conference-status", "连麦状态，0：连麦等待，1：已连麦 2:断开", live_id, status=status,
                      fromUserId=int(conf["user"]), fromUserName=p.get("displayName", ""),
                      gender=p.get("gender", ""), birthDay=p.get("birthDay", ""), coverUrl=p.get("coverUrl", ""))

    # -- asking ------------------------------------------------------------------------------

    async def call_request(self, uid: str, live_id: str, target: str | None) -> dict[str, Any]:
        """call-request: a viewer asks (722 when muted), or the anchor takes a request / invites."""
        live = await self._playing(live_id)
        anchor = live["userId"]
        if uid != anchor:
            if target not in (None, anchor):
                raise Refused(BAD_USER_STATE, "only the anchor names a userId")
            if await self.store.sismember(mute_key(live_id), uid):
                raise Refused(MUTED_IN_LIVE, "you are muted in this live")
            if await self.store.zscore(viewers_key(live_id), uid) is None:
                raise Refused(BAD_USER_STATE, "you are not in this live's room")
            if await self.store.get(cohost_key(uid)):
                raise Refused(USER_BUSY, "you are co-hosting already")
            until_ms = await self.store.zscore(invitations_key(live_id), uid)
            if until_ms is not None and float(until_ms) > self.now_ms() and await self._start(
                    live_id, uid, anchor, invitations_key(live_id), requests_key(live_id), quiet_late=True):
                return {"expireTime": 0}  # the anchor had invited us: on at once
            now = self.now_ms()
            if not int(await OFFER(self.store, [requests_key(live_id)], [uid, now, now + REQUEST_S * 1000,
                                                                          QUEUE_MAX])):
                raise Refused(BAD_USER_STATE, "the anchor's queue is full")
            p = await self.accounts.get(uid) or {}
            await self.core.to_user(anchor, action("conference-request", "申请连麦", live_id, expireTime=REQUEST_S,
                                                   fromUserId=int(uid), fromUserName=p.get("displayName", ""),
                                                   gender=p.get("gender", ""), coverUrl=p.get("coverUrl", "")))
            await self.core.mark_counts_changed(live_id)
            return {"expireTime": REQUEST_S}
        if target is None or target == anchor:
            raise Refused(BAD_USER_STATE, "userId (the viewer to co-host with)")
        if await self._start(live_id, target, anchor, requests_key(live_id), invitations_key(live_id),
                             quiet_late=True):
            return {"expireTime": 0}
        if await self.store.zscore(viewers_key(live_id), target) is None:
            raise Refused(BAD_USER_STATE, f"user {target} is not in this live's room")
        if await self.store.get(cohost_key(target)) or await self.conference(live_id):
            raise Refused(USER_BUSY, "a conference is on")
        now = self.now_ms()
        if not int(await OFFER(self.store, [invitations_key(live_id)], [target, now, now + REQUEST_S * 1000,
                                                                          QUEUE_MAX])):
            raise Refused(BAD_USER_STATE, "too many invitations")
        await self.core.to_user(target, action("conference-notify", "邀请连麦通知消息", live_id, text="主播邀你连线",
                                               expireTime=REQUEST_S))
        return {"expireTime": REQUEST_S}

    async def _start(self, live_id: str, viewer: str, anchor: str, offers: str, others: str, *,
                     quiet_late: bool = False) -> bool:
        """Start a conference from an offer in `offers`; False when there is none and `quiet_late`."""
        now = self.now_ms()
        join_by, check_at = now + (JOIN_S + REQUEST_S) * 1000, now + CHECK_S * 1000
        got = int(await START(self.store,
                              [conf_key(live_id), cohost_key(viewer), offers, others, self.deadlines.key],
                              [viewer, anchor, now, live_id, "0", join_by, check_at]))
        if got == -3:
            if quiet_late:
                return False
            raise Refused(LATE, "the offer expired or was withdrawn")
        if got in (-1, -2):
            raise Refused(USER_BUSY, "a conference is on")
        if self.deadlines.on_armed is not None:
            self.deadlines.on_armed(check_at)
        for who in (anchor, viewer):
            await self.core.to_user(who, action("join-conference", "加入连麦动作消息", live_id))
        return True

    async def accept(self, uid: str, live_id: str, target: str | None) -> dict[str, Any]:
        """accept-conference: the viewer takes the anchor's invitation (409 late, 739 busy), or the anchor
        a viewer's request (userId)."""
        live = await self._playing(live_id)
        anchor = live["userId"]
        if uid == anchor:
            if target is None or target == anchor:
                raise Refused(BAD_USER_STATE, "userId (the viewer whose request you take)")
            await self._start(live_id, target, anchor, requests_key(live_id), invitations_key(live_id))
        else:
            await self._start(live_id, uid, anchor, invitations_key(live_id), requests_key(live_id))
        return {"expireTime": JOIN_S}

    async def refuse(self, uid: str, live_id: str, target: str) -> None:
        """refuse-conference: the anchor turns a request down, or a viewer the anchor's invitation."""
        live = await self.core.require(live_id)
        anchor = live["userId"]
        if uid == anchor:
            if int(await self.store.zrem(requests_key(live_id), target)):
                await self.core.to_user(target, show_tip("主播暂时无法和你连麦"))
                await self.core.mark_counts_changed(live_id)
        elif target == anchor:
            if int(await self.store.zrem(invitations_key(live_id), uid)):
                p = await self.accounts.get(uid) or {}
                await self.core.to_user(anchor, show_tip(f"{p.get('displayName', '')}拒绝了你的连麦邀请"))
        else:
            raise Refused(BAD_USER_STATE, "userId (the anchor of this live)")

    # -- the conference ----------------------------------------------------------------------

    async def _party(self, uid: str, live_id: str) -> tuple[dict[str, str], str]:
        conf = await self.conference(live_id)
        if uid == conf.get("anchor"):
            return conf, "anchor"
        if uid == conf.get("user"):
            return conf, "user"
        raise Refused(CONNECT_FAILED, "no conference of yours in this live")

    async def join(self, uid: str, live_id: str) -> dict[str, Any]:
        """join-conference: the RTC room token (750 when the conference is over, not yours, or no RTC service
        is configured); the room gets conference-status 0 while it connects."""
        await self.core.require(live_id)
        conf, _ = await self._party(uid, live_id)
        if self.rtc.video is None:
            raise Refused(CONNECT_FAILED, "no RTC service is configured ([rtc] video_provider)")
        fields = self.rtc.room_fields(f"live-{live_id}", uid)
        token = fields.get("livekit") or fields["qiniu"]
        token = {**token, "expireTime": int(self.core.clock.seconds()) + self.rtc.ttl_s}
        status = int(conf.get("status") or 0)
        if status == CONNECTING:
            await self.deadlines.set(f"{JOIN_TIMER}|{live_id}|{conf['created']}", self.now_ms() + JOIN_S * 1000)
        msg = await self._status_msg(live_id, conf, status)
        await self.core.to_room(live_id, msg)
        return {"token": token, "confStatus": msg}

    async def success(self, uid: str, live_id: str) -> dict[str, Any]:
        """conference-success: this side's stream is up; when both are, the room gets conference-status 1."""
        await self.core.require(live_id)
        conf, side = await self._party(uid, live_id)
        got = int(await SUCCESS(self.store, [conf_key(live_id)], [side]))
        if got == -1:
            raise Refused(CONNECT_FAILED, "the conference is over")
        status = ON if got == 2 or conf.get("status") == "1" else CONNECTING
        msg = await self._status_msg(live_id, conf, status)
        if got == 2:
            await self.deadlines.cancel(f"{JOIN_TIMER}|{live_id}|{conf['created']}")
            await self.core.to_room(live_id, msg)
        return {"confStatus": msg}

    async def quit(self, uid: str, live_id: str) -> None:
        """quit-conference: the other side gets stop-conference, the room conference-status 2."""
        await self.core.require(live_id)
        try:
            conf, _ = await self._party(uid, live_id)
        except Refused:
            raise Refused(BAD_USER_STATE, "you are not co-hosting in this live") from None
        await self.end(live_id, conf.get("created", ""), by=uid)

    async def end(self, live_id: str, created: str, *, by: str | None = None) -> bool:
        """End the conference that began at `created` ('' whichever): stop-conference to the side(s) that
        did not ask, conference-status 2 to the room, the room's list refreshed."""
        got = await END(self.store, [conf_key(live_id), self.deadlines.key], [COHOST_PREFIX, live_id, created])
        if not got:
            return False
        user, anchor = str(got[0]), str(got[1])
        for who in (anchor, user):
            if who != by:
                await self.core.to_user(who, action("stop-conference", "结束连麦", live_id))
        await self.core.to_room(live_id, await self._status_msg(live_id, {"user": user}, ENDED))
        await self.core.mark_counts_changed(live_id)
        return True

    async def check(self, live_id: str, created: str) -> None:
        """Is the conference still alive? (the live plays, the co-host is still in its room)"""
        conf = await self.conference(live_id)
        if conf.get("created") != created:
            return
        live = await self.core.get(live_id) or {}
        if live.get("status") != "1" or await self.store.zscore(viewers_key(live_id), conf["user"]) is None:
            await self.end(live_id, created)
            return
        await self.deadlines.set(f"{CHECK_TIMER}|{live_id}|{created}", self.now_ms() + CHECK_S * 1000)

    async def fire(self, member: str) -> None:
        kind, live_id, created = (member.split("|") + ["", ""])[:3]
        if kind == JOIN_TIMER:
            conf = await self.conference(live_id)
            if conf.get("created") == created and conf.get("status") == "0":
                await self.end(live_id, created)
        elif kind == CHECK_TIMER:
            await self.check(live_id, created)

    async def viewer_joined(self, live_id: str, uid: str) -> None:
        """A viewer who enters a room with a conference on gets its conference-status (the seed: "如果有新的
        用户加入直播间内，也会收到此消息")."""
        conf = await self.conference(live_id)
        if conf:
            await self.core.to_user(uid, await self._status_msg(live_id, conf, int(conf.get("status") or 0)))

    async def cohosting(self, uid: str) -> str | None:
        """The live `uid` co-hosts in as a viewer, or None."""
        return await self.store.get(cohost_key(uid))
