"""
Reading the body of an answer to an HTTP call *we* make (WeChat, Weibo, the
J-IM authentication hook, the boss profile services), bounded in size.

treq's `content()`, `json_content()` and `collect()` read whatever the other
side sends: `content()` keeps all of it in memory, and `collect()` stops only
if the collector raises and, once its Deferred is cancelled (a timeout), leaves
the connection open to keep receiving. A slow or hostile server at the other
end of a configured URL must not be able to fill our memory or hold a
connection after we gave up on it, so every outbound call reads its body with
`read_bounded(response, limit)`:

    body arrives, at most `limit` bytes       -> the bytes
    Content-Length announces more than limit  -> BodyTooLarge, connection closed
                                                 before any of the body is read
    more than `limit` bytes arrive            -> BodyTooLarge, connection closed
                                                 at once (the rest is never read)
    the Deferred is cancelled (a deadline)    -> CancelledError, connection closed
    the connection breaks mid-body            -> that error (e.g. ResponseFailed)

A body cut short without a length to check it against (`PotentialDataLoss`,
HTTP/1.0 style) counts as complete, as treq does.

Deadlines stay with the callers, because what they report differs on purpose
or by history (live and jim time the whole exchange with `addTimeout` on an
injected clock, boss reports any failure after its deadline as "no answer");
`read_bounded` only has to give up cleanly when one of them cancels it.

Request with `unbuffered=True` so treq does not keep a second copy of the
body; `read_bounded` works on buffered responses too.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss


class BodyTooLarge(Exception):
    """The answer's body is, or announced it would be, larger than `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class _BoundedBody(Protocol):
    """Collects a response body up to `limit` bytes into `deferred`; beyond that drops the connection."""

    def __init__(self, deferred: defer.Deferred, limit: int, announced: object) -> None:
        self.deferred = deferred
        self.limit = limit
        self.announced = announced
        self.parts: list[bytes] = []
        self.size = 0

    def connectionMade(self) -> None:
        # `response.length` is an int only when the server sent Content-Length
        if isinstance(self.announced, int) and self.announced > self.limit:
            self._too_large()

    def dataReceived(self, data: bytes) -> None:
        if self.deferred.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self._too_large()
            return
        self.parts.append(data)

    def _too_large(self) -> None:
        self.parts.clear()
        self.deferred.errback(BodyTooLarge(self.limit))
        self.abort()

    def abort(self) -> None:
        """Close the connection: the rest of the body is never read.

        A response body's transport is Twisted's `TransportProxyProducer`, whose
        `stopProducing` closes the TCP connection (and does nothing once the
        response is complete); `abortConnection` is used where a transport has it."""
        transport = self.transport
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        (abort or transport.stopProducing)()

    def connectionLost(self, reason=connectionDone) -> None:
        if self.deferred.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.deferred.callback(b"".join(self.parts))
        else:
            self.deferred.errback(reason)


def read_bounded(response, limit: int) -> defer.Deferred:
    """Deferred[bytes]: the body of `response`, at most `limit` bytes, else `BodyTooLarge`.

    Cancelling the Deferred (a caller's timeout) closes the connection, so a
    server that stalls mid-body is not left connected. May be called once per
    response (it takes over the body)."""
    protocol: _BoundedBody

    def cancel(_d: defer.Deferred) -> None:
        protocol.abort()

    d: defer.Deferred = defer.Deferred(cancel)
    protocol = _BoundedBody(d, limit, response.length)
    response.deliverBody(protocol)
    return d
