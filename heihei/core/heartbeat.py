"""
Liveness on an injected clock, the same for every realm.

Connections only record when they were last heard from (any frame, ping or
pong). One `Liveness` per realm runs two loops on the node's clock:

- every `beat_interval_s` it calls `on_beat(connections)`: by default a
  WebSocket ping to each (clients answer pings by themselves, so a client
  that reads is never silent); boss adds its `heartbeat_<n>` text frame;
- every `check_interval_s` it closes, through `on_dead(connection)`, every
  connection silent for longer than `timeout_s`, decided by the pure `is_dead`.

A beat to more than BEAT_SLICE connections goes out in slices of that size,
BEAT_STEP_S apart (closer when there are so many slices that they would take
more than BEAT_SPREAD of the interval). Each connection keeps its place in the
order and the step does not depend on how many connections follow it, so its
own pings stay one interval apart (or closer, when connections before it
leave). Why: every ping comes back as
a pong at about the same time, and 10,000 pongs parsed in a burst held a node
for half a second (bench/README.md, scenario 8: the joins' p99 was that burst).

Tests drive both with `task.Clock` instead of sleeping. Autobahn's own
auto-ping is not used: its timers ignore the injected clock.
"""

from __future__ import annotations

from typing import Callable, Iterable

from twisted.internet import task
from twisted.logger import Logger

#: the payload prefix of liveness pings (delivery confirmations use their own, net/websocket.py)
BEAT_PING_PREFIX = b"hh-beat-"
#: a beat pings this many connections at a time (see the docstring)
BEAT_SLICE = 500
#: the slices of one beat go out this far apart ...
BEAT_STEP_S = 0.25
#: ... or closer, so that they all go out within this share of the beat interval
BEAT_SPREAD = 0.5


def is_dead(last_seen_s: float, now_s: float, timeout_s: float) -> bool:
    """Silent for longer than `timeout_s` (0 = never dead)."""
    return timeout_s > 0 and now_s - last_seen_s > timeout_s


def ping_all(connections: Iterable, beat: int) -> None:
    """The default beat: one WebSocket ping to every open connection.

    Connections that can (heihei.net.websocket) get one ping frame built once and written
    through the broadcast path: pinging 10,000 connections one by one took a node's reactor
    for over 100 ms in one turn, and every client waited (bench/README.md, scenario 8)."""
    payload = BEAT_PING_PREFIX + b"%d" % beat
    alive = [conn for conn in connections if conn.connection_open]
    ping_many = getattr(alive[0], "ping_many", None) if alive else None
    if ping_many is not None:
        ping_many(payload, alive)
        return
    for conn in alive:
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
        #: the later slices of the current beat, waiting for their time
        self._slices: list = []

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
        for call in self._slices:
            if call.active():
                call.cancel()
        self._slices = []

    def beat(self) -> None:
        self.beats += 1
        connections = list(self.last_seen)
        self._slices = [call for call in self._slices if call.active()]
        slices = [connections[i:i + BEAT_SLICE] for i in range(0, len(connections), BEAT_SLICE)] or [[]]
        step = min(BEAT_STEP_S, self.beat_interval_s * BEAT_SPREAD / len(slices))
        for k, part in enumerate(slices[1:], 1):
            self._slices.append(self.clock.callLater(k * step, self._beat_slice, part, self.beats))
        self._beat_slice(slices[0], self.beats)

    def _beat_slice(self, connections: list, beat: int) -> None:
        try:
            self.on_beat([conn for conn in connections if conn in self.last_seen], beat)
        except Exception:
            self._log.failure("heartbeat {n} failed", n=beat)

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
