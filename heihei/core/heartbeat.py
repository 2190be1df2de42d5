"""
Dead-connection detection on an injected clock.

Connections only record when they were last heard from; one sweeper loop per
realm decides with the pure `is_dead` and closes what is silent too long. Tests
drive it with `task.Clock` instead of sleeping.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import task
from twisted.logger import Logger


def is_dead(last_seen_s: float, now_s: float, timeout_s: float) -> bool:
    """Silent for longer than `timeout_s` (0 = never dead)."""
    return timeout_s > 0 and now_s - last_seen_s > timeout_s


class ConnectionSweeper:
    _log = Logger()

    def __init__(self, clock, *, interval_s: float, timeout_s: float, on_dead: Callable[[object], None]) -> None:
        self.clock = clock
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.on_dead = on_dead
        self.last_seen: dict[object, float] = {}
        self._loop: task.LoopingCall | None = None

    def track(self, conn) -> None:
        self.last_seen[conn] = self.clock.seconds()

    seen = track

    def forget(self, conn) -> None:
        self.last_seen.pop(conn, None)

    def start(self) -> None:
        if self.timeout_s <= 0 or self._loop is not None:
            return
        self._loop = task.LoopingCall(self.sweep)
        self._loop.clock = self.clock
        self._loop.start(self.interval_s, now=False).addErrback(
            lambda f: self._log.failure("sweeper loop died", failure=f))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

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
