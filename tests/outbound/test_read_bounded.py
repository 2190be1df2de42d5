"""
Tests for heihei.outbound.http.read_bounded against real twisted.web servers
on 127.0.0.1:0, read with a real treq client.

The server records how each request ended ("finished", or "lost" when the
client closed the connection first), so the tests can check that refusing or
giving up really closes the connection instead of reading on.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from heihei.outbound.http import BodyTooLarge, read_bounded
from tests.helpers import sleep

LIMIT = 1000
#: generous bound for anything awaited over a real socket
REAL_WAIT_S = 5.0
#: far more than any socket buffer holds, so a reader that does not stop would see it all
STREAM_BYTES = 8 * 1024 * 1024
STREAM_CHUNK = 64 * 1024


class Server(Resource):
    """`/sized/N`: N bytes with Content-Length; `/chunked/N`: N bytes chunked, in
    `STREAM_CHUNK` pieces, then the end; `/endless`: chunked, `STREAM_BYTES` and no
    end; `/announce`: Content-Length 1 MB and no body; `/stall`: 4 bytes, no end;
    `/cut`: Content-Length 100, 10 bytes, then the connection is dropped."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.ended: dict[str, defer.Deferred] = {}

    def render_GET(self, request):
        path = request.path.decode()
        self.ended[path] = request.notifyFinish().addCallbacks(lambda _: "finished", _lost)
        kind, _, arg = path.strip("/").partition("/")
        if kind == "sized":
            return b"s" * int(arg)
        if kind == "chunked":
            left = int(arg)
            while left > 0:
                request.write(b"c" * min(left, STREAM_CHUNK))
                left -= STREAM_CHUNK
            request.finish()
            return NOT_DONE_YET
        if kind == "endless":
            for _ in range(STREAM_BYTES // STREAM_CHUNK):
                request.write(b"e" * STREAM_CHUNK)
            return NOT_DONE_YET
        if kind == "announce":
            request.setHeader(b"content-length", b"1000000")
            request.write(b"")  # sends the headers
            return NOT_DONE_YET
        if kind == "stall":
            request.write(b"part")
            return NOT_DONE_YET
        if kind == "cut":
            request.setHeader(b"content-length", b"100")
            request.write(b"0123456789")
            request.channel.transport.loseConnection()
            return NOT_DONE_YET
        request.setResponseCode(404)
        return b"no such thing"

    async def outcome(self, path: str) -> str:
        """"finished", or "lost" if the connection closed first; TimeoutError if neither happens."""
        d = self.ended[path]
        d.addTimeout(REAL_WAIT_S, reactor)
        return await d


def _lost(failure) -> str:
    """How a request ended when its connection closed first (handled here, whether or not a test
    asks: an unhandled one would be logged when collected, in whichever test runs then)."""
    failure.trap(ConnectionDone, ConnectionLost)
    return "lost"


class Http10Once(Protocol):
    """An HTTP/1.0 server without Content-Length: the body ends when the connection does."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, 1.0")
            self.transport.loseConnection()


@pytest_twisted.async_yield_fixture
async def server():
    resource = Server()
    site = Site(resource)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    http10 = reactor.listenTCP(0, Factory.forProtocol(Http10Once), interface="127.0.0.1")
    resource.url = f"http://127.0.0.1:{port.getHost().port}"
    resource.http10_url = f"http://127.0.0.1:{http10.getHost().port}/"
    yield resource
    await port.stopListening()
    await http10.stopListening()


@pytest.fixture
def http():
    return HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))


async def get(http, url: str, **kw):
    return await http.get(url, unbuffered=True, **kw)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", [f"/sized/{LIMIT - 1}", f"/chunked/{LIMIT - 1}", "/sized/0", "/chunked/0"])
async def test_a_body_under_the_limit_is_read_whole(server, http, path):
    response = await get(http, server.url + path)
    body = await read_bounded(response, LIMIT)
    assert body == (b"s" if "sized" in path else b"c") * int(path.rsplit("/", 1)[1])
    assert await server.outcome(path) == "finished"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", [f"/sized/{LIMIT}", f"/chunked/{LIMIT}", f"/chunked/{3 * STREAM_CHUNK}"])
async def test_a_body_of_exactly_the_limit_is_read_whole(server, http, path):
    size = int(path.rsplit("/", 1)[1])
    response = await get(http, server.url + path)
    body = await read_bounded(response, size)
    assert body == (b"s" if "sized" in path else b"c") * size
    assert await server.outcome(path) == "finished"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", [f"/sized/{LIMIT + 1}", f"/chunked/{LIMIT + 1}"])
async def test_one_byte_over_the_limit_is_body_too_large(server, http, path):
    response = await get(http, server.url + path)
    with pytest.raises(BodyTooLarge) as info:
        await read_bounded(response, LIMIT)
    assert str(info.value) == f"body larger than {LIMIT} bytes"
    assert info.value.limit == LIMIT


@pytest_twisted.ensureDeferred
async def test_an_endless_body_is_cut_off_and_the_connection_closed(server, http):
    response = await get(http, server.url + "/endless")
    with pytest.raises(BodyTooLarge):
        await read_bounded(response, LIMIT)
    # the server never finishes this answer: only our closing the connection ends it
    assert await server.outcome("/endless") == "lost"


@pytest_twisted.ensureDeferred
async def test_an_announced_length_over_the_limit_is_refused_before_any_body(server, http):
    response = await get(http, server.url + "/announce")
    assert response.length == 1_000_000
    d = read_bounded(response, LIMIT)
    # no body byte was ever sent: the refusal comes from Content-Length alone
    assert d.called
    with pytest.raises(BodyTooLarge):
        await d
    assert await server.outcome("/announce") == "lost"


@pytest_twisted.ensureDeferred
async def test_a_limit_of_zero_accepts_only_an_empty_body(server, http):
    """Callers use limit 0 to refuse an answer (e.g. an HTTP error) without reading it."""
    assert await read_bounded(await get(http, server.url + "/sized/0"), 0) == b""
    with pytest.raises(BodyTooLarge):
        await read_bounded(await get(http, server.url + "/chunked/1"), 0)


@pytest_twisted.ensureDeferred
async def test_cancelling_the_read_closes_the_connection(server, http):
    response = await get(http, server.url + "/stall")
    d = read_bounded(response, LIMIT)
    d.cancel()
    with pytest.raises(defer.CancelledError):
        await d
    assert await server.outcome("/stall") == "lost"


@pytest_twisted.ensureDeferred
async def test_a_stalled_body_waits_until_the_callers_deadline_then_closes(server, http):
    clock = task.Clock()
    response = await get(http, server.url + "/stall")
    d = read_bounded(response, LIMIT)
    d.addTimeout(30, clock)
    await sleep(0.2)  # real I/O: the 4 bytes and nothing more arrive
    assert not d.called
    clock.advance(30)
    with pytest.raises(defer.TimeoutError):
        await d
    assert await server.outcome("/stall") == "lost"


@pytest_twisted.ensureDeferred
async def test_a_connection_broken_mid_body_is_an_error(server, http):
    response = await get(http, server.url + "/cut")
    with pytest.raises(ResponseFailed):
        await read_bounded(response, LIMIT)


@pytest_twisted.ensureDeferred
async def test_a_body_ended_by_closing_the_connection_counts_as_complete(server, http):
    response = await get(http, server.http10_url)
    assert await read_bounded(response, LIMIT) == b"hello, 1.0"


@pytest_twisted.ensureDeferred
async def test_buffered_treq_responses_are_bounded_too(server, http):
    response = await http.get(server.url + "/endless")  # treq's default: buffered
    with pytest.raises(BodyTooLarge):
        await read_bounded(response, LIMIT)
    assert await server.outcome("/endless") == "lost"
    response = await http.get(server.url + f"/chunked/{LIMIT}")
    assert await read_bounded(response, LIMIT) == b"c" * LIMIT
