"""
A small HTTP/2 client for Twisted, enough for APNs: requests with small bodies
multiplexed over one long-lived TLS connection, answers read into memory.

Why this and not treq: treq (twisted.web.client.Agent) speaks HTTP/1.1 only,
and APNs accepts HTTP/2 only. The `h2` library is a sans-I/O protocol state
machine (the one Twisted's own HTTP/2 server is built on), so the I/O stays
on the reactor: no threads, timeouts on the injected clock, cancellation that
resets the stream. Apple asks providers to keep their connection open and
send many notifications over it, which multiplexing on one connection does.

    client = H2Client(reactor, "https://api.push.apple.com")
    response = await client.request(b"POST", b"/3/device/<token>", [(b"apns-topic", b"...")], body)
    response.status, response.headers (lower-case bytes -> bytes), response.body
    await client.close()

Connection: TLS with ALPN offering only "h2" (a server that does not pick h2
is refused); requests wait for the server's first SETTINGS frame, because a
server (APNs) may open a connection with a low MAX_CONCURRENT_STREAMS.
Requests beyond the server's MAX_CONCURRENT_STREAMS queue until a stream
closes; request bodies respect flow control. One connection at a time: it is opened on the
first request (concurrent first requests share the attempt) and again after
it is lost or the server sends GOAWAY.

Failures (all `H2Unavailable`, which callers treat as "try again later"):

    cannot connect, TLS fails, no h2 via ALPN, no SETTINGS in time
                                      -> H2Unavailable
    request known not to be processed (GOAWAY above its stream, REFUSED_STREAM,
    connection closing), or the connection was lost with nothing at all
    received after the request went out (the usual race with a server
    closing an idle connection; it may rarely duplicate a request)
                                      -> retried once on a new connection,
                                         then NotProcessed
    connection lost after the server sent something, or GOAWAY while the
    request was in progress (h2 cannot read answers after a GOAWAY)
                                      -> H2Unavailable (the server may have
                                         acted on the request)
    stream reset by the server        -> StreamReset
    answer body over max_response_bytes -> stream reset, ResponseTooLarge

Cancelling a request (the caller's timeout) resets its stream; when nothing
at all arrived on the connection since the request was sent, the connection
is presumed dead and dropped, so the next request opens a fresh one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from heihei.outbound.singleflight import SingleFlight

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024

Headers = Sequence[tuple[bytes, bytes]]


class H2Unavailable(Exception):
    """The request got no answer because of the connection; it may be tried again."""


class NotProcessed(H2Unavailable):
    """The server certainly did not act on the request."""


class StreamReset(H2Unavailable):
    def __init__(self, error_code: int) -> None:
        super().__init__(f"the server reset the stream ({_error_name(error_code)})")
        self.error_code = error_code


class ResponseTooLarge(Exception):
    pass


@dataclass
class H2Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


@dataclass
class _Request:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    deferred: defer.Deferred
    stream_id: int | None = None
    received_at_start: int = 0
    status: int = 0
    response_headers: dict[bytes, bytes] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


def _error_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error {code}"


@implementer(IHandshakeListener)
class _H2ClientProtocol(Protocol):
    _log = Logger()

    def __init__(self, max_response_bytes: int) -> None:
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self._max_response_bytes = max_response_bytes
        self._queue: deque[_Request] = deque()
        self._streams: dict[int, _Request] = {}
        self._handshake_ok = False
        self._settings_seen = False
        self._goaway = False
        self._lost = False
        self.received = 0
        self.ready: defer.Deferred = defer.Deferred(lambda _d: self.abort())
        self._closed: defer.Deferred = defer.Deferred()

    # --- for H2Client

    @property
    def usable(self) -> bool:
        return self.ready.called and not self._goaway and not self._lost

    def request(self, headers: list[tuple[bytes, bytes]], body: bytes) -> defer.Deferred:
        req = _Request(headers, body, defer.Deferred(lambda _d: self._cancel(req)))
        req.received_at_start = self.received
        if not self.usable:
            req.deferred.errback(NotProcessed("the connection is closing"))
            return req.deferred
        self._queue.append(req)
        self._start_queued()
        self._flush()
        return req.deferred

    def close(self) -> defer.Deferred:
        """Say goodbye (GOAWAY) and close; fires when the connection is gone."""
        if not self._lost:
            self._goaway = True
            try:
                self._conn.close_connection()
                self._flush()
            except h2.exceptions.H2Error:
                pass
            self.transport.loseConnection()
        d: defer.Deferred = defer.Deferred()
        self._closed.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def abort(self) -> None:
        if not self._lost and self.transport is not None:
            self.transport.abortConnection()

    # --- Protocol

    def connectionMade(self) -> None:
        self._conn.initiate_connection()
        self._flush()

    def handshakeCompleted(self) -> None:
        protocol = getattr(self.transport, "negotiatedProtocol", None)
        if protocol != b"h2":
            self._fail_ready(H2Unavailable(f"the server did not agree to HTTP/2 via ALPN (it chose {protocol!r})"))
            self.abort()
            return
        self._handshake_ok = True
        self._maybe_ready()

    def dataReceived(self, data: bytes) -> None:
        self.received += 1
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.H2Error as e:
            self._log.warn("HTTP/2 protocol error from the server: {why}", why=repr(e))
            self._fail_all(H2Unavailable(f"HTTP/2 protocol error: {e!r}"))
            self.abort()
            return
        for event in events:
            self._handle(event)
        self._start_queued()
        self._flush()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        why = reason.getErrorMessage()
        self._fail_ready(H2Unavailable(f"connection lost before it was ready: {why}"))
        for req in list(self._streams.values()):
            # Nothing at all came back after the request went out: most likely the
            # server had already closed this (idle) connection, so the request is
            # sent again on a new one. Rarely that duplicates a push; it does not lose it.
            if self.received == req.received_at_start:
                self._finish(req.stream_id, NotProcessed(f"connection lost before any answer: {why}"))
        self._fail_all(H2Unavailable(f"connection lost: {why}"))
        self._closed.callback(None)

    # --- events

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self._settings_seen = True
            self._maybe_ready()
            self._send_pending_bodies()
        elif isinstance(event, h2.events.WindowUpdated):
            self._send_pending_bodies()
        elif isinstance(event, h2.events.ResponseReceived):
            req = self._streams.get(event.stream_id)
            if req is not None:
                headers = dict(event.headers)
                try:
                    req.status = int(headers.pop(b":status", b"0"))
                except ValueError:
                    req.status = 0
                req.response_headers = headers
        elif isinstance(event, h2.events.DataReceived):
            self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            req = self._streams.get(event.stream_id)
            if req is not None:
                req.size += len(event.data)
                if req.size > self._max_response_bytes:
                    self._reset(event.stream_id)
                    self._finish(event.stream_id, ResponseTooLarge(
                        f"answer larger than {self._max_response_bytes} bytes"))
                else:
                    req.parts.append(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            req = self._streams.get(event.stream_id)
            if req is not None:
                self._finish(event.stream_id, H2Response(req.status, req.response_headers, b"".join(req.parts)))
        elif isinstance(event, h2.events.StreamReset):
            error = (NotProcessed("the server refused the stream")
                     if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM else StreamReset(event.error_code))
            self._finish(event.stream_id, error)
        elif isinstance(event, h2.events.ConnectionTerminated):
            # HTTP/2 lets streams up to last_stream_id finish after a GOAWAY, but h2
            # closes its state machine on receiving one and cannot read their answers
            # (python-hyper/h2#1181): those fail as "unknown outcome", the others as
            # not processed, and the connection is closed.
            self._goaway = True
            last = event.last_stream_id if event.last_stream_id is not None else 0
            why = f"the server sent GOAWAY ({_error_name(event.error_code)})"
            for stream_id in list(self._streams):
                self._finish(stream_id, NotProcessed(why) if stream_id > last else H2Unavailable(
                    f"{why} before answering; it may have acted on the request"))
            while self._queue:
                self._queue.popleft().deferred.errback(NotProcessed(why))
            self.transport.loseConnection()

    # --- sending

    def _maybe_ready(self) -> None:
        if self._handshake_ok and self._settings_seen and not self.ready.called:
            self.ready.callback(self)

    def _fail_ready(self, error: Exception) -> None:
        if not self.ready.called:
            self.ready.errback(error)

    def _start_queued(self) -> None:
        if not self.ready.called or self._lost:
            return
        while self._queue and not self._goaway and \
                self._conn.open_outbound_streams < self._conn.remote_settings.max_concurrent_streams:
            req = self._queue.popleft()
            try:
                stream_id = self._conn.get_next_available_stream_id()
            except h2.exceptions.NoAvailableStreamIDError:
                # stream ids run out after 2**30 requests: the next connection takes over
                self._goaway = True
                req.deferred.errback(NotProcessed("stream ids exhausted on this connection"))
                continue
            req.stream_id = stream_id
            self._streams[stream_id] = req
            try:
                self._conn.send_headers(stream_id, req.headers, end_stream=not req.body)
                self._send_body(req)
            except h2.exceptions.H2Error as e:
                self._finish(stream_id, H2Unavailable(f"cannot send the request: {e!r}"))

    def _send_pending_bodies(self) -> None:
        for req in list(self._streams.values()):
            if req.body:
                self._send_body(req)

    def _send_body(self, req: _Request) -> None:
        stream_id = req.stream_id
        while req.body:
            window = min(self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size)
            if window <= 0:
                return  # the rest goes when the server opens the window (WindowUpdated)
            chunk, req.body = req.body[:window], req.body[window:]
            self._conn.send_data(stream_id, chunk, end_stream=not req.body)

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._lost:
            self.transport.write(data)

    # --- finishing

    def _finish(self, stream_id: int, result: H2Response | Exception) -> None:
        req = self._streams.pop(stream_id, None)
        if req is None:
            return
        if isinstance(result, Exception):
            req.deferred.errback(result)
        else:
            req.deferred.callback(result)
        if self._goaway and not self._streams and not self._lost:
            self.transport.loseConnection()

    def _fail_all(self, error: H2Unavailable) -> None:
        pending = list(self._queue)
        self._queue.clear()
        for req in pending:
            req.deferred.errback(NotProcessed(str(error)))
        for stream_id in list(self._streams):
            self._finish(stream_id, error)

    def _reset(self, stream_id: int) -> None:
        try:
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            pass  # already closed on the server's side
        self._flush()

    def _cancel(self, req: _Request) -> None:
        """The caller gave up on `req` (its Deferred is being cancelled)."""
        if req.stream_id is None:
            if req in self._queue:
                self._queue.remove(req)
            return
        if self._streams.pop(req.stream_id, None) is None:
            return
        self._reset(req.stream_id)
        if self.received == req.received_at_start:
            self._log.warn("no answer and no frame at all on the HTTP/2 connection: dropping it")
            self.abort()


class H2Client:
    """Requests to one HTTPS origin over one HTTP/2 connection at a time."""

    _log = Logger()

    def __init__(self, reactor, base_url: str, *, clock=None, trust_root=None,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        url = urlsplit(base_url)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"an HTTP/2 base URL must be https://host[:port], not {base_url!r}")
        if url.path not in ("", "/"):
            raise ValueError(f"an HTTP/2 base URL has no path: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or 443
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        self.authority = (host if self.port == 443 else f"{host}:{self.port}").encode("idna")
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._trust_root = trust_root
        self._connect_timeout_s = connect_timeout_s
        self._max_response_bytes = max_response_bytes
        self._proto: _H2ClientProtocol | None = None
        self._flight = SingleFlight()
        self._closing = False
        self.connections_opened = 0

    async def request(self, method: bytes, path: bytes, headers: Headers = (), body: bytes = b"") -> H2Response:
        all_headers = [(b":method", method), (b":scheme", b"https"), (b":authority", self.authority),
                       (b":path", path), *headers]
        if body:
            all_headers.append((b"content-length", str(len(body)).encode()))
        for attempt in (1, 2):
            proto = await self._connection()
            try:
                return await proto.request(all_headers, body)
            except NotProcessed:
                if attempt == 2 or self._closing:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._closing = True
        proto, self._proto = self._proto, None
        if proto is not None:
            await proto.close()

    async def _connection(self) -> _H2ClientProtocol:
        if self._closing:
            raise NotProcessed("the client is closed")
        proto = self._proto
        if proto is not None and proto.usable:
            return proto
        return await self._flight.run(self._open)

    async def _open(self) -> _H2ClientProtocol:
        proto = _H2ClientProtocol(self._max_response_bytes)
        d = defer.Deferred.fromCoroutine(self._connect(proto))
        d.addTimeout(self._connect_timeout_s, self._clock)
        try:
            await d
        except defer.TimeoutError:
            raise H2Unavailable(f"no HTTP/2 connection to {self.host}:{self.port} "
                                f"within {self._connect_timeout_s} s") from None
        except H2Unavailable:
            raise
        except Exception as e:
            raise H2Unavailable(f"cannot connect to {self.host}:{self.port}: {e}") from None
        if self._closing:
            await proto.close()
            raise NotProcessed("the client is closed")
        self._proto = proto
        self.connections_opened += 1
        return proto

    async def _connect(self, proto: _H2ClientProtocol) -> None:
        tls = optionsForClientTLS(self.host, trustRoot=self._trust_root, acceptableProtocols=[b"h2"])
        endpoint = wrapClientTLS(tls, HostnameEndpoint(self._reactor, self.host, self.port))
        await connectProtocol(endpoint, proto)
        await proto.ready
