"""
Removing confirmed deliveries from the inboxes, in batches.

Why batches: a confirmation (the client's pong, `heihei.net.websocket`)
otherwise costs a Redis call and a wake-up for its answer per message, about
a fifth of a node's CPU in the 1:1 benchmark. Entries confirmed within
ACK_BATCH_S leave together, in one call per realm.

What it costs: a node that dies within that window leaves those entries in
the inboxes, and they arrive once more at the next login, as after a lost
pong (delivery is at least once, docs/core.md). A clean stop flushes first.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from heihei.incidents import report

#: confirmed entries wait at most this long to be removed
ACK_BATCH_S = 0.02


class InboxAcks:
    _log = Logger()

    def __init__(self, inbox, clock) -> None:
        self.inbox = inbox
        self.clock = clock
        #: realm -> user -> entries confirmed and not removed yet
        self.pending: dict[str, dict[str, list[str]]] = {}
        self._timer = None

    def add(self, realm: str, user: str, entry: str) -> None:
        self.pending.setdefault(realm, {}).setdefault(user, []).append(entry)
        if self._timer is None:
            self._timer = self.clock.callLater(ACK_BATCH_S, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        defer.Deferred.fromCoroutine(self.flush()).addErrback(
            lambda f: report(f, self._log, "removing confirmed inbox entries failed"))

    async def flush(self) -> None:
        """Remove every pending entry now (one Redis call per realm)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        pending, self.pending = self.pending, {}
        results = await defer.DeferredList(
            [defer.Deferred.fromCoroutine(self.inbox.ack_many(realm, by_user)) for realm, by_user in pending.items()],
            consumeErrors=True)
        for ok, failure in results:
            if not ok:
                report(failure, self._log, "removing confirmed inbox entries failed")
