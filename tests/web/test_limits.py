"""
Tests for heihei.web.limits.BoundedSite.

Two layers: fast tests that drive one channel through a StringTransport and a
task.Clock (timers, exact byte sequences), and real-socket tests against a
listener on 127.0.0.1:0 with raw TCP and autobahn WebSocket clients.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest
import pytest_twisted
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
    connectWS,
)
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from heihei.web.limits import (
    DEFAULT_MAX_HEADER_LINE_BYTES,
    DEFAULT_MAX_HEADERS,
    REFUSAL_LINGER_S,
    BoundedSite,
)
from tests.helpers import sleep, wait_until

MAX_BODY_BYTES = 100
CLOCK_DEADLINE_S = 10.0
REAL_DEADLINE_S = 0.5
# Generous bound for anything awaited over a real socket.
REAL_WAIT_S = 5.0
PEER = IPv4Address("TCP", "10.0.0.7", 40123)


# ---------------------------------------------------------------- resources


class EchoLength(Resource):
    """Answers how many body bytes it received; records each render."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[bytes] = []

    def render_GET(self, request) -> bytes:
        self.rendered.append(request.method)
        request.setHeader(b"content-type", b"application/json")
        return b'{"ok": true}'

    def render_POST(self, request) -> bytes:
        self.rendered.append(request.method)
        body = request.content.read()
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"received": len(body)}).encode()


class Held(Resource):
    """Holds each request open (NOT_DONE_YET) until the test finishes it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: list = []

    def render(self, request):
        self.pending.append(request)
        return NOT_DONE_YET


# ------------------------------------------------------------ clock helpers


def clocked_channel(resource: Resource | None = None, **limits):
    """
    A BoundedSite channel on a StringTransport, its timers on a Clock.
    """
    clock = Clock()
    settings = dict(max_body_bytes=MAX_BODY_BYTES, request_deadline_s=CLOCK_DEADLINE_S)
    settings.update(limits)
    site = BoundedSite(resource or EchoLength(), reactor=clock, **settings)
    channel = site.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    return clock, channel, transport


def parse_responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """
    Split a byte stream into complete HTTP/1.1 responses (Content-Length or
    chunked framing). Raises AssertionError on a truncated one.
    """
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data!r}"
        status_line, *header_lines = head.split(b"\r\n")
        code = int(status_line.split(b" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding") == b"chunked":
            body, data = _dechunk(rest)
        else:
            length = int(headers.get(b"content-length", b"0"))
            assert len(rest) >= length, f"truncated body: {data!r}"
            body, data = rest[:length], rest[length:]
        responses.append((code, headers, body))
    return responses


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    body = b""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        assert sep, "truncated chunked body"
        size = int(size_line, 16)
        if size == 0:
            assert data.startswith(b"\r\n"), "truncated chunked body"
            return body, data[2:]
        assert len(data) >= size + 2, "truncated chunked body"
        body += data[:size]
        data = data[size + 2 :]


def post(body: bytes, *extra_headers: bytes, path: bytes = b"/") -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra_headers)
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: test\r\n"
        + b"Content-Length: %d\r\n" % len(body)
        + headers
        + b"\r\n"
        + body
    )


def chunked_headers(path: bytes = b"/") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def lose(channel) -> None:
    channel.connectionLost(Failure(ConnectionDone()))


# -------------------------------------------------- clock: the deadline


def test_trickled_header_bytes_do_not_extend_the_deadline():
    resource = EchoLength()
    clock, channel, transport = clocked_channel(resource)
    channel.dataReceived(b"GET / HTTP/1.1\r\nX-Slow: ")
    for _ in range(int(CLOCK_DEADLINE_S) - 1):
        clock.advance(1)
        channel.dataReceived(b"a")
    clock.advance(0.9)
    assert transport.value() == b""
    assert not transport.disconnecting

    clock.advance(0.1)

    [(code, headers, body)] = parse_responses(transport.value())
    assert code == 408
    assert headers[b"connection"] == b"close"
    assert json.loads(body) == {
        "error": "request deadline exceeded",
        "deadline_s": CLOCK_DEADLINE_S,
    }
    assert transport.disconnecting
    assert resource.rendered == []
    # Whatever the client sends afterwards is ignored.
    channel.dataReceived(b"aaaa\r\n\r\n")
    assert resource.rendered == []
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_a_request_received_in_one_read_sets_no_timer():
    """The deadline's timer is set only when a read ends with its request incomplete, for what is
    left of it: a request that arrives whole is answered without one."""
    clock, channel, transport = clocked_channel()
    armed = []
    call_later = channel.callLater

    def counting(delay, f, *a, **kw):
        armed.append(f)
        return call_later(delay, f, *a, **kw)

    channel.callLater = counting
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(parse_responses(transport.value())) == 2
    assert channel._deadline_expired not in armed
    # a request cut over two reads: timed from its first byte
    transport.clear()
    channel.dataReceived(b"GET / HT")
    clock.advance(3)
    channel.dataReceived(b"TP/1.1\r\n")
    [deadline] = [c for c in clock.getDelayedCalls() if c.func == channel._deadline_expired]
    assert deadline.getTime() == CLOCK_DEADLINE_S
    channel.dataReceived(b"Host: x\r\n\r\n")
    assert not deadline.active() and transport.value().startswith(b"HTTP/1.1 200 ")
    lose(channel)


def test_refusals_are_logged_with_peer_and_reason():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        clock, channel, transport = clocked_channel()
        channel.dataReceived(chunked_headers() + chunk(b"x" * (MAX_BODY_BYTES + 1)))
    finally:
        globalLogPublisher.removeObserver(events.append)
    [event] = [e for e in events if e.get("log_namespace") == "heihei.web.limits"]
    assert (event["peer"], event["code"]) == ("10.0.0.7:40123", 413)
    assert formatEvent(event) == (
        "refusing request from 10.0.0.7:40123: request body too large (413)"
    )
    lose(channel)


def test_stock_site_lets_a_trickling_client_hold_the_connection():
    """
    The problem BoundedSite exists for, shown with the same trickle: stock
    twisted.web's idle timeout restarts on every byte. If this starts failing,
    Twisted has fixed it and the module docstring needs updating.
    """
    clock = Clock()
    site = Site(EchoLength(), reactor=clock)
    channel = site.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    channel.dataReceived(b"GET / HTTP/1.1\r\nX-Slow: ")
    for _ in range(60):
        clock.advance(30)
        channel.dataReceived(b"a")
    assert transport.value() == b""
    assert not transport.disconnecting
    lose(channel)


def test_deadline_covers_the_body_too():
    clock, channel, transport = clocked_channel()
    channel.dataReceived(post(b"x" * 50)[:-10])  # all headers, body short by 10
    clock.advance(CLOCK_DEADLINE_S - 0.1)
    channel.dataReceived(b"x" * 9)
    assert transport.value() == b""
    clock.advance(0.1)
    assert parse_responses(transport.value())[0][0] == 408
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_received_request_is_not_killed_while_its_response_is_pending():
    resource = Held()
    clock, channel, transport = clocked_channel(resource)
    channel.dataReceived(post(b"hello"))
    assert len(resource.pending) == 1

    clock.advance(CLOCK_DEADLINE_S * 5)
    assert transport.value() == b""
    assert not transport.disconnecting

    request = resource.pending[0]
    request.write(b"late but fine")
    request.finish()
    [(code, _, body)] = parse_responses(transport.value())
    assert (code, body) == (200, b"late but fine")
    assert not transport.disconnecting
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_each_keepalive_request_gets_its_own_deadline():
    resource = EchoLength()
    clock, channel, transport = clocked_channel(resource)
    # First request arrives slowly but in time.
    first = post(b"abc")
    channel.dataReceived(first[:10])
    clock.advance(CLOCK_DEADLINE_S - 1)
    channel.dataReceived(first[10:])
    assert [c for c, _, _ in parse_responses(transport.value())] == [200]
    transport.clear()

    # Idle between requests is the idle timeout's business, not the deadline's.
    clock.advance(CLOCK_DEADLINE_S * 3)
    assert not transport.disconnecting

    # The second request's deadline runs from its own first byte.
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    clock.advance(CLOCK_DEADLINE_S - 0.5)
    assert transport.value() == b""
    clock.advance(0.5)
    assert [c for c, _, _ in parse_responses(transport.value())] == [408]
    assert resource.rendered == [b"POST"]
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_pipelined_request_after_a_held_response_gets_a_fresh_deadline():
    """
    Bytes of a pipelined request wait in Twisted's buffer while the previous
    response is pending; that wait is not charged to the client.
    """
    resource = Held()
    clock, channel, transport = clocked_channel(resource)
    channel.dataReceived(post(b"one") + b"GET /two HTTP/1.1\r\nHost: te")
    assert len(resource.pending) == 1
    clock.advance(CLOCK_DEADLINE_S * 2)
    resource.pending[0].finish()
    transport.clear()

    clock.advance(CLOCK_DEADLINE_S - 1)
    channel.dataReceived(b"st\r\n\r\n")
    assert len(resource.pending) == 2
    clock.advance(CLOCK_DEADLINE_S * 2)
    assert transport.value() == b""
    resource.pending[1].finish()
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_request_pipelined_behind_a_synchronous_response_is_timed_from_arrival():
    """
    When the first response is written synchronously, Twisted parses the
    pipelined request straight from its line buffer, without another
    dataReceived: its deadline must still start when its bytes arrived.
    """
    resource = EchoLength()
    clock, channel, transport = clocked_channel(resource)
    # A body-less first request: with a body, the rest would be replayed
    # through dataReceived instead.
    channel.dataReceived(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX-Slow: ")
    assert [c for c, _, _ in parse_responses(transport.value())] == [200]
    transport.clear()
    clock.advance(CLOCK_DEADLINE_S - 1)
    channel.dataReceived(b"a")
    clock.advance(1)
    assert [c for c, _, _ in parse_responses(transport.value())] == [408]
    lose(channel)
    assert clock.getDelayedCalls() == []


# ------------------------------------------------ clock: the body cap


def test_declared_body_over_the_cap_is_refused_before_any_body_byte():
    resource = EchoLength()
    clock, channel, transport = clocked_channel(resource)
    head = post(b"x" * (MAX_BODY_BYTES + 1), b"Expect: 100-continue")
    head = head[: head.index(b"\r\n\r\n") + 4]
    channel.dataReceived(head)

    [(code, headers, body)] = parse_responses(transport.value())
    assert code == 413  # and no "100 Continue" first
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"error": "request body too large", "limit": MAX_BODY_BYTES}
    assert transport.disconnecting
    # Nothing was allocated to receive the body.
    assert channel.requests[-1].content is None

    written = transport.value()
    channel.dataReceived(b"x" * (MAX_BODY_BYTES + 1))
    assert transport.value() == written
    assert resource.rendered == []

    # A client that never goes away is cut off after the linger.
    clock.advance(REFUSAL_LINGER_S)
    assert transport.disconnected
    lose(channel)
    assert clock.getDelayedCalls() == []


class ArgsSeen(Resource):
    """Records what twisted.web put in `request.args` and the body it left unread."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def render_POST(self, request) -> bytes:
        self.seen.append((request.args, request.content.read()))
        return b"{}"


def test_form_bodies_are_left_to_the_readers():
    """twisted.web does not parse a form body into `request.args` (nor its Content-Type): the query string
    only; heihei's readers parse the body from its spool file, bounded."""
    resource = ArgsSeen()
    clock, channel, transport = clocked_channel(resource)
    channel.dataReceived(post(b"a=b", b"Content-Type: application/x-www-form-urlencoded", path=b"/?q=1"))
    channel.dataReceived(post(b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n",
                              b"Content-Type: multipart/form-data; boundary=x"))
    assert resource.seen[0] == ({b"q": [b"1"]}, b"a=b")
    assert resource.seen[1][0] == {}
    lose(channel)


def test_declared_body_at_the_cap_is_served():
    clock, channel, transport = clocked_channel()
    channel.dataReceived(post(b"x" * MAX_BODY_BYTES))
    [(code, _, body)] = parse_responses(transport.value())
    assert (code, json.loads(body)) == (200, {"received": MAX_BODY_BYTES})
    lose(channel)


def test_chunked_body_is_refused_as_soon_as_it_crosses_the_cap():
    resource = EchoLength()
    clock, channel, transport = clocked_channel(resource)
    channel.dataReceived(chunked_headers())
    channel.dataReceived(chunk(b"a" * 60))
    channel.dataReceived(chunk(b"b" * 40))  # exactly at the cap
    assert transport.value() == b""
    spool = channel.requests[-1].content
    assert spool.tell() == MAX_BODY_BYTES

    # One byte over, followed by garbage that would make Twisted's chunked
    # decoder answer 400 if it kept parsing.
    channel.dataReceived(chunk(b"c") + b"not-hex\r\n")

    [(code, _, body)] = parse_responses(transport.value())
    assert code == 413
    assert json.loads(body)["limit"] == MAX_BODY_BYTES
    assert spool.tell() == MAX_BODY_BYTES  # the crossing chunk was not stored
    assert transport.disconnecting
    assert resource.rendered == []
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_chunked_body_within_the_cap_is_served():
    clock, channel, transport = clocked_channel()
    channel.dataReceived(
        chunked_headers() + chunk(b"a" * 70) + chunk(b"b" * 30) + b"0\r\n\r\n"
    )
    [(code, _, body)] = parse_responses(transport.value())
    assert (code, json.loads(body)) == (200, {"received": MAX_BODY_BYTES})
    lose(channel)


# ----------------------------------------------- clock: header bounds


def test_overlong_header_line_gets_431():
    clock, channel, transport = clocked_channel()
    channel.dataReceived(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * DEFAULT_MAX_HEADER_LINE_BYTES)
    [(code, _, body)] = parse_responses(transport.value())
    assert code == 431
    assert json.loads(body)["limit"] == DEFAULT_MAX_HEADER_LINE_BYTES
    assert transport.disconnecting
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_overlong_request_line_gets_414():
    clock, channel, transport = clocked_channel()
    channel.dataReceived(b"GET /" + b"a" * DEFAULT_MAX_HEADER_LINE_BYTES + b" HTTP/1.1\r\n")
    assert parse_responses(transport.value())[0][0] == 414
    lose(channel)


def test_header_line_bound_is_configurable():
    clock, channel, transport = clocked_channel(max_header_line_bytes=64)
    channel.dataReceived(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 60 + b"\r\n")
    assert parse_responses(transport.value())[0][0] == 431
    lose(channel)


def test_too_many_headers_is_a_bad_request():
    resource = EchoLength()
    clock, channel, transport = clocked_channel(resource)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(DEFAULT_MAX_HEADERS))
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: test\r\n" + headers + b"\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ")
    assert resource.rendered == []
    lose(channel)
    assert clock.getDelayedCalls() == []


# --------------------------------------------- clock: no leaked timers


def _idle(channel, clock, resource):
    pass


def _mid_headers(channel, clock, resource):
    channel.dataReceived(b"GET / HTTP/1.1\r\nHo")


def _mid_body(channel, clock, resource):
    channel.dataReceived(post(b"x" * 50)[:-5])


def _after_408(channel, clock, resource):
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    clock.advance(CLOCK_DEADLINE_S)


def _after_413(channel, clock, resource):
    channel.dataReceived(chunked_headers() + chunk(b"x" * (MAX_BODY_BYTES + 1)))


def _response_pending(channel, clock, resource):
    channel.dataReceived(post(b"x"))
    assert resource.pending


def _after_response(channel, clock, resource):
    channel.dataReceived(post(b"x"))
    resource.pending[0].finish()


@pytest.mark.parametrize(
    "reach_state",
    [_idle, _mid_headers, _mid_body, _after_408, _after_413, _response_pending, _after_response],
)
def test_no_delayed_calls_remain_after_connection_lost(reach_state: Callable):
    resource = Held()
    clock, channel, transport = clocked_channel(resource)
    reach_state(channel, clock, resource)
    lose(channel)
    assert clock.getDelayedCalls() == []


def test_constructor_rejects_nonsense_limits():
    with pytest.raises(ValueError):
        BoundedSite(EchoLength(), max_body_bytes=-1, request_deadline_s=1.0)
    with pytest.raises(ValueError):
        BoundedSite(EchoLength(), max_body_bytes=1, request_deadline_s=0)


# ================================================== real-socket layer


async def within(d: Deferred, timeout_s: float = REAL_WAIT_S):
    return await d.addTimeout(timeout_s, reactor)


class RawClient(Protocol):
    """Collects everything the server sends; `closed` fires on disconnect."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.closed: Deferred[None] = Deferred()
        self.is_closed = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.is_closed = True
        self.closed.callback(None)

    def responses(self):
        return parse_responses(bytes(self.received))

    def has_complete_responses(self, n: int) -> bool:
        try:
            return len(self.responses()) >= n
        except AssertionError:
            return False


@pytest.fixture
def no_leaks():
    """
    pytest-twisted has no dirty-reactor check: fail a test that leaves
    delayed calls of its own behind (after its other fixtures cleaned up).
    """
    before = set(reactor.getDelayedCalls())
    yield
    leaked = [c for c in reactor.getDelayedCalls() if c not in before and c.active()]
    for call in leaked:
        call.cancel()
    assert leaked == [], f"leaked delayed calls: {leaked}"


@pytest_twisted.async_yield_fixture
async def net(no_leaks):
    """
    Listens with a site on 127.0.0.1:0 and opens raw clients; on teardown,
    closes clients, waits for every server-side connection to end (failing if
    one does not) and stops listening.
    """

    class Net:
        def __init__(self) -> None:
            self.ports = []
            self.server_transports = []
            self.server_channels = []
            self.clients: list[RawClient] = []

        def listen(self, site) -> int:
            build = site.buildProtocol

            def tracking_build(addr):
                channel = build(addr)
                self.server_channels.append(channel)
                make = channel.makeConnection

                def tracking_make(transport):
                    self.server_transports.append(transport)
                    make(transport)

                channel.makeConnection = tracking_make
                return channel

            site.buildProtocol = tracking_build
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
            self.ports.append(port)
            return port.getHost().port

        async def connect(self, port: int) -> RawClient:
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
            client = await within(connectProtocol(endpoint, RawClient()))
            self.clients.append(client)
            return client

    net = Net()
    yield net
    for client in net.clients:
        if not client.is_closed:
            client.transport.abortConnection()
        await within(client.closed)
    try:
        await wait_until(
            lambda: all(t.disconnected for t in net.server_transports),
            timeout_s=REFUSAL_LINGER_S + 1,
        )
    finally:
        for t in net.server_transports:
            if not t.disconnected:
                t.abortConnection()
        for port in net.ports:
            await port.stopListening()


def real_site(resource: Resource | None = None, **limits) -> BoundedSite:
    settings = dict(max_body_bytes=MAX_BODY_BYTES, request_deadline_s=REAL_DEADLINE_S)
    settings.update(limits)
    return BoundedSite(resource or EchoLength(), **settings)


@pytest_twisted.ensureDeferred
async def test_real_small_post_is_echoed(net):
    port = net.listen(real_site())
    client = await net.connect(port)
    client.transport.write(post(b"hello world"))
    await wait_until(lambda: client.has_complete_responses(1))
    [(code, _, body)] = client.responses()
    assert (code, json.loads(body)) == (200, {"received": 11})
    client.transport.loseConnection()
    await within(client.closed)


@pytest_twisted.ensureDeferred
async def test_real_content_length_over_cap_gets_413_and_close(net):
    port = net.listen(real_site())
    client = await net.connect(port)
    client.transport.write(post(b"x" * 100_000)[:20_000])
    await within(client.closed)  # the server closed it
    [(code, headers, body)] = client.responses()
    assert code == 413
    assert headers[b"connection"] == b"close"
    assert json.loads(body) == {"error": "request body too large", "limit": MAX_BODY_BYTES}


def _keep_sending_then_read(port: int, head: bytes, body_part: bytes, parts: int) -> bytes:
    """
    What naive HTTP clients do: write the whole request, pausing as a slow
    uplink would, and only then read. Blocking socket; runs in a thread.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=REAL_WAIT_S) as s:
        s.sendall(head)
        for _ in range(parts):
            s.sendall(body_part)
            time.sleep(REFUSAL_LINGER_S / 10)
        received = b""
        while data := s.recv(65536):
            received += data
        return received


@pytest_twisted.ensureDeferred
async def test_real_client_sending_its_whole_body_first_still_reads_the_413(net):
    """
    The server refuses after the headers while body bytes keep arriving.
    Closing outright would make the kernel answer them with a reset (the
    client gets EPIPE/ECONNRESET instead of a 413); the server half-closes and
    drains instead.
    """
    port = net.listen(real_site())
    part = b"x" * 200_000
    request = post(part * 3)
    head = request[: request.index(b"\r\n\r\n") + 4]
    received = await within(deferToThread(_keep_sending_then_read, port, head, part, 3))
    assert [code for code, _, _ in parse_responses(received)] == [413]


@pytest_twisted.ensureDeferred
async def test_real_chunked_body_over_cap_gets_413_and_close(net):
    resource = EchoLength()
    port = net.listen(real_site(resource))
    client = await net.connect(port)
    client.transport.write(chunked_headers() + chunk(b"a" * 80))
    await sleep(0.05)
    assert not client.received
    client.transport.write(chunk(b"b" * 80))
    await within(client.closed)
    assert [code for code, _, _ in client.responses()] == [413]
    assert resource.rendered == []


@pytest_twisted.ensureDeferred
async def test_real_trickling_client_gets_408_at_the_deadline(net):
    resource = EchoLength()
    port = net.listen(real_site(resource))
    client = await net.connect(port)
    started = time.monotonic()
    client.transport.write(b"GET / HTTP/1.1\r\nX-Slow: ")
    trickle = LoopingCall(client.transport.write, b"a")
    trickle.clock = reactor
    trickling = trickle.start(REAL_DEADLINE_S / 10, now=False)
    try:
        await within(client.closed, REAL_DEADLINE_S * 6)
    finally:
        trickle.stop()
        await trickling
    elapsed = time.monotonic() - started
    assert [code for code, _, _ in client.responses()] == [408]
    assert REAL_DEADLINE_S * 0.9 <= elapsed < REAL_DEADLINE_S * 4
    assert resource.rendered == []


@pytest_twisted.ensureDeferred
async def test_real_keepalive_serves_two_requests_on_one_connection(net):
    port = net.listen(real_site())
    client = await net.connect(port)
    client.transport.write(post(b"12345"))
    await wait_until(lambda: client.has_complete_responses(1))
    # Longer than the deadline between requests, then a pipelined pair.
    await sleep(REAL_DEADLINE_S * 1.5)
    client.transport.write(post(b"1234567") + post(b"x" * MAX_BODY_BYTES))
    await wait_until(lambda: client.has_complete_responses(3))
    assert [(c, json.loads(b)) for c, _, b in client.responses()] == [
        (200, {"received": 5}),
        (200, {"received": 7}),
        (200, {"received": MAX_BODY_BYTES}),
    ]
    assert not client.is_closed
    assert len(net.server_channels) == 1
    client.transport.loseConnection()
    await within(client.closed)


class EchoServer(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


class RecordingClient(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.factory.messages.append(payload)

    def onClose(self, wasClean, code, reason):
        self.factory.closed.callback(wasClean)


@pytest_twisted.ensureDeferred
async def test_real_websocket_upgrade_outlives_the_deadline(net):
    ws_factory = WebSocketServerFactory()
    ws_factory.protocol = EchoServer
    root = Resource()
    root.putChild(b"ws", WebSocketResource(ws_factory))
    port = net.listen(real_site(root))

    client_factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/ws")
    client_factory.protocol = RecordingClient
    client_factory.opened = Deferred()
    client_factory.closed = Deferred()
    client_factory.messages = []
    connector = connectWS(client_factory)
    try:
        client = await within(client_factory.opened)
        await sleep(REAL_DEADLINE_S * 2.5)
        client.sendMessage(b"still here")
        await wait_until(lambda: client_factory.messages == [b"still here"])
        # The deadline was cancelled when the upgrade request was complete,
        # not fired into a channel that no longer owns the transport.
        [channel] = net.server_channels
        assert channel._deadline_call is None
        assert not channel._refused
        client.sendClose()
        assert await within(client_factory.closed) is True
    finally:
        connector.disconnect()
