"""
A hardened twisted.web Site: bounded request bodies and an absolute deadline
for receiving each request.

Stock twisted.web (26.10) is permissive in two ways that matter to a public
server:

- Request bodies of any size are accepted: `Request.gotLength` spools anything
  over 100 kB into a temporary file, so a client can fill the disk, and a
  chunked body has no limit at all.
- The only timer is an *idle* timeout (`HTTPFactory.timeOut`, 60 s by
  default) that `HTTPChannel.dataReceived` resets on every byte, so a client
  trickling one header byte every few seconds holds a connection (and its
  partial request) forever: a slowloris.

`BoundedSite` answers

    Content-Length > max_body_bytes        -> 413, before any of the body is read
    chunked body grows past max_body_bytes -> 413, as soon as it crosses
    headers+body not received in time      -> 408 (deadline runs from the
                                              request's first byte and is not
                                              reset by incoming bytes)
    header line > max_header_line_bytes    -> 431 (414 for the request line)

each with a small JSON body and `Connection: close`, then closes the
connection. Stock twisted.web would drop an over-long line silently. The
body is worded by the surface that owns the request's path when the site has
a `word` for it (heihei's `{"errorcode", "errormsg"}`, boss's `{"code",
"message"}`, J-IM's `{"code", "msg", "data"}`), else `{"error", <limit>}`.

The deadline only covers *receiving* a request: once the request is complete
it is cancelled, so a slow handler, a long response or a WebSocket upgraded
by autobahn's `WebSocketResource` (which renders after the request is fully
received) are never cut short. Each request on a keep-alive connection gets
its own deadline.

The channel speaks HTTP/1.1 only: Twisted's HTTP/2 channel (chosen via TLS
ALPN) would bypass every limit here, so it is deliberately not offered.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

_log = Logger()

# Twisted's own defaults are MAX_LENGTH = 16384 bytes per line and
# maxHeaders = 500; totalHeadersSize (16384 bytes for request line plus all
# headers) is kept as is. These tighter values match common front ends
# (nginx's 8 kB header buffers, Apache's LimitRequestFields 100).
DEFAULT_MAX_HEADER_LINE_BYTES = 8192
DEFAULT_MAX_HEADERS = 100

# After a refusal the write side is shut down but the connection keeps
# reading (and discarding) for this long: closing a socket with unread data
# makes the kernel send a RST, which can destroy our 413 before the client
# reads it. A client that neither stops sending nor closes is aborted.
REFUSAL_LINGER_S = 2.0

# RFC 9110/6585 reason phrases; twisted.web.http.RESPONSES lacks 431 and
# uses the older names for the others.
_REASON_PHRASES = {
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


class _Refused(Exception):
    """
    Raised from inside a transfer decoder's data callback to stop it
    mid-buffer once the body is refused; otherwise the decoder would keep
    parsing, and a malformed remainder would make Twisted write a 400 after
    our 413.
    """


class BoundedHTTPChannel(HTTPChannel):
    """
    An L{HTTPChannel} that enforces L{BoundedSite}'s limits.

    The limits are set by L{BoundedSite.buildProtocol}. Overrides are kept to
    the hooks where the parser changes state (first byte of a request,
    headers done, body done), always deferring to Twisted for the parsing.
    """

    max_body_bytes: int = 0
    request_deadline_s: float = 0.0

    _deadline_call: IDelayedCall | None = None
    _linger_call: IDelayedCall | None = None
    _refused = False
    _body_bytes = 0
    #: when the first byte of the request now being received arrived (None: no request under way)
    _started_at: float | None = None
    #: inside our dataReceived: a deadline is armed when it returns, if the request is still incomplete
    _in_data = False
    #: the site's clock (BoundedSite.buildProtocol)
    seconds: Callable[[], float]

    # -- request start: the deadline starts at the request's first byte ----
    #
    # Most requests arrive whole in one read and are answered before it returns: they need no timer.
    # So the first byte's time is noted, and the deadline's timer is only set (for what is left of
    # it) when a read ends with the request still incomplete; a callLater and its cancel per request
    # were a few percent of a small request's cost.

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_data:
            super().dataReceived(data)
            return
        self._in_data = True
        try:
            if data:
                self._note_request_start()
            super().dataReceived(data)
        finally:
            self._in_data = False
        self._arm_deadline()

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        # A pipelined request whose bytes were already buffered when the
        # previous response finished synchronously is parsed from
        # LineReceiver's buffer without passing through dataReceived.
        self._note_request_start()
        if not self._in_data:
            self._arm_deadline()
        super().lineReceived(line)

    def _note_request_start(self) -> None:
        """
        Note the arrival of the request now being received, if any byte of
        it has arrived and it was not noted yet.

        While a request is being handled, bytes of the next (pipelined)
        request are buffered by Twisted, not parsed; its deadline starts
        when they are replayed, since the wait is ours, not the client's.
        """
        if (
            self._started_at is None
            and not self._handlingRequest
            and self.transport is not None
            and not getattr(self.transport, "disconnecting", False)
        ):
            self._started_at = self.seconds()

    def _arm_deadline(self) -> None:
        """Set the timer for what is left of the deadline of a request still being received."""
        if self._started_at is not None and self._deadline_call is None and not self._refused:
            left = self.request_deadline_s - (self.seconds() - self._started_at)
            self._deadline_call = self.callLater(max(left, 0.0), self._deadline_expired)

    def release_after_upgrade(self) -> None:
        """The connection is a WebSocket now (`heihei.net.websocket`): let go of the request.

        Why: the channel and its request point at each other, so once the
        WebSocket protocol owns the transport only the cycle collector would
        free them, about 25 objects per connection that stay in memory until
        it runs (measured with `gc.DEBUG_SAVEALL`)."""
        self._cancel_deadline()
        for request in self.requests:
            request.channel = None
        self.requests = []

    def _cancel_deadline(self) -> None:
        self._started_at = None
        if self._deadline_call is not None:
            if self._deadline_call.active():
                self._deadline_call.cancel()
            self._deadline_call = None

    def _deadline_expired(self) -> None:
        self._deadline_call = None
        self._refuse(
            408,
            "request deadline exceeded",
            "deadline_s",
            self.request_deadline_s,
        )

    # -- headers done: refuse a declared body that is too large ------------

    def allHeadersReceived(self) -> None:
        # self.length is the Content-Length, or None for a chunked body.
        # Refuse before super(): it would allocate the body's spool file
        # (Request.gotLength) and may answer "Expect: 100-continue".
        if self.length is not None and self.length > self.max_body_bytes:
            self._refuse_body_too_large(declared=self.length)
            return
        gate = getattr(getattr(self, "site", None), "gate", None)
        if gate is not None and self.requests:
            # decided from the request line and headers alone: a caller the gate refuses never gets
            # to send (or make us store, or parse) a body
            early = gate(self._command, self._path, self.requests[-1].requestHeaders)
            if early is not None:
                self._refuse_with(early)
                return
        super().allHeadersReceived()
        self._body_bytes = 0
        decoder = self._transferDecoder
        if decoder is not None:
            # Both Twisted decoders deliver the decoded body through their
            # `dataCallback` attribute (the request's handleContentChunk).
            decoder.dataCallback = functools.partial(
                self._bounded_body_chunk, decoder.dataCallback
            )

    def _bounded_body_chunk(self, deliver: Callable[[bytes], None], data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body_bytes:
            self._refuse_body_too_large(declared=None)
            raise _Refused()
        deliver(data)

    def _refuse_body_too_large(self, declared: int | None) -> None:
        self._refuse(
            413,
            "request body too large",
            "limit",
            self.max_body_bytes,
            declared=declared,
        )

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        try:
            super().rawDataReceived(data)
        except _Refused:
            pass

    # -- body done: the client has done its part -----------------------------

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        super().allContentReceived()

    # -- over-long lines -----------------------------------------------------

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted's default drops the connection without an answer. Before
        # the request line is parsed there is no Request object yet.
        if not self.requests:
            self._refuse(414, "request line too long", "limit", self.MAX_LENGTH, path=_target_of(line))
        else:
            self._refuse(431, "request header line too long", "limit", self.MAX_LENGTH)

    # -- refusal and teardown ------------------------------------------------

    def _refuse_with(self, early: "EarlyAnswer") -> None:
        """Answer a gate's refusal (its own status, headers and body) and close, reading nothing more."""
        self._refuse(early.status, early.reason, "gate", 0, answer=_response(early.status, early.body,
                                                                             early.headers))

    def _refuse(
        self,
        code: int,
        reason: str,
        limit_name: str,
        limit: float,
        answer: bytes | None = None,
        path: bytes | None = None,
        **log_fields: Any,
    ) -> None:
        """
        Answer C{code} with a JSON body and close, reading nothing more.

        The answer is written straight to the transport, as Twisted does for
        its own 400s: the partial request never reached a resource, and no
        other response can be in flight (Twisted parses the next request
        only after the previous response finished).
        """
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        self.setTimeout(None)
        self.clearLineBuffer()
        transport = self.transport
        if transport is None:
            return
        _log.info(
            "refusing request from {peer}: {reason} ({code})",
            peer=_describe_peer(transport),
            reason=reason,
            code=code,
            **log_fields,
        )
        if not getattr(transport, "disconnecting", False):
            if answer is None:
                answer = self._worded(code, reason, limit_name, limit, path)
            transport.write(answer)
            if ITCPTransport.providedBy(transport):
                # Half-close and drain (see REFUSAL_LINGER_S); the peer's EOF
                # then ends the connection, since HTTPChannel is not
                # IHalfCloseableProtocol.
                transport.unregisterProducer()
                transport.loseWriteConnection()
            else:
                self.loseConnection()
        # Bounds the drain, and a peer that never reads our answer (whose
        # close would otherwise wait forever for the write buffer to empty).
        self._linger_call = self.callLater(REFUSAL_LINGER_S, self._abort_after_linger)

    def _worded(self, code: int, reason: str, limit_name: str, limit: float, path: bytes | None) -> bytes:
        """The refusal in the envelope of the surface owning the request's path, if the site knows it."""
        word = getattr(getattr(self, "site", None), "word", None)
        if path is None:
            path = getattr(self, "_path", None)
        if word is not None and path is not None:
            early = word(path, code, f"{reason} ({limit_name} {limit:g})")
            if early is not None:
                return _response(code, early.body, early.headers)
        return _error_response(code, {"error": reason, limit_name: limit})

    def _abort_after_linger(self) -> None:
        self._linger_call = None
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionLost(self, reason: Any) -> None:
        self._cancel_deadline()
        if self._linger_call is not None:
            if self._linger_call.active():
                self._linger_call.cancel()
            self._linger_call = None
        super().connectionLost(reason)


@dataclass(frozen=True)
class EarlyAnswer:
    """A refusal a site's gate gives from the headers alone (in the surface's own format)."""

    status: int
    reason: str
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json; charset=utf-8"),)


#: a site's gate: (method, path with query, headers) -> a refusal, or None to let the request in
Gate = Callable[[bytes, bytes, Any], "EarlyAnswer | None"]
#: a site's wording of its own refusals: (path with query, status, text) -> the answer in the envelope of
#: the surface owning the path, or None for the site's plain `{"error": ...}`
Word = Callable[[bytes, int, str], "EarlyAnswer | None"]


class BoundedSite(Site):
    """
    A L{Site} whose connections enforce a body-size cap, an absolute
    per-request receive deadline and tighter header bounds (see the module
    docstring for the answers).

    @param resource: the root resource, as for L{Site}.
    @param max_body_bytes: largest accepted request body, after chunked
        decoding.
    @param request_deadline_s: seconds from a request's first byte within
        which its headers and body must be fully received.
    @param reactor: L{IReactorTime} for every timer (idle timeout, deadline,
        linger); defaults to the global reactor, as in L{Site}.
    @param max_headers: most header fields per request.
    @param max_header_line_bytes: longest request line or header line.
    @param kw: passed on to L{Site} (e.g. C{timeout} for the idle timeout).
    """

    protocol = BoundedHTTPChannel

    def __init__(
        self,
        resource: Any,
        *,
        max_body_bytes: int,
        request_deadline_s: float,
        reactor: IReactorTime | None = None,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_header_line_bytes: int = DEFAULT_MAX_HEADER_LINE_BYTES,
        gate: "Gate | None" = None,
        word: "Word | None" = None,
        **kw: Any,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must be >= 0, not {max_body_bytes!r}")
        if not request_deadline_s > 0:
            raise ValueError(
                f"request_deadline_s must be > 0, not {request_deadline_s!r}"
            )
        if max_headers < 1 or max_header_line_bytes < 1:
            raise ValueError("max_headers and max_header_line_bytes must be >= 1")
        # twisted.web would read an urlencoded or multipart body whole into `request.args` (a 20 MiB
        # upload cost the node hundreds of MB): `args` holds the query string only, and the surfaces'
        # readers (heihei.web.kit.readers) parse the body from its spool file, bounded, with file
        # parts streamed to disk. It is an argument, not a class attribute: Site.__init__ sets the
        # instance attribute, which hid a class attribute here, and every POST with a Content-Type then
        # paid for parsing it through email.message (~0.1 ms per request, a fifth of a user-gold call).
        kw.setdefault("parsePOSTFormSubmission", False)
        super().__init__(resource, reactor=reactor, **kw)
        self.max_body_bytes = max_body_bytes
        #: decides from the headers whether a request may send its body at all (None: all may)
        self.gate: Gate | None = gate
        #: words the site's own refusals (413, 414, 431, 408) in the surface's envelope
        self.word: Word | None = word
        self.request_deadline_s = request_deadline_s
        self.max_headers = max_headers
        self.max_header_line_bytes = max_header_line_bytes

    def buildProtocol(self, addr: Any) -> BoundedHTTPChannel:
        channel = super().buildProtocol(addr)
        channel.max_body_bytes = self.max_body_bytes
        channel.request_deadline_s = self.request_deadline_s
        channel.seconds = self.reactor.seconds
        channel.maxHeaders = self.max_headers
        channel.MAX_LENGTH = self.max_header_line_bytes
        return channel


def refusal_wording(surfaces: list[tuple[str, Any]]) -> "Word":
    """A site's `Word` from its mounts' surfaces: (mount path, heihei.web.kit.routes.Surface), "" for the
    site's fallback. The longest mount path that is a whole-segment prefix of the request's path wins."""
    from heihei.web.kit.routes import site_refusal

    ordered = sorted(((("/" + path.strip("/")).rstrip("/").encode(), surface) for path, surface in surfaces),
                     key=lambda item: -len(item[0]))

    def word(target: bytes, status: int, text: str) -> "EarlyAnswer | None":
        path = target.split(b"?", 1)[0]
        for prefix, surface in ordered:
            if path == prefix or path.startswith(prefix + b"/") or not prefix:
                body, headers = site_refusal(surface, status, text)
                return EarlyAnswer(status, text, body, headers)
        return None

    return word


def _error_response(code: int, payload: dict[str, Any]) -> bytes:
    return _response(code, json.dumps(payload).encode("utf-8"), ((b"Content-Type", b"application/json"),))


def _response(code: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
    from twisted.web.http import RESPONSES

    phrase = _REASON_PHRASES.get(code) or RESPONSES.get(code, b"Error")
    lines = [b"HTTP/1.1 %d %s\r\n" % (code, phrase)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in headers]
    lines += [b"Content-Length: %d\r\n" % (len(body),), b"Connection: close\r\n", b"\r\n", body]
    return b"".join(lines)


def _target_of(line: bytes) -> bytes | None:
    """The request target of a (possibly cut off) request line: `GET /api/x?... HTTP/1.1` -> b"/api/x?..."."""
    parts = line.split(b" ", 2)
    return parts[1] if len(parts) > 1 and parts[1].startswith(b"/") else None


def _describe_peer(transport: Any) -> str:
    peer = transport.getPeer()
    host = getattr(peer, "host", None)
    port = getattr(peer, "port", None)
    if host is None:
        return str(peer)
    return f"{host}:{port}"
