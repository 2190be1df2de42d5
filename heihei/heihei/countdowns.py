"""
`Countdowns`: one node's sweeper over a set of Redis deadlines
(heihei.heihei.deadlines), for whichever node is alive to fire them.

A LoopingCall on the injected clock ticks every `interval_s`; a tick asks
Redis only when a deadline it knows of is due (one this node armed, or the
earliest one Redis reported at the last claim) or `idle_s` has passed since
the last look, so a node whose peer died finds the peer's deadlines within
`idle_s`. Each claimed deadline is leased to this node (`lease_s`); it is
fired only if the lease still holds (a heart-beat that re-armed it wins), and
a node killed between claim and done leaves it to the next node once the
lease ends. What `fire` does must therefore be idempotent: the chat scripts
change nothing the second time, which makes each countdown's effect happen
exactly once.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.internet import defer, task
from twisted.logger import Logger

from heihei.heihei.deadlines import Deadlines


class Countdowns:
    _log = Logger()

    def __init__(self, deadlines: Deadlines, clock, fire: Callable[[str], Awaitable[None]], *,
                 interval_s: float, idle_s: float, name: str) -> None:
        self.deadlines = deadlines
        self.clock = clock
        self.fire = fire
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.name = name
        self._loop: task.LoopingCall | None = None
        self._ticking: defer.Deferred | None = None
        self._wake_at_ms: int | None = None
        self._armed_while_claiming: int | None = None
        self._last_look_ms = 0
        deadlines.on_armed = self._armed

    def start(self) -> None:
        self._last_look_ms = self.deadlines.now_ms()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval_s, now=False).addErrback(
            lambda f: self._log.failure("{name} sweeper stopped", failure=f, name=self.name))

    async def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._ticking is not None:
            try:
                await self._ticking
            except Exception:
                pass

    def _armed(self, due_ms: int) -> None:
        if self._wake_at_ms is None or due_ms < self._wake_at_ms:
            self._wake_at_ms = due_ms
        if self._armed_while_claiming is None or due_ms < self._armed_while_claiming:
            self._armed_while_claiming = due_ms

    def _due(self) -> bool:
        now = self.deadlines.now_ms()
        return (self._wake_at_ms is not None and now >= self._wake_at_ms) or \
            now - self._last_look_ms >= self.idle_s * 1000

    def _tick(self) -> None:
        if self._ticking is not None or not self._due():
            return
        d = self._ticking = defer.Deferred.fromCoroutine(self.sweep())
        d.addErrback(lambda f: self._log.failure("{name} sweep failed", failure=f, name=self.name))

        def done(_):
            self._ticking = None

        d.addBoth(done)

    async def sweep(self) -> int:
        """Fire what is due now; returns how many fired."""
        self._last_look_ms = self.deadlines.now_ms()
        self._armed_while_claiming = None
        claimed = await self.deadlines.claim()
        known = [t for t in (self.deadlines.next_due_ms, self._armed_while_claiming) if t is not None]
        self._wake_at_ms = min(known) if known else None
        fired = 0
        for member, claim in claimed:
            try:
                if await self.deadlines.still_claimed(member, claim):
                    await self.fire(member)
                    fired += 1
                await self.deadlines.done(member, claim)
            except Exception:
                self._log.failure("{name} deadline {member} failed", name=self.name, member=member)
        if len(claimed) and self.deadlines.next_due_ms is not None:
            # more may be due than one claim takes: look again at the next tick
            self._wake_at_ms = min(self._wake_at_ms or self.deadlines.next_due_ms, self.deadlines.next_due_ms)
        return fired
