"""
What every part of the live rooms shares: the Redis layout, reading a live,
rendering it for a viewer, and sending items to a room or a user.

Redis (realm id "heihei", every key from `heihei.store.keys.key`):
- `seq:heihei:live` counter: liveIds are `first_live_id + n - 1`; a live's
  roomId and stream name are its liveId
- `live:heihei:<liveId>` HASH {liveId, userId, title, city, status 0-4,
  visible 1|0, paused 0|1, pausedBy anchor|stream, streaming 0|1, publisher
  (the media server's client id), createTime/startTime/endTime (ms),
  lockedSeats, totalTickets (issue 19 adds to it), endOnline, recording}
- `ulives:heihei:<uid>` ZSET liveId -> createTime: a user's lives
- `uopen:heihei:<uid>` -> the anchor's unclosed live (status 0 or 1)
- `lplaying:heihei` ZSET liveId -> startTime; `lreplays:heihei` ZSET liveId ->
  endTime (ended lives that had started)
- `lviewers:heihei:<liveId>` ZSET uid -> join ms (who is watching now; the
  anchor is not in it); `lvisits:heihei:<liveId>` ZSET uid -> first join ms
  (totalUsers); `lreplayv:heihei:<liveId>` ZSET uid -> ms (replay viewers)
- `lmute:`, `lkick:heihei:<liveId>` SETs; `lknock:heihei:<liveId>` ZSET uid ->
  ms; `lmgr:heihei:<anchor>` ZSET uid -> ms (room managers are the anchor's)
- `lsegs:heihei:<liveId>` LIST "start|end" ms of each publish (replay timing)
- `ltimers:heihei` ZSET "<kind>|<liveId>[|<uid>]" -> due ms (heihei.heihei.deadlines)
- `ldirty:heihei` SET of lives whose online count changed; `lcntgate:heihei:<liveId>`
  a short-lived key that spaces count pushes
The room itself is heihei.heihei.rooms' room `<liveId>` bound to the live.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from heihei.core.errors import Refused
from heihei.heihei import liveinfo
from heihei.heihei.accounts import REALM
from heihei.heihei.errors import NO_SUCH_LIVE
from heihei.heihei.liveinfo import Addresses, Counts
from heihei.store.keys import key

SEQ = key("seq", REALM, "live")
PLAYING = key("lplaying", REALM)
REPLAYS = key("lreplays", REALM)
TIMERS = key("ltimers", REALM)
DIRTY = key("ldirty", REALM)
LIVE_PREFIX = key("live", REALM) + ":"

# timer kinds (members of TIMERS: "<kind>|<liveId>[|<uid>]")
ANCHOR_BEAT = "a"
VIEWER_BEAT = "v"
STREAM_GRACE = "g"
PAUSE_LIMIT = "p"
CLOSE_ROOM = "c"
#: how long after a live ends its room closes (its members leave): the stop-live item goes first
ROOM_LINGER_S = 2.0


def live_key(live_id: str) -> str:
    return key("live", REALM, live_id)


def ulives_key(uid: str) -> str:
    return key("ulives", REALM, uid)


def uopen_key(uid: str) -> str:
    return key("uopen", REALM, uid)


def viewers_key(live_id: str) -> str:
    return key("lviewers", REALM, live_id)


def visits_key(live_id: str) -> str:
    return key("lvisits", REALM, live_id)


def replay_viewers_key(live_id: str) -> str:
    return key("lreplayv", REALM, live_id)


def mute_key(live_id: str) -> str:
    return key("lmute", REALM, live_id)


def kick_key(live_id: str) -> str:
    return key("lkick", REALM, live_id)


def knock_key(live_id: str) -> str:
    return key("lknock", REALM, live_id)


def managers_key(anchor: str) -> str:
    return key("lmgr", REALM, anchor)


def segments_key(live_id: str) -> str:
    return key("lsegs", REALM, live_id)


def gate_key(live_id: str) -> str:
    return key("lcntgate", REALM, live_id)


def timer(kind: str, live_id: str, uid: str | None = None) -> str:
    return f"{kind}|{live_id}" if uid is None else f"{kind}|{live_id}|{uid}"


async def together(*steps) -> list:
    """Coroutines (or Deferreds) run at once, so their Redis commands leave in one send (one round trip): their
    results in order; the first failure is raised (the others' failures are consumed)."""
    try:
        return await defer.gatherResults([defer.ensureDeferred(step) for step in steps], consumeErrors=True)
    except defer.FirstError as e:
        e.subFailure.raiseException()


async def settle(*started: defer.Deferred) -> None:
    """Wait for Deferreds this call no longer needs the results of, their failures ignored (the caller
    raises its own error, or already used the result)."""
    for d in started:
        if not d.called:
            try:
                await d
            except Exception:
                pass
        else:
            d.addErrback(lambda failure: None)


@dataclass
class LiveCore:
    """The live rooms' dependencies, and the helpers every part uses."""

    store: Any
    hub: Any
    clock: Any
    settings: Any  # LivesSettings
    media: Any  # MediaSettings
    public_url: str
    accounts: Any
    blocks: Any
    follows: Any
    rooms: Any
    messaging: Any
    pusher: Any
    lanes: Any
    deadlines: Any
    #: heihei.outbound.streams.MediaSigner, or None without [media] secret
    signer: Any = None
    #: the key of messageAddr and liveKey signs (derived from [media] secret or [heihei] server_secret)
    sign_key: bytes = b""
    #: this node changed an online count since its sweeper last pushed counts
    counts_changed_here: bool = False
    #: async (live id, uid) after a viewer joined the room (co-hosting tells them of a conference on)
    on_viewer_joined: Any = None

    _log = Logger()

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def now_s(self) -> int:
        return int(self.clock.seconds())

    # -- reading ----------------------------------------------------------------------

    async def get(self, live_id: str) -> dict[str, str] | None:
        live = await self.store.hgetall(live_key(live_id))
        return live or None

    async def require(self, live_id: str, *, deleted_ok: bool = False) -> dict[str, str]:
        """The live, or 731 (no such live; deleted ones too unless `deleted_ok`)."""
        live = await self.get(live_id)
        if live is None or (not deleted_ok and live.get("status") == str(liveinfo.DELETED)):
            raise Refused(NO_SUCH_LIVE, f"liveId {live_id}")
        return live

    async def counts(self, live: dict[str, str]) -> Counts:
        live_id = live["liveId"]
        online, total = map(int, await together(self.store.zcard(viewers_key(live_id)),
                                                self.store.zcard(visits_key(live_id))))
        return Counts(online=online, total=total, seats=self.settings.seat_count,
                      locked=int(live.get("lockedSeats") or 0))

    # -- signs ------------------------------------------------------------------------

    def sign(self, *parts: object) -> str:
        text = ":".join(str(p) for p in parts)
        return hmac.new(self.sign_key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def live_key_for(self, live_id: str, uid: str) -> str:
        """An invitation (`liveKey`): lets that user into that live past its seat limit."""
        return self.sign("invite", live_id, uid)

    # -- rendering --------------------------------------------------------------------

    def addresses(self, live: dict[str, str], for_anchor: bool) -> Addresses:
        if self.signer is None:
            return Addresses()
        stream, now = live["liveId"], self.clock.seconds()
        pull = self.signer.pull(stream, now_s=now)
        if not for_anchor:
            return Addresses(stream=pull.flv, hls=pull.hls)
        push = self.signer.push(stream, now_s=now, with_proof=True)
        obj = None
        if self.signer.push_rtmp.startswith("rtmp://"):
            obj = self.signer.qiniu_obj(stream, now_s=now, with_proof=True)
        return Addresses(stream=pull.flv, hls=pull.hls, push=push.rtmp, qiniu_obj=obj)

    def share_addr(self, live: dict[str, str]) -> str:
        base = self.settings.share_url or (self.public_url + "/html/live.html")
        live_id = live["liveId"]
        return f"{base}?liveid={live_id}&sign={self.sign('share', live_id)}&uid={live.get('userId', '')}"

    def message_addr(self, live: dict[str, str]) -> str:
        if live.get("status") != str(liveinfo.STOPPED) or not live.get("startTime"):
            return ""
        live_id = live["liveId"]
        return (f"{self.public_url}/api/live/replay-messages/message_{live_id}.txt.zip"
                f"?sign={self.sign('replay', live_id)}")

    def lookback_addr(self, live: dict[str, str]) -> str:
        template = self.media.recording_url
        if not template or live.get("status") != str(liveinfo.STOPPED) or not live.get("startTime"):
            return ""
        recorded = live.get("recording", "")
        if "{file}" in template and not recorded:
            return ""
        return template.format(app=self.media.app, stream=live["liveId"], file=recorded)

    async def info(self, live: dict[str, str], *, viewer: str | None, anchor: dict[str, str] | None = None,
                   counts: Counts | None = None) -> dict[str, Any]:
        """A live as `viewer` sees it (the anchor gets the push address and qiniuObj)."""
        if anchor is None:
            anchor = await self.accounts.get(live.get("userId")) or {}
        for_anchor = viewer is not None and viewer == live.get("userId")
        return liveinfo.live_info(
            live, anchor, counts=counts or await self.counts(live), addresses=self.addresses(live, for_anchor),
            share_addr=self.share_addr(live), lookback_addr=self.lookback_addr(live),
            message_addr=self.message_addr(live), for_anchor=for_anchor, utc_offset_h=self.settings.utc_offset_h)

    async def share(self, live: dict[str, str], anchor: dict[str, str] | None = None) -> dict[str, Any]:
        if anchor is None:
            anchor = await self.accounts.get(live.get("userId")) or {}
        return liveinfo.share(title=self.settings.share_title, anchor_name=anchor.get("displayName", ""),
                              url=self.share_addr(live), cover_url=anchor.get("coverUrl", ""),
                              status=int(live.get("status") or 0))

    # -- sending ----------------------------------------------------------------------

    async def to_room(self, live_id: str, msg: dict[str, Any], *, sender: str = "0") -> str:
        """An item for the live's room, through its lane (heihei.heihei.lanes)."""
        return await self.lanes.send(live_id, msg, sender=sender)

    async def to_user(self, uid: str, msg: dict[str, Any]) -> None:
        """An item for every channel connection of one user (not stored)."""
        await self.messaging.notify(uid, {"msg": msg, "timeStamp": self.now_s()})

    async def mark_counts_changed(self, live_id: str) -> None:
        await self.store.sadd(DIRTY, live_id)
        self.counts_changed_here = True

    async def is_manager(self, anchor: str, uid: str) -> bool:
        return await self.store.zscore(managers_key(anchor), uid) is not None

    def from_fields(self, profile: dict[str, str] | None, uid: str) -> dict[str, Any]:
        """The sender fields of the seed's room items."""
        p = profile or {}
        return {"fromUserId": int(uid) if uid.isdigit() else uid, "fromUserName": p.get("displayName", ""),
                "gender": p.get("gender", "Unspecified"), "birthDay": p.get("birthDay", ""),
                "coverUrl": p.get("coverUrl", "")}
