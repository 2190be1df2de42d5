"""
One piece of work shared by every caller that asks while it runs: one OAuth or
auth-token fetch however many pushes need a token at once (Getui allows 100
auth calls a minute), one connection attempt however many pushes wait for it.

A caller that gives up (its Deferred is cancelled by a timeout) stops waiting;
the work goes on for the others, so the work must bound its own duration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._waiters: list[defer.Deferred] | None = None

    @property
    def running(self) -> bool:
        return self._waiters is not None

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """The result of `work()`, started now unless a run is already under way."""
        waiter: defer.Deferred = defer.Deferred(self._forget)
        if self._waiters is not None:
            self._waiters.append(waiter)
        else:
            # the list exists before the work starts: work that finishes
            # without ever waiting still finds its first caller
            self._waiters = [waiter]
            defer.Deferred.fromCoroutine(work()).addBoth(self._finished)
        return await waiter

    def _forget(self, waiter: defer.Deferred) -> None:
        if self._waiters is not None and waiter in self._waiters:
            self._waiters.remove(waiter)

    def _finished(self, result: Any) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        # the Failure has been handed on (or nobody waits any more): not an unhandled error
        return None
