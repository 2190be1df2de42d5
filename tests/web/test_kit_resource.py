"""heihei.web.kit.resource.KitResource answers byte for byte as Klein's own resource, and leaves no
reference cycle behind a request (Klein's does: that is why it exists)."""

from __future__ import annotations

import gc
import re

import pytest
from klein import Klein
from klein.resource import KleinResource
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site
from twisted.web.static import Data

from heihei.web.kit.resource import KitResource

PEER = IPv4Address("TCP", "10.0.0.7", 40123)


class App:
    app = Klein()

    def __init__(self) -> None:
        self.waiting: list[defer.Deferred] = []
        self.cancelled = 0

    @app.route("/a", methods=["GET", "POST"])
    async def a(self, request):
        return b"a:" + request.method

    @app.route("/u/<int:n>")
    def u(self, request, n):
        return f"u:{n}:{b'/'.join(request.prepath).decode()}:{b'/'.join(request.postpath).decode()}"

    @app.route("/resource")
    def resource(self, request):
        return Data(b"data", "text/plain")

    @app.route("/boom")
    def boom(self, request):
        raise ValueError("boom")

    @app.route("/handled")
    def handled(self, request):
        raise KeyError("k")

    @app.route("/wait")
    def wait(self, request):
        d = defer.Deferred(self.cancel)
        self.waiting.append(d)
        return d

    def cancel(self, d) -> None:
        self.cancelled += 1

    @app.handle_errors(KeyError)
    def key_error(self, request, failure):
        request.setResponseCode(418)
        return b"handled " + str(failure.value).encode()


def channel(make_resource):
    owner = App()
    site = Site(make_resource(owner.app), reactor=Clock())
    site.displayTracebacks = False
    ch = site.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    ch.makeConnection(transport)
    return owner, ch, transport


REQUESTS = [
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",  # the memo's answer is werkzeug's
    b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /u/7 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /u/x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    b"DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /resource HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /handled HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n",
]


def answers(make_resource) -> list[bytes]:
    out = []
    for raw in REQUESTS:
        _, ch, transport = channel(make_resource)
        ch.dataReceived(raw)
        out.append(re.sub(rb"Date: [^\r]*\r\n", b"", transport.value()))
        ch.connectionLost(Failure(ConnectionDone()))
    return out


def test_answers_are_klein_s_byte_for_byte():
    ours, klein = answers(KitResource), answers(KleinResource)
    assert [a.split(b"\r\n", 1)[0] for a in ours] == [
        b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK",
        b"HTTP/1.1 404 Not Found", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 405 Method Not Allowed",
        b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK", b"HTTP/1.1 500 Internal Server Error",
        b"HTTP/1.1 418 I'm a teapot", b"HTTP/1.1 400 Bad Request"]
    assert b"\r\nu:7:u/7:\r\n" in ours[4]  # the route's segments moved to prepath, as Klein does
    for mine, theirs, raw in zip(ours, klein, REQUESTS):
        assert mine == theirs, raw


@pytest.mark.parametrize("make_resource", [KitResource, KleinResource])
def test_a_route_s_work_is_cancelled_when_its_client_goes_away(make_resource):
    owner, ch, transport = channel(make_resource)
    ch.dataReceived(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(owner.waiting) == 1 and owner.cancelled == 0
    ch.connectionLost(Failure(ConnectionDone()))
    assert owner.cancelled == 1 and transport.value() == b""


def cyclic_garbage(make_resource, n: int) -> int:
    """Objects only the cycle collector frees, after `n` requests to a route without arguments."""
    owner, ch, transport = channel(make_resource)
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            ch.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        transport.clear()
        return gc.collect()
    finally:
        gc.enable()
        ch.connectionLost(Failure(ConnectionDone()))


def test_a_request_leaves_no_reference_cycle():
    n = 200
    assert cyclic_garbage(KleinResource, n) >= 20 * n  # why KitResource exists
    assert cyclic_garbage(KitResource, n) < n / 10


def test_the_memo_holds_only_routes_without_arguments():
    resources = []

    def make(app):
        resources.append(KitResource(app))
        return resources[-1]

    answers(make)
    memo = set().union(*(r._static for r in resources))
    assert memo == {("GET", "/a"), ("POST", "/a"), ("HEAD", "/a"), ("GET", "/resource"), ("GET", "/boom"),
                    ("GET", "/handled")}
