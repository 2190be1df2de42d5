"""A loopback receiver for the providers that POST (SMS gateway, push webhook, J-IM hook)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from heihei.outbound.http import HttpClient

#: generous bound for anything awaited over a real socket
REAL_WAIT_S = 5.0


class Sink(Resource):
    """Records every POST (body, headers) and answers as `mode` says: "ok" (200 `{}`),
    "error" (500), "json" (200 with `answer`), "garbage" (200 HTML), "endless" (200, chunked,
    8 MB and no end), "stall" (headers, then nothing). `outcome()` tells how the last
    request ended: "finished", or "lost" when the client closed the connection first."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.answer = b"{}"
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.open: list = []
        self.ended: defer.Deferred | None = None
        self.url = ""

    def render_POST(self, request):
        self.received.append((request.content.read(),
                              {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}))
        self.ended = request.notifyFinish().addCallbacks(
            lambda _: "finished", lambda f: (f.trap(ConnectionDone, ConnectionLost), "lost")[1])
        if self.mode == "error":
            request.setResponseCode(500)
            return b"{}"
        if self.mode == "json":
            return self.answer
        if self.mode == "garbage":
            return b"<html>oops</html>"
        if self.mode == "endless":
            for _ in range(128):
                request.write(b"e" * 65536)
            self.open.append(request)
            return NOT_DONE_YET
        if self.mode == "stall":
            request.write(b"")
            self.open.append(request)
            return NOT_DONE_YET
        return b"{}"

    async def outcome(self) -> str:
        return await self.ended.addTimeout(REAL_WAIT_S, reactor)


@pytest_twisted.async_yield_fixture
async def sink():
    resource = Sink()
    site = Site(resource)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    resource.url = f"http://127.0.0.1:{port.getHost().port}/in"
    yield resource
    for request in resource.open:
        if getattr(request, "channel", None) is not None:  # gone with its connection
            request.channel.transport.abortConnection()
    await port.stopListening()


@pytest.fixture
def clock():
    c = task.Clock()
    c.advance(1_700_000_000)
    return c


@pytest_twisted.async_yield_fixture
async def http(clock):
    client = HttpClient(reactor, clock=clock)
    yield client
    await client.close()


async def real_wait(seconds: float = 0.2) -> None:
    await task.deferLater(reactor, seconds, lambda: None)
