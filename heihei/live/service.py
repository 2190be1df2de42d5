"""
The live realm's domain: what `Open`, `Login`, `Message` ... mean, whatever
the frames look like.

`heihei.protocols.live` parses frames and calls these coroutines; refusals
are `LiveError(reason)` with a reason the protocol maps to the seed's codes.
Everything shared with other realms goes through the hub: rooms and totals
(presence), broadcast and history (`send_to_room`), rate limits and banned
words. What only this realm has lives beside this module: activities, login
tokens, mute lists, the WeChat provider and the Total coalescer.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Protocol

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from heihei.config import ConfigError, LiveSettings
from heihei.core.errors import Refused
from heihei.core.hub import Notice
from heihei.core.model import Message, room_conversation
from heihei.core.policy import Rate, too_long
from heihei.incidents import STORE
from heihei.store.client import StoreUnavailable
from heihei.live.activities import ENDED, PENDING, REALM, Activities, Activity
from heihei.live.mutes import Mutes
from heihei.live.sessions import Session, Sessions
from heihei.live.totals import TotalCoalescer
from heihei.live.wechat import LoginFailed, LoginProvider

# refusal reasons (the protocol maps them to codes)
NOT_LOGGED_IN = "not_logged_in"
TOO_FREQUENT = "too_frequent"
MUTED = "muted"
TOO_LONG = "too_long"
NOT_OPEN = "not_open"
ENDED_REASON = "ended"
MISSING = "missing"
LOGIN_FAILED = "login_failed"

#: `History` answers at most this many messages
HISTORY_MAX = 100
#: login attempts per connection: each one costs two calls to WeChat
LOGIN_RATE = Rate(per_second=0.2, burst=3)
#: room switches per connection: each one is a cluster-wide total notice
OPEN_RATE = Rate(per_second=2.0, burst=10)
#: the only login type the seed knows
WECHAT = "wechat"
#: room events between nodes
EVENT_TOTAL = "total"
EVENT_REMOVED = "removed"


class LiveError(Refused):
    """A refusal with one of the live realm's reasons above."""


class RoomFrames(Protocol):
    """The wire side of pushes the domain starts (implemented by the protocol module)."""

    def total(self, clients: Iterable, total: int) -> None:
        """Tell these local connections the room's online total."""

    def removed(self, clients: Iterable) -> None:
        """Tell these local connections their activity was removed, and close them."""


def local_time(ms: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` in the server's local time zone, as the seed shows."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


class LiveService(Service):
    """One per node; a child of the node so its timers stop with it."""

    _log = Logger()

    def __init__(self, hub, store, settings: LiveSettings, *, clock, provider: LoginProvider,
                 frames: RoomFrames) -> None:
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self.provider = provider
        self.frames = frames
        self.activities = Activities(store)
        self.sessions = Sessions(store, clock, settings.token_ttl)
        self.mutes = Mutes(store, clock)
        self.rate = Rate(per_second=settings.rate, burst=settings.burst)
        self.totals = TotalCoalescer(clock, settings.total_interval_s, self._push_total)

    def stopService(self):
        super().stopService()
        self.totals.stop()

    def now_s(self) -> float:
        return self.clock.seconds()

    # -- rooms -----------------------------------------------------------------

    async def open(self, client, activity_id: str) -> tuple[Activity, int]:
        """Join the activity's room (leaving any other); returns the activity and the room total.

        The caller answers first and then calls `joined`, so the opener sees its
        answer before the Total push that the join causes."""
        if not self.hub.rates.allow((REALM, "open", client.session.id), OPEN_RATE):
            raise LiveError(TOO_FREQUENT, "too many Opens")
        activity = await self.activities.get(activity_id)
        if activity is None:
            raise LiveError(NOT_OPEN, "no such activity")
        previous = client.activity
        if previous is not None and previous != activity_id:
            client.activity = None
            await self.hub.leave_room(client, previous)
            await self.total_changed(previous)
        total = await self.hub.join_room(client, activity_id)
        if not client.connection_open:
            # closed while joining: its disconnect may have run before the join
            await self.hub.leave_room(client, activity_id)
            raise LiveError(NOT_OPEN, "connection closed")
        client.activity = activity_id
        return activity, total

    async def joined(self, activity_id: str) -> None:
        await self.total_changed(activity_id)

    async def left(self, rooms: list[str]) -> None:
        """A connection is gone (out of its room and presence already): its room hears the new total."""
        for room in rooms:
            await self.total_changed(room)

    async def total(self, activity_id: str) -> int:
        if await self.activities.get(activity_id) is None:
            raise LiveError(NOT_OPEN, "no such activity")
        return await self.hub.presence.room_total(REALM, activity_id)

    async def total_changed(self, activity_id: str) -> None:
        """Every node with viewers of the room pushes the new total (coalesced).

        Never raises: a lost notice costs one stale number until the next
        change, which is no reason to fail the join or leave that caused it."""
        try:
            await self.hub.notify_room(REALM, activity_id, Notice(EVENT_TOTAL, {"room": activity_id}))
        except StoreUnavailable as e:
            STORE.happened(str(e), during="announcing a room total")
        except Exception:
            self._log.failure("announcing the total of room {room} failed", room=activity_id)

    async def _push_total(self, room: str) -> None:
        if not self.hub.presence.local_room(REALM, room):
            return
        total = await self.hub.presence.room_total(REALM, room)
        clients = self.hub.presence.local_room(REALM, room)
        if clients:
            self.frames.total(list(clients), total)

    # -- login -------------------------------------------------------------------

    async def check_login(self, client, token: object) -> Session | None:
        session = await self.sessions.get(token)
        if session is not None:
            await self.bind(client, session)
        return session

    async def login(self, client, login_type: str, code: str) -> Session:
        if login_type != WECHAT:
            raise LiveError(LOGIN_FAILED, f"unsupported login type {login_type[:32]!r}")
        if not self.hub.rates.allow((REALM, "login", client.session.id), LOGIN_RATE):
            raise LiveError(TOO_FREQUENT, "too many login attempts")
        try:
            user = await self.provider.exchange(code)
        except LoginFailed as e:
            self._log.info("WeChat login failed for {peer}: {reason}", peer=client.peer, reason=e.reason)
            raise LiveError(LOGIN_FAILED, e.reason) from None
        session = await self.sessions.create(user.openid, user.nickname, user.headimgurl)
        await self.bind(client, session)
        self._log.info("user {user} logged in on {peer}", user=user.openid, peer=client.peer)
        return session

    async def bind(self, client, session: Session) -> None:
        """From now on this connection is `session.user` (its own messages show `my` = 1)."""
        client.token = session.token
        await client.session.rebind(session.user)

    # -- messages ------------------------------------------------------------------

    async def send(self, client, activity_id: str, token: object, text: str) -> Message:
        """Check and broadcast a chat message; returns it as stored."""
        token = token if token else client.token
        # the reads do not depend on each other: one round trip to Redis for all. The mute is
        # read for the user this connection is bound to (nearly always the one sending); it is
        # read again below if the token turns out to be someone else's
        bound = client.user if client.user is not None and token == client.token else None
        session, activity, muted = await _all(self.sessions.get(token), self.activities.get(activity_id),
                                              self.mutes.is_muted(activity_id, bound) if bound else _nothing())
        if session is None:
            raise LiveError(NOT_LOGGED_IN)
        if activity is None:
            raise LiveError(NOT_OPEN, "no such activity")
        state = activity.state(self.now_s())
        if state == PENDING:
            raise LiveError(NOT_OPEN, "not started")
        if state == ENDED:
            raise LiveError(ENDED_REASON)
        if too_long(text, self.settings.max_chars):
            raise LiveError(TOO_LONG)
        if not text.strip():
            raise LiveError(MISSING, "empty message")
        if session.user != bound:
            muted = await self.mutes.is_muted(activity_id, session.user)
        if muted:
            raise LiveError(MUTED)
        if not self.hub.rates.allow((REALM, activity_id, session.user), self.rate):
            raise LiveError(TOO_FREQUENT)
        await self.bind(client, session)
        body = {"userName": session.nickname, "headPic": session.headimgurl,
                "msg": self.hub.moderation.clean(text), "time": local_time(self.hub.now_ms())}
        result = await self.hub.send_to_room(REALM, session.user, activity_id, body)
        return result.message

    async def history(self, activity_id: str, count: int) -> list[Message]:
        """The newest `count` messages of the activity, oldest first."""
        if await self.activities.get(activity_id) is None:
            raise LiveError(NOT_OPEN, "no such activity")
        count = max(1, min(HISTORY_MAX, count))
        return await self.hub.history.latest(REALM, room_conversation(activity_id), count)

    # -- operators -------------------------------------------------------------------

    async def remove_activity(self, activity_id: str) -> bool:
        """Remove the activity (with history and mutes); viewers everywhere get -1005 and are closed."""
        existed = await self.activities.delete(activity_id)
        if existed:
            await self.hub.notify_room(REALM, activity_id, Notice(EVENT_REMOVED, {"room": activity_id}))
        return existed


async def _all(*coroutines) -> list[Any]:
    """Run coroutines at once (their Redis commands leave together); their results, or the first error."""
    try:
        return await defer.gatherResults([defer.Deferred.fromCoroutine(c) for c in coroutines], consumeErrors=True)
    except defer.FirstError as e:
        e.subFailure.raiseException()


async def _nothing() -> None:
    return None


def check_settings(s: LiveSettings) -> None:
    """Refuse at start-up what would make the realm misbehave later."""
    if not s.wechat_api.startswith(("https://", "http://")):
        raise ConfigError("[live] wechat_api must be an http:// or https:// URL")
    for name in ("rate", "wechat_timeout_s", "token_ttl", "total_interval_s"):
        if not getattr(s, name) > 0:
            raise ConfigError(f"[live] {name} must be greater than 0")
    for name in ("burst", "max_chars"):
        if getattr(s, name) < 1:
            raise ConfigError(f"[live] {name} must be at least 1")
