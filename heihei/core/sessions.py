"""
A connection's life in the core, the same for every realm.

Each realm's adapter speaks its own wire format, but what happens around it
is shared, so it is written once here:

- **one connection id** (`Session.id`, `<node>.<n>`), unique in the cluster:
  rate-limit scopes, "everyone but the connection that caused it" in notices,
  logs;
- **login → rooms → replay**: `login(user, rooms=..., replay=...)` registers
  the user's presence (holding live messages back when a replay follows),
  joins the rooms, and says whether the connection is still open; `replay()`
  then sends what the inbox kept, in order, and releases what was held;
- **clean-up after the pending inputs drain**: when the connection is lost,
  `closed()` waits until every input it queued (`run_in_order`) has been
  handled, so none of them re-registers it afterwards, then leaves its rooms
  and presence and runs the realm's hooks (group notices, room totals);
- **shutdown tracking**: every clean-up is tracked by the node-wide
  `Cleanups`, which the node awaits before it stops Redis;
- **liveness**: every frame, ping and pong marks the connection seen; the
  realm's `Liveness` (heihei.core.heartbeat) beats and closes the silent, on
  the node's clock.
"""

from __future__ import annotations

import itertools
from typing import Awaitable, Callable, Sequence

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from heihei.core.heartbeat import Liveness
from heihei.incidents import report

CleanupHook = Callable[[list[str]], Awaitable[None]]
#: (credential, user) of every session that has one -> for each, is it still valid
CredentialCheck = Callable[[Sequence[tuple[str, str]]], Awaitable[Sequence[bool]]]


class Cleanups:
    """Connection clean-ups still running on this node; the node waits for them before Redis stops."""

    def __init__(self) -> None:
        self._running: set[defer.Deferred] = set()

    def track(self, d: defer.Deferred) -> None:
        self._running.add(d)
        d.addBoth(lambda result: (self._running.discard(d), result)[1])

    def __len__(self) -> int:
        return len(self._running)

    async def drain(self) -> None:
        while self._running:
            await defer.DeferredList(list(self._running), consumeErrors=True)


#: sessions whose credentials one call checks. Why: at 10,000 connections one call was ~100 ms
#: of the node (hashing every token, a 10,000-key script, its answer) and of its Redis, every
#: `credential_check_s`, and every request and join in that window waited (bench/README.md,
#: scenario 8); slices of this size take a few ms each, in turns of their own
CHECK_SLICE = 500

#: the close code of a connection that did not log in in time
CLOSE_LOGIN_TIMEOUT = 4401


class RealmSessions(Service):
    """The sessions of one realm on this node, its liveness loops and its login deadline (a child
    of the node)."""

    _log = Logger()

    def __init__(self, realm: str, hub, cleanups: Cleanups, liveness: Liveness | None = None, *,
                 login_timeout_s: float = 0.0, credential_check: CredentialCheck | None = None,
                 credential_check_s: float = 10.0) -> None:
        self.realm = realm
        self.hub = hub
        self.cleanups = cleanups
        self.liveness = liveness
        self.login_timeout_s = login_timeout_s
        self.credential_check = credential_check
        self.credential_check_s = credential_check_s
        self._check_loop = None
        self._check_start = None
        self._numbers = itertools.count(1)
        #: the open sessions of this realm on this node
        self.open_sessions: set[Session] = set()

    def open(self, conn) -> "Session":
        """`conn` is open: give it a session (and start watching whether it is alive)."""
        session = Session(self, conn, f"{self.hub.node_id}.{next(self._numbers)}")
        self.open_sessions.add(session)
        if self.liveness is not None:
            self.liveness.track(conn)
        if self.login_timeout_s > 0:
            session._login_deadline = self.hub.clock.callLater(self.login_timeout_s, session._login_too_late)
        return session

    def startService(self) -> None:
        super().startService()
        if self.liveness is not None:
            self.liveness.start()
        if self.credential_check is not None and self.credential_check_s > 0:
            # half an interval out of step with the node's other 10 s loops (the presence refresh and
            # its full assert every 30 s): together they held Redis ~70 ms at once (bench scenario 8)
            self._check_start = self.hub.clock.callLater(self.credential_check_s / 2, self._start_checking)

    def _start_checking(self) -> None:
        from twisted.internet import task

        self._check_start = None
        self._check_loop = task.LoopingCall(self._check_credentials)
        self._check_loop.clock = self.hub.clock
        self._check_loop.start(self.credential_check_s, now=True).addErrback(
            lambda f: self._log.failure("credential check loop died", failure=f))

    def stopService(self) -> None:
        super().stopService()
        if self.liveness is not None:
            self.liveness.stop()
        if self._check_start is not None and self._check_start.active():
            self._check_start.cancel()
        self._check_start = None
        if self._check_loop is not None and self._check_loop.running:
            self._check_loop.stop()
        self._check_loop = None

    def _check_credentials(self) -> defer.Deferred:
        # an unavailable store is the node's storage incident (one line), anything else a bug
        return defer.Deferred.fromCoroutine(self.check_credentials()).addErrback(
            report, self._log, f"checking {self.realm} credentials failed")

    async def check_credentials(self) -> int:
        """Close every connection whose credential (a session token) is no longer valid: expired,
        signed out, or bound to someone else since. Returns how many were closed."""
        sessions = [s for s in self.open_sessions if s.credential is not None and s.conn.user is not None]
        gone = 0
        for start in range(0, len(sessions), CHECK_SLICE):
            chunk = [s for s in sessions[start:start + CHECK_SLICE] if s.is_open]  # some closed meanwhile
            if not chunk:
                continue
            valid = await self.credential_check([(s.credential, s.conn.user) for s in chunk])
            for session, ok in zip(chunk, valid):
                if not ok and session.revoked():
                    gone += 1
        return gone

    def revoke(self, matches: Callable[[str], bool]) -> int:
        """Close this node's connections whose credential `matches` (a sign-out, a rebound token)."""
        gone = [s for s in self.open_sessions if s.credential is not None and matches(s.credential)]
        for session in gone:
            session.revoked()
        return len(gone)


class Session:
    _log = Logger()

    def __init__(self, sessions: RealmSessions, conn, session_id: str) -> None:
        self.sessions = sessions
        self.conn = conn
        self.id = session_id
        self._hooks: list[CleanupHook] = []
        self._closed = False
        self._login_deadline = None
        #: what the connection proved itself with (a session token), if the realm checks it again
        self.credential: str | None = None
        #: the realm sends this connection the user's inbox at login (and again after Redis comes back)
        self.replays = False
        self.keeps_inbox = False

    @property
    def hub(self):
        return self.sessions.hub

    def seen(self) -> None:
        liveness = self.sessions.liveness
        if liveness is not None and not self._closed:
            liveness.seen(self.conn)

    # -- login ---------------------------------------------------------------------

    async def login(self, user: str, *, rooms: tuple[str, ...] | list[str] = (), replay: bool = False,
                    hold: bool = False) -> bool:
        """Register `user` on this connection and join `rooms`; False if the connection went meanwhile.

        With `replay`, live messages for the connection wait until `replay()`
        has sent the stored ones, so none overtakes them or arrives twice; with
        `hold` (a realm whose clients pull their inbox) they wait until
        `release()`, so the login answer is the first thing the client reads. A
        connection closed meanwhile is cleaned up by `closed()` as usual."""
        conn = self.conn
        conn.user = user
        self.replays = replay
        self.keeps_inbox = replay or hold
        self.logged_in()
        await self.hub.connect(conn, replay=replay or hold)
        for room in rooms:
            if not conn.connection_open:
                return False
            await self.hub.join_room(conn, room)
        return conn.connection_open

    async def replay(self) -> int:
        """Send the inbox to this connection, oldest first (see `Hub.deliver_pending`)."""
        return await self.hub.deliver_pending(self.conn)

    def release(self) -> int:
        """Send the live messages held since `login(hold=True)`; returns how many."""
        return self.hub.release_held(self.conn)

    async def fix_group_floors(self) -> None:
        """A pull realm's connection: from now on every group message stored is pushed to it (the
        older ones wait for a pull); they are held until `release_groups`."""
        if self.conn.connection_open and self.conn in self.hub.group_feed.conns:
            await self.hub.group_feed.fix_live_floors(self.conn)

    async def release_groups(self) -> int:
        """A pull realm's connection goes live in its groups: the group messages held since
        `login(hold=True)` and newer than each group's log head are sent (heihei.core.grouppull)."""
        if not self.conn.connection_open or self.conn not in self.hub.group_feed.conns:
            return 0
        return await self.hub.group_feed.replay(self.conn)

    async def catch_up(self) -> int:
        """Send what the inbox holds again (after the bus was down, live delivery may have missed it),
        live messages held meanwhile; for connections whose user has an inbox (those that replay it
        at login, and those whose client pulls it: that client does not know it should pull now)."""
        if not self.keeps_inbox or self._closed or not self.conn.connection_open:
            return 0
        return await self.hub.catch_up(self.conn)

    def logged_in(self) -> None:
        """The connection proved who it is: no login deadline, and the realm's full message size."""
        if self._login_deadline is not None:
            if self._login_deadline.active():
                self._login_deadline.cancel()
            self._login_deadline = None
        lift = getattr(self.conn, "lift_pre_login_limits", None)
        if lift is not None:
            lift()

    @property
    def is_open(self) -> bool:
        return not self._closed and self.conn.connection_open

    def revoked(self) -> bool:
        """Close the connection: its credential is no longer valid. False if it was closed already."""
        if not self.is_open:
            return False
        self._log.info("closing {realm} connection {id} of {user}: its credential is no longer valid",
                       realm=self.sessions.realm, id=self.id, user=self.conn.user)
        self.conn.credential_revoked()
        return True

    def _login_too_late(self) -> None:
        self._login_deadline = None
        self._log.info("closing {realm} connection {id}: no login within {s} s", realm=self.sessions.realm,
                       id=self.id, s=self.sessions.login_timeout_s)
        self.conn.login_timed_out()

    async def rebind(self, user: str) -> None:
        """From now on this connection is `user` (the live realm's Login on an open page)."""
        conn = self.conn
        self.logged_in()
        if conn.user == user:
            return
        if conn.user is not None:
            await self.hub.forget_user(conn)
        conn.user = user
        await self.hub.connect(conn)
        if not conn.connection_open:
            await self.hub.forget_user(conn)

    async def join(self, room: str) -> int:
        return await self.hub.join_room(self.conn, room)

    async def leave(self, room: str) -> int:
        return await self.hub.leave_room(self.conn, room)

    def rooms(self) -> list[str]:
        return [room for _, room in self.hub.presence.rooms_of(self.conn)]

    # -- clean-up -----------------------------------------------------------------------

    def on_cleanup(self, hook: CleanupHook) -> None:
        """Run `hook(rooms it was in)` after the connection left its rooms and presence."""
        self._hooks.append(hook)

    def closed(self) -> defer.Deferred:
        """The connection is gone: clean up once its queued inputs are handled (tracked)."""
        self._closed = True
        self.sessions.open_sessions.discard(self)
        if self._login_deadline is not None:
            if self._login_deadline.active():
                self._login_deadline.cancel()
            self._login_deadline = None
        liveness = self.sessions.liveness
        if liveness is not None:
            liveness.forget(self.conn)
        d = defer.Deferred()
        d.addCallback(lambda _: defer.Deferred.fromCoroutine(self._cleanup()))
        d.addErrback(lambda f: report(f, self._log, "cleaning up {realm} connection {id} of {user} failed",
                                      realm=self.sessions.realm, id=self.id, user=self.conn.user))
        self.sessions.cleanups.track(d)
        self.conn.inputs_done().addCallback(d.callback)
        return d

    async def _cleanup(self) -> None:
        rooms = self.rooms()
        await self.hub.disconnect(self.conn)
        for hook in self._hooks:
            await hook(rooms)
