"""
Outbound HTTP: the one client every call heihei makes to someone else goes
through (WeChat, Weibo, the SMS gateway, the push webhook, the boss profile
services, the J-IM authentication hook).

One `HttpClient` per node: a treq client over one persistent
`HTTPConnectionPool` (idle connections bounded per host, closed after a minute
idle), no cookies kept. Every call has a whole-exchange deadline on the
injected clock (connect, headers and body together) and reads its answer with
`read_bounded`, so a slow or hostile server at a configured URL can neither
fill our memory nor hold a connection after we gave up on it:

    request(method, url, timeout_s=, max_bytes=)  -> Answer(status, body bytes), any status
    get_json / post_json                          -> (status, JSON object)
    the server cannot be reached or breaks off    -> Unreachable
    the body is, or announces, more than max_bytes-> TooLarge (connection closed, the rest unread)
    the deadline passes first                     -> TimedOut (connection closed)
    get_json/post_json: the body is no JSON object-> NotJson
    close()                                       -> calls in flight end with Unreachable, cached
                                                     connections are closed, later calls refused

Every error is an `OutboundError` whose `reason` is safe to log: it never
contains the URL (the WeChat secret travels in a query string).

`read_bounded(response, limit)` is the bounded read underneath:

    body arrives, at most `limit` bytes       -> the bytes
    Content-Length announces more than limit  -> BodyTooLarge, connection closed
                                                 before any of the body is read
    more than `limit` bytes arrive            -> BodyTooLarge, connection closed
                                                 at once (the rest is never read)
    the Deferred is cancelled (a deadline)    -> CancelledError, connection closed
    the connection breaks mid-body            -> that error (e.g. ResponseFailed)

treq's `content()`, `json_content()` and `collect()` read whatever the other
side sends: `content()` keeps all of it in memory, and `collect()` stops only
if the collector raises and, once its Deferred is cancelled (a timeout), leaves
the connection open to keep receiving. A body cut short without a length to
check it against (`PotentialDataLoss`, HTTP/1.0 style) counts as complete, as
treq does. `read_bounded` works on buffered and unbuffered responses;
`HttpClient` requests unbuffered so treq does not keep a second copy.
"""

from __future__ import annotations

import re
from http.cookiejar import DefaultCookiePolicy
from typing import Any, NamedTuple

from treq.client import HTTPClient
from treq.cookies import IndexableCookieJar
from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss

from heihei.jsonsafe import BadJSON, decode_json_object

#: idle connections kept open per (scheme, host, port); more are closed after their call
MAX_IDLE_PER_HOST = 4
#: an idle connection is closed after this long (servers drop theirs sooner or later anyway)
IDLE_TIMEOUT_S = 60.0
#: a query string inside an error's text (some Twisted errors quote the URL, e.g. a redirect without Location)
_QUERY = re.compile(r"\?[^\s'\"<>()\[\]]*")


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


# -- the client ----------------------------------------------------------------------


class OutboundError(Exception):
    """An outbound call failed; `reason` is for logs (never the URL), `status` the HTTP status if one came."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Unreachable(OutboundError):
    """No answer: the connection failed or broke off (or the client was closed)."""


class TooLarge(OutboundError):
    """The answer's body is, or announced it would be, larger than `limit` bytes (the rest was not read)."""

    def __init__(self, limit: int, status: int | None = None) -> None:
        super().__init__(f"answer larger than {limit} bytes", status)
        self.limit = limit


class TimedOut(OutboundError):
    """The whole exchange did not finish within `timeout_s` (the connection was closed)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no answer within {timeout_s} s")
        self.timeout_s = timeout_s


class NotJson(OutboundError):
    """The answer arrived but is not a JSON object."""


class Answer(NamedTuple):
    status: int
    body: bytes


class _NoCookies(DefaultCookiePolicy):
    """One client serves every provider: no server may leave state in it for the next call."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


class _Pool(HTTPConnectionPool):
    """A pool that never keeps a connection it should not.

    A refused answer (too large, a deadline) closes its connection from inside
    the body delivery, but the parser may still see the end of the response in
    bytes already received, and Twisted then hands the closing connection back
    to the pool, with a timer; after `close()` nothing may be cached at all."""

    closed = False

    def _putConnection(self, key, connection) -> None:
        transport = connection.transport
        if self.closed or transport is None or transport.disconnecting or getattr(transport, "disconnected", False):
            if transport is not None:
                transport.abortConnection()
            return
        super()._putConnection(key, connection)

    def closeCachedConnections(self) -> defer.Deferred:
        self.closed = True
        return super().closeCachedConnections()


class HttpClient:
    """The node's outbound HTTP client (see the module docstring for what every call promises)."""

    def __init__(self, reactor, *, clock=None, max_idle_per_host: int = MAX_IDLE_PER_HOST,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.reactor = reactor
        #: deadlines run on this clock (tests pass a task.Clock); the pool's idle timers on the reactor
        self.clock = clock or reactor
        self.pool = _Pool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = max_idle_per_host
        self.pool.cachedConnectionTimeout = idle_timeout_s
        # no connectTimeout: the whole-exchange deadline covers connecting too
        self._treq = HTTPClient(Agent(reactor, pool=self.pool),
                                cookiejar=IndexableCookieJar(policy=_NoCookies()))
        self._in_flight: set[defer.Deferred] = set()
        self._closed = False

    async def request(self, method: str, url: str, *, timeout_s: float, max_bytes: int,
                      params: dict[str, str] | None = None, headers: dict[bytes, list[bytes]] | None = None,
                      data: bytes | None = None) -> Answer:
        """The answer's status and body, whatever the status; raises an `OutboundError`."""
        if self._closed:
            raise Unreachable("the HTTP client is closed")
        d = defer.Deferred.fromCoroutine(self._exchange(method, url, params, headers, data, max_bytes))
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            d.cancel()

        timer = self.clock.callLater(timeout_s, expire)
        self._in_flight.add(d)
        try:
            return await d
        except (OutboundError, defer.CancelledError):
            # a cancel surfaces as whatever the step in progress makes of it (CancelledError,
            # ConnectingCancelledError ...): what matters is who cancelled
            if expired:
                raise TimedOut(timeout_s) from None
            if self._closed:
                raise Unreachable("the HTTP client was closed") from None
            raise
        finally:
            self._in_flight.discard(d)
            if timer.active():
                timer.cancel()

    async def _exchange(self, method: str, url: str, params, headers, data, max_bytes: int) -> Answer:
        try:
            response = await self._treq.request(method, url, params=params, headers=headers, data=data,
                                                unbuffered=True)
        except defer.CancelledError:
            raise
        except Exception as e:
            raise Unreachable(_reason(e)) from None
        try:
            body = await read_bounded(response, max_bytes)
        except defer.CancelledError:
            raise
        except BodyTooLarge:
            raise TooLarge(max_bytes, response.code) from None
        except Exception as e:
            raise Unreachable(f"HTTP {response.code}, the answer broke off: {_reason(e)}", response.code) from None
        return Answer(response.code, body)

    async def get(self, url: str, *, timeout_s: float, max_bytes: int, params: dict[str, str] | None = None,
                  headers: dict[bytes, list[bytes]] | None = None) -> Answer:
        return await self.request("GET", url, params=params, headers=headers, timeout_s=timeout_s,
                                  max_bytes=max_bytes)

    async def post(self, url: str, data: bytes, *, timeout_s: float, max_bytes: int,
                   headers: dict[bytes, list[bytes]] | None = None) -> Answer:
        return await self.request("POST", url, data=data, headers=headers, timeout_s=timeout_s,
                                  max_bytes=max_bytes)

    async def get_json(self, url: str, *, timeout_s: float, max_bytes: int, params: dict[str, str] | None = None,
                       headers: dict[bytes, list[bytes]] | None = None) -> tuple[int, dict[str, Any]]:
        """GET a JSON object: (status, object), whatever the status; `NotJson` if the body is not one."""
        return _json_answer(await self.get(url, params=params, headers=headers, timeout_s=timeout_s,
                                           max_bytes=max_bytes), max_bytes)

    async def post_json(self, url: str, body: bytes, *, timeout_s: float, max_bytes: int,
                        headers: dict[bytes, list[bytes]] | None = None) -> tuple[int, dict[str, Any]]:
        """POST `body` (JSON, already encoded: a caller that signs it needs the exact bytes) and read
        a JSON object answer: (status, object), whatever the status; `NotJson` if the body is not one."""
        headers = {b"Content-Type": [b"application/json"], **(headers or {})}
        return _json_answer(await self.post(url, body, headers=headers, timeout_s=timeout_s,
                                            max_bytes=max_bytes), max_bytes)

    async def close(self) -> None:
        """At node stop: end the calls in flight, close the cached connections, refuse new calls."""
        self._closed = True
        for d in list(self._in_flight):
            d.cancel()
        await self.pool.closeCachedConnections()


def _reason(e: Exception) -> str:
    """An exception as a log line without any query string (the WeChat secret travels in one)."""
    return _QUERY.sub("?…", f"{type(e).__name__}: {e}")[:500]


def _json_answer(answer: Answer, max_bytes: int) -> tuple[int, dict[str, Any]]:
    try:
        return answer.status, decode_json_object(answer.body, max_bytes=max_bytes)
    except BadJSON as e:
        raise NotJson(f"HTTP {answer.status}, not a JSON object: {e.reason}", answer.status) from None
