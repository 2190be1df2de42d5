"""
Expected trouble, logged once per incident instead of once per event.

A Redis that is down fails every request of every connection for as long as
it is down. Logging each event (with a traceback, at that) would bury the log
and let clients write into it at will by retrying. (Malformed client input is
answered in the protocol's own format and not logged at all.) An `Incident` is a named kind of trouble: its first event is
logged (one warning line, the reason), later ones are counted and summed up
at most every `report_s`, and the first success after them logs that it is
over and how many there were.

`report(failure, log, message, ...)` is what async wrappers use in place of
`log.failure`: an unavailable store becomes one line of the store incident;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.logger import Logger

REPORT_EVERY_S = 10.0


class Incident:
    def __init__(self, what: str, *, report_s: float = REPORT_EVERY_S, now: Callable[[], float] = time.monotonic,
                 log: Logger | None = None) -> None:
        self.what = what
        self.report_s = report_s
        self.now = now
        self.log = log or Logger(namespace="heihei.incidents")
        self.count = 0
        self._unreported = 0
        self._reported_at = 0.0

    @property
    def ongoing(self) -> bool:
        return self.count > 0

    def happened(self, why: str = "", **fields: Any) -> None:
        """One more event of this incident (logged if it is the first, else counted)."""
        now = self.now()
        self.count += 1
        if self.count == 1:
            self._reported_at = now
            self.log.warn("{what}: {why} (more of the same are counted, not logged)", what=self.what, why=why,
                          **fields)
            return
        self._unreported += 1
        if now - self._reported_at >= self.report_s:
            self.log.warn("{what}: still going, {n} more in the last {s:.0f} s", what=self.what,
                          n=self._unreported, s=now - self._reported_at)
            self._unreported = 0
            self._reported_at = now

    def over(self) -> None:
        """Things work again: say so once, with the count."""
        if self.count:
            self.log.info("{what}: over, {n} in all", what=self.what, n=self.count)
        self.count = 0
        self._unreported = 0


#: Redis not answering (heihei.store.client.StoreUnavailable), node-wide
STORE = Incident("storage unavailable")


def report(failure, log: Logger, message: str, **fields: Any) -> None:
    """Log a failed background task: the store incident for an unavailable store, else the bug."""
    from heihei.store.client import StoreUnavailable

    if failure.check(StoreUnavailable):
        STORE.happened(failure.getErrorMessage(), during=message)
        return
    log.failure(message, failure=failure, **fields)
