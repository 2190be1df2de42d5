"""
`LiveRooms`: the heihei app's live rooms on one node (`social.lives`).

Parts (docs/heihei-live.md has the whole picture):
    lives.py      Lives: create, start, pause, stop, delete; the media server's stream events
    livewatch.py  Watching: join, quit, heart-beats, get-live, the lists, online counts
    livemods.py   Moderation: mute, kick, managers, seats, knocks, invitations; the chat gate
    livemedia.py  MediaGate: the media server's publish / unpublish / play / record callbacks
    replays.py    ReplayChat: a replay's chat zip (messageAddr)
    lanes.py      Lanes: busy-room lanes in front of the room broadcast
    deadlines.py  Deadlines: timers in Redis any node fires
    livecore.py   the shared Redis layout and rendering

A Service: one sweeper per node (a LoopingCall every `sweep_interval_s` on
the injected clock) fires the due timers and pushes changed online counts; at
stop it waits for background work (start-live notices) and sends what the
lanes still hold. A tick asks Redis only when there is something to do: a
timer due (one this node armed, or the earliest one Redis reported at the last
claim), online counts this node changed, or `idle_sweep_s` since the last look
— so a node whose peer died finds that peer's timers within `idle_sweep_s`,
and an idle cluster does not ask Redis every second.
"""

from __future__ import annotations

import hashlib

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from heihei.config import ConfigError
from heihei.heihei.deadlines import Deadlines
from heihei.heihei.lanes import Lanes
from heihei.heihei.livecore import (ANCHOR_BEAT, CLOSE_ROOM, PAUSE_LIMIT, STREAM_GRACE, TIMERS, VIEWER_BEAT,
                                    LiveCore, live_key, uopen_key)
from heihei.heihei.liveinfo import PLAYING
from heihei.heihei.livemedia import MediaGate
from heihei.heihei.livemods import Moderation
from heihei.heihei.lives import Lives
from heihei.heihei.livewatch import Watching
from heihei.heihei.people import LiveState
from heihei.heihei.replays import ReplayChat

#: a claimed timer is another node's to fire again if this one has not finished it by then
TIMER_LEASE_S = 30.0


def check_settings(settings) -> None:
    s = settings
    for name in ("heartbeat_timeout_s", "stream_grace_s", "pause_max_s", "sweep_interval_s", "idle_sweep_s",
                 "lane_flush_s", "like_interval_s", "count_interval_s"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"[lives] {name} must be positive")
    if s.heartbeat_s <= 0 or s.heartbeat_timeout_s < s.heartbeat_s:
        raise ConfigError("[lives] heartbeat_s must be positive and heartbeat_timeout_s at least heartbeat_s")
    if s.seat_count < 0 or (s.seat_count and s.seat_count < s.min_open_seats + 1):
        raise ConfigError("[lives] seat_count must be 0 (no limit) or more than min_open_seats")
    if s.chat_budget_per_s < 1 or s.chat_sample_every < 0:
        raise ConfigError("[lives] chat_budget_per_s must be at least 1, chat_sample_every not negative")


class LiveRooms(Service):
    _log = Logger()
    name = "heihei-lives"

    def __init__(self, *, settings, media, public_url: str, store, hub, clock, accounts, blocks, follows, rooms,
                 messaging, pusher, signer=None, sign_secret: str = "", demo: bool = False) -> None:
        """`sign_secret`: what every node shares ([media] secret, else [heihei] server_secret); the key of
        liveKey and messageAddr signs is derived from it. `demo`: a demo node has no media server, so
        lives without stream addresses are what is expected (said at start, not warned about)."""
        self.demo = demo
        check_settings(settings)
        self.sign_secret_configured = bool(sign_secret)
        sign_key = hashlib.sha256(("heihei-lives:" + sign_secret).encode("utf-8")).digest()
        self.clock = clock
        self.lanes = Lanes(broadcast_items=rooms.broadcast_items, notify_user=messaging.notify, store=store,
                           clock=clock, budget_per_s=settings.chat_budget_per_s,
                           sample_every=settings.chat_sample_every, flush_s=settings.lane_flush_s,
                           like_interval_s=settings.like_interval_s, node_id=hub.node_id)
        self.deadlines = Deadlines(store, clock, TIMERS, lease_s=TIMER_LEASE_S)
        self.core = LiveCore(store=store, hub=hub, clock=clock, settings=settings, media=media,
                             public_url=public_url.rstrip("/"), accounts=accounts, blocks=blocks, follows=follows,
                             rooms=rooms, messaging=messaging, pusher=pusher, lanes=self.lanes,
                             deadlines=self.deadlines, signer=signer, sign_key=sign_key)
        self.lives = Lives(self.core)
        self.watching = Watching(self.core)
        self.moderation = Moderation(self.core, self.watching)
        self.media = MediaGate(self.core, self.lives)
        self.replays = ReplayChat(self.core)
        self._loop: task.LoopingCall | None = None
        self._ticking: defer.Deferred | None = None
        #: when this node must look at the timers next (ms): the earliest due time it knows of
        self._wake_at_ms: int | None = None
        self._armed_while_claiming: int | None = None
        self._last_look_ms = 0
        self.deadlines.on_armed = self._armed

    async def live_of(self, uid: str) -> LiveState | None:
        """The live `uid` is broadcasting now (status playing), or None: what `user/isinlive`
        answers (heihei.heihei.people.LiveStatus)."""
        live_id = await self.core.store.get(uopen_key(uid))
        if not live_id:
            return None
        if await self.core.store.hget(live_key(str(live_id)), "status") != str(PLAYING):
            return None
        return LiveState(live_id=str(live_id), room_id=str(live_id))

    # -- the sweeper ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if not self.sign_secret_configured:
            self._log.warn("[media] secret and [heihei] server_secret are empty: liveKey and messageAddr "
                           "signs are guessable")
        if self.core.signer is None:
            (self._log.info if self.demo else self._log.warn)(
                "[media] secret is empty: lives have no stream addresses; start-live alone starts them")
        elif not self.core.media.callback_key:
            self._log.warn("[media] callback_key is empty: media server callbacks are refused; start-live "
                           "starts a live without waiting for its stream")
        self._last_look_ms = self.core.now_ms()
        # other nodes forward this node the chat and likes of the rooms it leads (heihei.heihei.lanes)
        self.core.store.subscribe(self.lanes.channel_of(self.lanes.node_id), self.lanes.received)
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.core.settings.sweep_interval_s, now=False).addErrback(
            lambda f: self._log.failure("live sweeper stopped", failure=f))

    def _armed(self, due_ms: int) -> None:
        if self._wake_at_ms is None or due_ms < self._wake_at_ms:
            self._wake_at_ms = due_ms
        if self._armed_while_claiming is None or due_ms < self._armed_while_claiming:
            self._armed_while_claiming = due_ms

    def _work(self) -> tuple[bool, bool]:
        """(look at the timers, push counts) now?"""
        now = self.core.now_ms()
        timers = (self._wake_at_ms is not None and now >= self._wake_at_ms) or \
            now - self._last_look_ms >= self.core.settings.idle_sweep_s * 1000
        return timers, self.core.counts_changed_here

    def _tick(self):
        if self._ticking is not None:  # the previous sweep is still running
            return None
        timers, counts = self._work()
        if not timers and not counts:
            return None
        d = self._ticking = defer.Deferred.fromCoroutine(self.sweep(timers=timers, counts=counts))
        d.addErrback(lambda f: self._log.failure("live sweep failed", failure=f))

        def done(_):
            self._ticking = None

        d.addBoth(done)
        return None

    async def sweep(self, *, timers: bool = True, counts: bool = True) -> None:
        """Fire the due timers, then push the online counts that changed."""
        if timers:
            self._last_look_ms = self.core.now_ms()
            self._armed_while_claiming = None
            claimed = await self.deadlines.claim()
            known = [t for t in (self.deadlines.next_due_ms, self._armed_while_claiming) if t is not None]
            self._wake_at_ms = min(known) if known else None
            for member, claim in claimed:
                try:
                    if await self.deadlines.still_claimed(member, claim):
                        await self.fire(member)
                    await self.deadlines.done(member, claim)
                except Exception:
                    self._log.failure("live timer {member} failed", member=member)
        if counts:
            self.core.counts_changed_here = False
            if await self.watching.push_counts():
                self.core.counts_changed_here = True  # some wait for their gate: look again

    async def fire(self, member: str) -> None:
        kind, _, rest = member.partition("|")
        live_id, _, uid = rest.partition("|")
        if kind == ANCHOR_BEAT:
            await self.lives.end(live_id, "heartbeat")
        elif kind == STREAM_GRACE:
            live = await self.core.get(live_id)
            if live is not None and live.get("streaming") != "1":
                await self.lives.end(live_id, "stream")
        elif kind == PAUSE_LIMIT:
            await self.lives.end(live_id, "pause")
        elif kind == VIEWER_BEAT:
            await self.watching.leave(live_id, uid)
        elif kind == CLOSE_ROOM:
            await self.lives.close_room(live_id)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self.core.store.unsubscribe(self.lanes.channel_of(self.lanes.node_id), self.lanes.received)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._ticking is not None:
            try:
                await self._ticking
            except Exception:
                pass
        await self.lanes.stop()
        await self.lives.drain()

    # -- what other modules ask -------------------------------------------------------------

    async def live_status(self, uid: str) -> dict:
        return await self.lives.live_status(uid)

    async def room_text(self, uid: str, room: str, live_id: str, msg: dict) -> str:
        """msg/send-msg in a live's room (membership already checked): 722 for a muted sender, 733
        once the live has ended; then the chat lane."""
        await self.moderation.may_speak(uid, live_id)
        return await self.lanes.send(room, msg, sender=uid)

    async def to_live(self, live_id: str, msg: dict) -> str:
        """A trusted back end's item for a live's room (messageserver `toLive`), through its lane."""
        return await self.core.to_room(live_id, msg)
