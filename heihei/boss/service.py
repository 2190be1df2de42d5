"""
The boss realm's running parts on a node: heartbeats, dead-peer detection,
and start-up checks (media folders, insecure-mode warnings).

Heartbeats: every `[boss] heartbeat_interval` seconds on the node's clock,
each open connection gets the text frame `heartbeat_<n>` (n counts this
node's beats from 1) followed by a WebSocket ping. Clients ignore the text
frame, as the seed says; every WebSocket client answers the ping.

Dead peers: any frame from the client, any pong and any ping counts as a sign
of life. A connection silent for `[boss] dead_after` seconds is aborted (a dead
peer would never answer a close handshake); its user goes offline through the
normal connection-lost path. The decision is `core.heartbeat.is_dead` on the
injected clock, so tests drive it with `task.Clock`.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import task
from twisted.logger import Logger

from heihei.protocols.boss_frames import format_heartbeat
from heihei.core.heartbeat import ConnectionSweeper

HEARTBEAT_PING_PREFIX = b"hh-beat-"


class BossService(Service):
    _log = Logger()

    def __init__(self, factory, settings, *, clock, media=None) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock
        self.media = media
        self.beats = 0
        dead_after = settings.dead_after
        self.sweeper = ConnectionSweeper(clock, interval_s=max(dead_after / 3, 0.1) if dead_after > 0 else 1.0,
                                         timeout_s=dead_after, on_dead=self._dead)
        self._loop: task.LoopingCall | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._warn_about_settings()
        if self.media is not None:
            self.media.prepare()
        self.sweeper.start()
        if self.settings.heartbeat_interval > 0:
            self._loop = task.LoopingCall(self.beat)
            self._loop.clock = self.clock
            self._loop.start(self.settings.heartbeat_interval, now=False).addErrback(
                lambda f: self._log.failure("boss heartbeat loop died", failure=f))

    def stopService(self) -> None:
        super().stopService()
        self.sweeper.stop()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _warn_about_settings(self) -> None:
        s = self.settings
        if s.insecure_login:
            self._log.warn("[boss] insecure_login is on: anyone can log in as any user with login_<userid>")
        elif not s.login_secret:
            self._log.warn("[boss] neither login_secret nor insecure_login is set: every boss login is refused")
        if s.insecure_http:
            self._log.warn("[boss] insecure_http is on: the group API and uploads accept calls from anyone")

    # -- connections ------------------------------------------------------------------------------------

    def seen(self, conn) -> None:
        self.sweeper.seen(conn)

    def forget(self, conn) -> None:
        self.sweeper.forget(conn)

    def beat(self) -> None:
        """One heartbeat to every open connection (the text frame is built once)."""
        self.beats += 1
        payload = format_heartbeat(self.beats).encode("ascii")
        ping = HEARTBEAT_PING_PREFIX + b"%d" % self.beats
        frame = None
        for conn in list(self.factory.clients):
            try:
                if not conn.connection_open:
                    continue
                if frame is None:
                    frame = conn.prepare(payload)
                if conn.send_frame(frame):
                    conn.sendPing(ping)
            except Exception:
                self._log.failure("heartbeat to {peer} failed", peer=getattr(conn, "peer", "?"))

    def _dead(self, conn) -> None:
        self._log.info("closing silent boss connection {peer} (user {user}): nothing heard for {s} s",
                       peer=conn.peer, user=conn.user, s=self.settings.dead_after)
        conn.dropConnection(abort=True)
