"""
Online-total pushes, coalesced: at most one `Total` per room per interval.

Every join or leave anywhere in the cluster reaches each node with members in
the room (`Hub.notify_room`). Pushing one frame per change would cost N² frames
when N viewers arrive together, so each node throttles per room, on the
receiving side, where the frames are written:

- the first change after a quiet interval is pushed at once (leading edge);
- changes within `interval_s` of the last push only mark the room dirty, and
  one push follows when the interval is over (trailing edge);
- the pushed number is read from Redis when the push happens, so it is the
  latest total whatever order the change notices arrived in.

A room's state is dropped after one quiet interval, so memory follows the
rooms that are busy right now. Timers run on the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from twisted.internet import defer
from twisted.logger import Logger

from heihei.incidents import report


def next_push_at(last_push_s: float, interval_s: float) -> float:
    """The earliest time the next push for a room may go out."""
    return last_push_s + interval_s


@dataclass
class _Room:
    last_s: float = 0.0
    dirty: bool = False
    busy: bool = False
    timer: Any = None


class TotalCoalescer:
    _log = Logger()

    def __init__(self, clock, interval_s: float, push: Callable[[str], Awaitable[None]]) -> None:
        """`push(room)` reads the room's total and writes it to the local members."""
        self.clock = clock
        self.interval_s = interval_s
        self.push = push
        self._rooms: dict[str, _Room] = {}
        self._stopped = False

    def changed(self, room: str) -> None:
        """The room's total may have changed (on this node or another)."""
        if self._stopped:
            return
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
            self._start(room, state)
        else:
            state.dirty = True  # the push at the end of the interval covers it

    def _start(self, room: str, state: _Room) -> None:
        state.dirty = False
        state.busy = True
        state.last_s = self.clock.seconds()
        d = defer.Deferred.fromCoroutine(self.push(room))
        d.addErrback(lambda f: report(f, self._log, "pushing the total of room {room} failed", room=room))
        d.addBoth(lambda _: self._pushed(room, state))

    def _pushed(self, room: str, state: _Room) -> None:
        state.busy = False
        if self._stopped or self._rooms.get(room) is not state:
            return
        delay = max(0.0, next_push_at(state.last_s, self.interval_s) - self.clock.seconds())
        state.timer = self.clock.callLater(delay, self._interval_over, room, state)

    def _interval_over(self, room: str, state: _Room) -> None:
        state.timer = None
        if state.dirty:
            self._start(room, state)
        else:
            del self._rooms[room]

    def pending(self) -> int:
        """Rooms with a push pending or just done (for tests and the manhole)."""
        return len(self._rooms)

    def stop(self) -> None:
        self._stopped = True
        for state in self._rooms.values():
            if state.timer is not None and state.timer.active():
                state.timer.cancel()
        self._rooms.clear()
