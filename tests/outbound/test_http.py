"""
Tests for heihei.outbound.http.HttpClient against real twisted.web servers on
127.0.0.1:0: deadlines on an injected task.Clock, bounded answers, the pool's
reuse of connections, typed errors, and a close() that leaves nothing behind
(the autouse leak check fails a test that leaves connections or timers).
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from heihei.outbound.http import HttpClient, NotJson, OutboundError, TimedOut, TooLarge, Unreachable
from heihei.store.embedded import free_loopback_port
from tests.outbound.conftest import REAL_WAIT_S, real_wait

LIMIT = 1000


class Server(Resource):
    """`/ok`, `/status/N`, `/json`, `/array`, `/html`, `/sized/N` (with Content-Length),
    `/endless` (chunked, never ends), `/stall` (a little body, then nothing),
    `/cookie` (sets one), `/seen-cookie`; POST `/echo` answers what it got. Records
    which connection served each request and how each request ended."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.channels: list = []
        self.ended: dict[str, defer.Deferred] = {}
        self.open_requests: list = []

    def render(self, request):
        path = request.path.decode()
        self.channels.append(request.channel)
        self.ended[path] = request.notifyFinish().addCallbacks(
            lambda _: "finished", lambda f: (f.trap(ConnectionDone, ConnectionLost), "lost")[1])
        kind, _, arg = path.strip("/").partition("/")
        if kind == "ok":
            return b"ok"
        if kind == "status":
            request.setResponseCode(int(arg))
            return b'{"errcode": 1}'
        if kind == "json":
            return b'{"a": 1}'
        if kind == "array":
            return b"[1]"
        if kind == "html":
            return b"<html>502</html>"
        if kind == "sized":
            return b"s" * int(arg)
        if kind == "endless":
            for _ in range(128):
                request.write(b"e" * 65536)
            self.open_requests.append(request)
            return NOT_DONE_YET
        if kind == "stall":
            request.write(b'{"partial": ')
            self.open_requests.append(request)
            return NOT_DONE_YET
        if kind == "cookie":
            request.addCookie(b"session", b"s3cr3t", path=b"/")
            return b"ok"
        if kind == "seen-cookie":
            return b"yes" if request.getHeader(b"cookie") else b"no"
        if kind == "noloc":  # a redirect without Location: Twisted's error quotes the URL
            request.setResponseCode(302)
            return b""
        if kind == "echo":
            return json.dumps({"body": request.content.read().decode(),
                               "type": (request.getHeader(b"content-type") or b"").decode(),
                               "x": (request.getHeader(b"x-test") or b"").decode()}).encode()
        request.setResponseCode(404)
        return b"no such thing"

    async def outcome(self, path: str) -> str:
        """"finished", or "lost" if the connection closed first."""
        return await self.ended[path].addTimeout(REAL_WAIT_S, reactor)


class Silent(Protocol):
    """Accepts a connection and never answers; records when it is closed."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.closed = defer.Deferred()

    def connectionLost(self, reason=None) -> None:
        self.closed.callback(None)


@pytest_twisted.async_yield_fixture
async def server():
    resource = Server()
    site = Site(resource)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    silent_factory = Factory.forProtocol(Silent)
    silent_factory.connections = []
    silent = reactor.listenTCP(0, silent_factory, interface="127.0.0.1")
    resource.url = f"http://127.0.0.1:{port.getHost().port}"
    resource.silent_url = f"http://127.0.0.1:{silent.getHost().port}"
    resource.silent = silent_factory.connections
    yield resource
    for request in resource.open_requests:
        if getattr(request, "channel", None) is not None:  # gone with its connection
            request.channel.transport.abortConnection()
    for connection in silent_factory.connections:
        connection.transport.abortConnection()
    await port.stopListening()
    await silent.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_answer_is_its_status_and_body_whatever_the_status(server, http):
    assert await http.get(server.url + "/ok", timeout_s=5, max_bytes=LIMIT) == (200, b"ok")
    assert await http.get(server.url + "/status/500", timeout_s=5, max_bytes=LIMIT) == (500, b'{"errcode": 1}')
    answer = await http.get(server.url + "/echo", params={"q": "1"}, timeout_s=5, max_bytes=LIMIT)
    assert answer.status == 200


@pytest_twisted.ensureDeferred
async def test_the_pool_reuses_one_connection_and_close_closes_it(server, http):
    for _ in range(3):
        assert (await http.get(server.url + "/ok", timeout_s=5, max_bytes=LIMIT)).body == b"ok"
    assert len(server.channels) == 3 and len(set(map(id, server.channels))) == 1
    lost = defer.Deferred()
    protocol = server.channels[0].transport.protocol
    closed = protocol.connectionLost
    protocol.connectionLost = lambda reason: (closed(reason), lost.callback(None))
    await http.close()
    await lost.addTimeout(REAL_WAIT_S, reactor)


@pytest_twisted.ensureDeferred
async def test_a_silent_server_times_out_on_the_injected_clock_and_is_disconnected(server, http, clock):
    d = defer.ensureDeferred(http.get(server.silent_url + "/x", timeout_s=3, max_bytes=LIMIT))
    await real_wait()  # real I/O: connected, request sent, no answer
    assert len(server.silent) == 1
    clock.advance(2.9)
    assert not d.called
    clock.advance(0.1)
    with pytest.raises(TimedOut) as info:
        await d
    assert info.value.reason == "no answer within 3 s"
    await server.silent[0].closed.addTimeout(REAL_WAIT_S, reactor)


@pytest_twisted.ensureDeferred
async def test_the_deadline_covers_the_body(server, http, clock):
    d = defer.ensureDeferred(http.get(server.url + "/stall", timeout_s=3, max_bytes=LIMIT))
    await real_wait()  # headers and a little body arrived
    assert not d.called
    clock.advance(3)
    with pytest.raises(TimedOut):
        await d
    assert await server.outcome("/stall") == "lost"


@pytest_twisted.ensureDeferred
async def test_an_oversize_body_is_refused_and_the_connection_closed(server, http):
    with pytest.raises(TooLarge) as info:
        await http.get(server.url + "/endless", timeout_s=5, max_bytes=LIMIT)
    assert (info.value.reason, info.value.status, info.value.limit) == (f"answer larger than {LIMIT} bytes", 200,
                                                                        LIMIT)
    # the server never finishes this answer: only our closing the connection ends it
    assert await server.outcome("/endless") == "lost"
    # over a pooled connection, refused on its Content-Length: that connection is closed, not pooled again
    assert (await http.get(server.url + f"/sized/{LIMIT}", timeout_s=5, max_bytes=LIMIT)).body == b"s" * LIMIT
    with pytest.raises(TooLarge):
        await http.get(server.url + f"/sized/{5 * LIMIT}", timeout_s=5, max_bytes=LIMIT)
    pooled = server.channels[-1]
    assert server.channels[-2] is pooled
    await real_wait(0.1)
    assert pooled.transport.disconnected
    assert not any(http.pool._connections.values())


@pytest_twisted.ensureDeferred
async def test_unreachable_never_tells_the_url(server, http):
    url = f"http://127.0.0.1:{free_loopback_port()}/sns/oauth2/access_token?secret=SEKRIT"
    with pytest.raises(Unreachable) as info:
        await http.get(url, params={"appsecret": "SEKRIT2"}, timeout_s=5, max_bytes=LIMIT)
    assert "SEKRIT" not in info.value.reason and "access_token" not in info.value.reason
    assert info.value.status is None
    with pytest.raises(Unreachable) as info:
        await http.get(server.url + "/noloc?secret=SEKRIT", params={"code": "SEKRIT2"}, timeout_s=5, max_bytes=LIMIT)
    assert "Redirect" in info.value.reason and "SEKRIT" not in info.value.reason, info.value.reason


@pytest_twisted.ensureDeferred
async def test_json_answers(server, http):
    assert await http.get_json(server.url + "/json", timeout_s=5, max_bytes=LIMIT) == (200, {"a": 1})
    assert await http.get_json(server.url + "/status/500", timeout_s=5, max_bytes=LIMIT) == (500, {"errcode": 1})
    with pytest.raises(NotJson, match="not valid JSON") as info:
        await http.get_json(server.url + "/html", timeout_s=5, max_bytes=LIMIT)
    assert info.value.status == 200
    with pytest.raises(NotJson, match="expected a JSON object"):
        await http.get_json(server.url + "/array", timeout_s=5, max_bytes=LIMIT)
    status, echoed = await http.post_json(server.url + "/echo", b'{"k":"v"}', headers={b"X-Test": [b"1"]},
                                          timeout_s=5, max_bytes=LIMIT)
    assert (status, echoed) == (200, {"body": '{"k":"v"}', "type": "application/json", "x": "1"})


@pytest_twisted.ensureDeferred
async def test_errors_are_typed(server, http, clock):
    """Every failure is an OutboundError: callers catch one type and map it."""
    for path, kind in (("/endless", TooLarge), ("/html", NotJson)):
        with pytest.raises(OutboundError) as info:
            await http.get_json(server.url + path, timeout_s=5, max_bytes=LIMIT)
        assert type(info.value) is kind


@pytest_twisted.ensureDeferred
async def test_no_cookies_are_kept(server, http):
    await http.get(server.url + "/cookie", timeout_s=5, max_bytes=LIMIT)
    assert (await http.get(server.url + "/seen-cookie", timeout_s=5, max_bytes=LIMIT)).body == b"no"


@pytest_twisted.ensureDeferred
async def test_close_ends_calls_in_flight_and_refuses_new_ones(server, clock):
    http = HttpClient(reactor, clock=clock)
    await http.get(server.url + "/ok", timeout_s=5, max_bytes=LIMIT)  # one idle connection in the pool
    d = defer.ensureDeferred(http.get(server.silent_url + "/x", timeout_s=3, max_bytes=LIMIT))
    await real_wait()
    await http.close()
    with pytest.raises(Unreachable, match="closed"):
        await d
    await server.silent[0].closed.addTimeout(REAL_WAIT_S, reactor)
    assert clock.getDelayedCalls() == []  # the deadline timer went with the call
    with pytest.raises(Unreachable, match="closed"):
        await http.get(server.url + "/ok", timeout_s=5, max_bytes=LIMIT)
