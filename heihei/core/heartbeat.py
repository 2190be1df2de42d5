"""
Liveness on an injected clock, the same for every realm.

Connections only record when they were last heard from (any frame, ping or
pong). One `Liveness` per realm runs two loops on the node's clock:

- every `beat_interval_s` it calls `on_beat(connections)`: by default a
  WebSocket ping to each (clients answer pings by themselves, so a client
  that reads is never silent); boss adds its `heartbeat_<n>` text frame;
- every `check_interval_s` it closes, through `on_dead(connection)`, every
  connection silent for longer than `timeout_s`, decided by the pure `is_dead`.

Tests drive both with `task.Clock` instead of sleeping. Autobahn's own
auto-ping is not used: its timers ignore the injected clock.
"""

from __future__ import annotations

from typing import Callable, Iterable

from twisted.internet import task
from twisted.logger import Logger

#: the payload prefix of liveness pings (delivery confirmations use their own, net/websocket.py)
BEAT_PING_PREFIX = b"hh-beat-"


def is_dead(last_seen_s: float, now_s: float, timeout_s: float) -> bool:
    """Silent for longer than `timeout_s` (0 = never dead)."""
    return timeout_s > 0 and now_s - last_seen_s > timeout_s


def ping_all(connections: Iterable, beat: int) -> None:
    """The default beat: one WebSocket ping to every open connection."""
    payload = BEAT_PING_PREFIX + b"%d" % beat
    for conn in connections:
        if conn.connection_open:
            conn.sendPing(payload)


class Liveness:
    _log = Logger()

    def __init__(self, clock, *, timeout_s: float, beat_interval_s: float, on_dead: Callable[[object], None],
                 on_beat: Callable[[Iterable, int], None] = ping_all, check_interval_s: float | None = None) -> None:
        self.clock = clock
        self.timeout_s = timeout_s
        self.beat_interval_s = beat_interval_s
        self.check_interval_s = check_interval_s or (max(timeout_s / 4, 0.1) if timeout_s > 0 else 1.0)
        self.on_dead = on_dead
        self.on_beat = on_beat
        self.last_seen: dict[object, float] = {}
        self.beats = 0
        self._loops: list[task.LoopingCall] = []

    def track(self, conn) -> None:
        self.last_seen[conn] = self.clock.seconds()

    seen = track

    def forget(self, conn) -> None:
        self.last_seen.pop(conn, None)

    def start(self) -> None:
        if self._loops:
            return
        if self.timeout_s > 0:
            self._start_loop(self.sweep, self.check_interval_s)
        if self.beat_interval_s > 0:
            self._start_loop(self.beat, self.beat_interval_s)

    def _start_loop(self, what: Callable[[], object], interval_s: float) -> None:
        loop = task.LoopingCall(what)
        loop.clock = self.clock
        loop.start(interval_s, now=False).addErrback(lambda f: self._log.failure("liveness loop died", failure=f))
        self._loops.append(loop)

    def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []

    def beat(self) -> None:
        self.beats += 1
        try:
            self.on_beat(list(self.last_seen), self.beats)
        except Exception:
            self._log.failure("heartbeat {n} failed", n=self.beats)

    def sweep(self) -> int:
        now = self.clock.seconds()
        dead = [c for c, seen in self.last_seen.items() if is_dead(seen, now, self.timeout_s)]
        for conn in dead:
            self.forget(conn)
            try:
                self.on_dead(conn)
            except Exception:
                self._log.failure("closing a dead connection failed")
        return len(dead)
