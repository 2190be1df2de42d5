"""
Shared WebSocket plumbing: hardened factory options, the connection registry
that shutdown and /healthz use, and the `IClient` face the domain sees.

Autobahn is permissive out of the box (no size limits worth the name, a status
page on plain GET, `failByDrop` turning every violation into a TCP drop). Every
listener goes through `HardenedFactory` so no protocol can forget a bound.

Gotchas this module absorbs (see docs/architecture.md):
- Autobahn ignores what `onOpen`/`onMessage` return, so coroutines are started
  with `Deferred.fromCoroutine` and an errback that logs (`spawn`).
- `sendClose` only takes 1000 and 3000-4999; a going-away close (1001) at
  shutdown needs `sendCloseFrame`.
- `.log`, `.is_open` and `factory.server` belong to Autobahn; ours are `_log`
  and `connection_open`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Coroutine, Iterable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from heihei.config import WebSocketSettings
from heihei.incidents import report
from heihei.net.sendpath import batcher_for, direct_socket, set_no_delay, write_now

OPEN = WebSocketServerProtocol.STATE_OPEN
CLOSE_GOING_AWAY = 1001
CLOSE_MESSAGE_TOO_BIG = 1009
SHUTDOWN_GRACE_S = 3.0
#: prefix of the pings that confirm delivery (Autobahn's own auto-pings differ)
CONFIRM_PING_PREFIX = b"hh-confirm-"
#: confirmation pings in flight per connection; frames written meanwhile wait for the next one,
#: which confirms them all (cumulative: a pong proves everything written before its ping). So a
#: distant client is never judged by how many confirmations it owes, only by bytes queued
#: (`send_queue_max_bytes`) and by silence (its realm's liveness)
MAX_CONFIRM_PINGS_IN_FLIGHT = 4
#: inputs of one connection waiting to be handled before it is told to slow down
MAX_INBOUND_PENDING = 64


class _Latest:
    """A `confirm_written` callback that a newer request may replace until its ping goes out."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def __call__(self) -> None:
        self.callback()


class HardenedFactory(WebSocketServerFactory):
    """A WebSocket factory for one realm with every bound set from its settings."""

    _log = Logger()

    def __init__(self, realm: str, settings: WebSocketSettings, protocol: type, *, hub, sessions, metrics=None,
                 context=None, reactor=None) -> None:
        super().__init__(reactor=reactor)
        self.realm = realm
        self.settings = settings
        self.protocol = protocol
        self.clients: set[WebSocketServerProtocol] = set()
        #: the messaging hub, and the realm's sessions (heihei.core.sessions): every connection gets one
        self.hub = hub
        self.sessions = sessions
        self.metrics = metrics
        #: what the realm's connections share (its domain services), typed by each protocol module
        self.context = context
        self._closing_waiters: list[defer.Deferred] = []
        accept = None
        if settings.permessage_deflate:
            cap = settings.max_decompressed_bytes

            def accept(offers):
                for offer in offers:
                    if isinstance(offer, PerMessageDeflateOffer):
                        return PerMessageDeflateOfferAccept(offer, max_message_size=cap)
                return None

        self.setProtocolOptions(
            maxFramePayloadSize=settings.max_message_bytes,
            maxMessagePayloadSize=settings.max_message_bytes,
            failByDrop=False,
            openHandshakeTimeout=settings.handshake_timeout_s,
            closeHandshakeTimeout=SHUTDOWN_GRACE_S,
            allowedOrigins=list(settings.allowed_origins),
            maxConnections=settings.max_connections,
            webStatus=False,
            perMessageCompressionAccept=accept,
            # liveness is heihei.core.heartbeat's, on the node's clock (Autobahn's ignores it)
            autoPingInterval=None,
            tcpNoDelay=settings.tcp_nodelay,
        )

    # -- registry ------------------------------------------------------------

    def client_opened(self, client: WebSocketServerProtocol) -> None:
        self.clients.add(client)

    def client_closed(self, client: WebSocketServerProtocol) -> None:
        self.clients.discard(client)
        if not self.clients and self._closing_waiters:
            waiters, self._closing_waiters = self._closing_waiters, []
            for d in waiters:
                d.callback(None)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down",
                  grace_s: float = SHUTDOWN_GRACE_S) -> defer.Deferred:
        """Send every client a close frame, wait for them to go, drop the rest after `grace_s`."""
        if not self.clients:
            return defer.succeed(None)
        done = defer.Deferred()
        self._closing_waiters.append(done)
        for client in list(self.clients):
            client.close_going_away(code, reason)
        clock = self.reactor

        def drop_stragglers():
            # abort the transport itself: Autobahn skips dropConnection once it
            # thinks the connection is closed, while a client that stopped
            # reading keeps Twisted's loseConnection waiting forever
            for client in list(self.clients):
                if client.transport is not None:
                    client.transport.abortConnection()

        timer = clock.callLater(grace_s, drop_stragglers)
        return done.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])


class BaseProtocol(WebSocketServerProtocol):
    """What every realm's connection shares; subclasses speak the wire format.

    Implements the domain's `IClient`: `send_frame` writes an already framed
    message (built once per broadcast by `prepare`) through a bounded queue.
    The connection registers itself as the transport's push producer; while the
    transport is paused (the peer does not read), frames wait in our queue, and
    a queue over `send_queue_max_bytes` cuts the connection off. Callers that
    must know the client received a frame (inbox removal) pass `on_delivered`.
    """

    _log = Logger()

    #: the authenticated user id, once known (None while anonymous)
    user: str | None = None
    #: this connection's life in the core (heihei.core.sessions.Session), from onOpen on
    session = None
    #: set when the connection opens (`_attach_send_path`); until then the fan-out takes the slow path
    _batcher = None
    _queue_max = 0
    _socket = None
    #: True while frames must go through `send_frame` (paused, backlog, cut off): the fan-out's one check
    _slow = False
    #: frames waiting while the transport is paused (created on first use: most connections never need it)
    _backlog: "deque[tuple[bytes, Callable[[], None] | None]] | None" = None
    # also created on first use (an idle connection is most of a server's memory, bench/README.md):
    #: confirmation pings sent and not answered yet: token -> the callbacks it confirms
    _awaiting_pong: "dict[bytes, list[Callable[[], None]]] | None" = None
    #: the `confirm_written` callback waiting in `_unconfirmed` for the next ping (replaced, not added to)
    _latest_confirm: "_Latest | None" = None
    #: `when_closed` Deferreds
    _close_waiters: "list[defer.Deferred] | None" = None
    #: the last queued input's Deferred while inputs are queued (`run_in_order`)
    _inbound_tail: defer.Deferred | None = None

    def __init__(self) -> None:
        super().__init__()
        self._paused = False
        self._backlog_bytes = 0
        self.cut_off = False
        self._unconfirmed: list[Callable[[], None]] = []
        self._confirm_seq = 0
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._lost = False
        self._inbound_pending = 0

    @property
    def realm(self) -> str:
        return self.factory.realm

    def connectionMade(self) -> None:
        # Autobahn means to turn Nagle's algorithm off (its `tcpNoDelay` option, on by default) but
        # on Twisted it reads the option before copying it from the factory, so it never does. With
        # Nagle on, a write while earlier bytes are unacknowledged waits for the client's delayed
        # ACK: 40 ms stalls in bursts and request/answer exchanges (bench/README.md).
        set_no_delay(self.transport, getattr(self.factory, "tcpNoDelay", True))
        super().connectionMade()

    def onOpen(self) -> None:
        self.factory.client_opened(self)
        # until it logs in, a connection may not hold a large message (an anonymous flood of
        # half-sent 256 KiB messages would be the node's memory)
        small = self.factory.settings.pre_login_max_message_bytes
        if 0 < small < self.maxMessagePayloadSize:
            self.maxMessagePayloadSize = self.maxFramePayloadSize = small
        self.session = self.factory.sessions.open(self)
        transport = self.transport
        channel = getattr(transport, "producer", None)
        if channel is not None:
            # WebSocketResource leaves the HTTP channel registered; it is done now
            transport.unregisterProducer()
            release = getattr(channel, "release_after_upgrade", None)
            if release is not None:
                release()
        transport.registerProducer(self, True)
        self._attach_send_path()

    def _attach_send_path(self):
        """Cache what every write needs, so the fan-out reads one attribute instead of a chain."""
        self._queue_max = self.factory.settings.send_queue_max_bytes
        self._socket = direct_socket(self.transport)
        self._batcher = batcher = batcher_for(self.factory.reactor)
        return batcher

    def connectionLost(self, reason) -> None:
        self._lost = True
        if self.session is not None:
            # tracked before the factory hears it is gone: a stopping node waits for the clean-up
            self.session.closed()
        self._leave_direct(keep=False)
        waiters, self._close_waiters = self._close_waiters or (), None
        for d in waiters:
            d.callback(None)
        self._backlog = None
        self._backlog_bytes = 0
        # unconfirmed frames stay wherever their owners keep them (the inbox)
        self._unconfirmed = []
        self._latest_confirm = None
        self._awaiting_pong = None
        self._out.clear()
        self._out_bytes = 0
        try:
            super().connectionLost(reason)
        finally:
            self.factory.client_closed(self)

    @property
    def send_queue_max_bytes(self) -> int:
        return self.factory.settings.send_queue_max_bytes

    def when_closed(self) -> defer.Deferred:
        """Fires (with None) once the connection is gone."""
        d = defer.Deferred()
        if self._lost:
            d.callback(None)
        else:
            if self._close_waiters is None:
                self._close_waiters = []
            self._close_waiters.append(d)
        return d

    @property
    def connection_open(self) -> bool:
        """False once the connection is closing; check it after every await."""
        return self.state == self.STATE_OPEN

    # -- IPushProducer (the transport tells us when its buffer is full) ----------

    def pauseProducing(self) -> None:
        self._paused = self._slow = True
        self._leave_direct(keep=True)

    def resumeProducing(self) -> None:
        self._paused = False
        backlog = self._backlog
        while backlog and not self._paused and self.state == self.STATE_OPEN:
            frame, on_delivered = backlog.popleft()
            self._backlog_bytes -= len(frame)
            self._write(frame, on_delivered)
        if not backlog:
            self._backlog = None
        self._slow = self._paused or bool(self._backlog) or self.cut_off

    def stopProducing(self) -> None:
        self._backlog = None
        self._backlog_bytes = 0

    # -- IClient -----------------------------------------------------------------

    def prepare(self, payload: bytes) -> bytes:
        """A complete server frame for `payload` (text), built once for many receivers."""
        return self.factory.prepareMessage(payload).payloadHybi

    def send_frame(self, frame: bytes, on_delivered: Callable[[], None] | None = None) -> bool:
        """Queue a prepared frame; False if the connection is gone or was just cut off.

        `on_delivered` runs once the client has provably received the frame:
        after it was written, the next WebSocket ping we send comes back as a
        pong (TCP keeps order, and a client answers a ping only after reading
        what came before it). That is what lets the inbox remove an entry
        without ever losing one to a connection that drops mid-delivery.
        """
        if self.state != self.STATE_OPEN or self.cut_off:
            return False
        if self._paused or self._backlog:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append((frame, on_delivered))
            self._slow = True
            self._backlog_bytes += len(frame)
            if self._backlog_bytes + self._out_bytes > self.send_queue_max_bytes:
                self._cut_off_slow_reader()
                return False
            return True
        if self._out_bytes + len(frame) > self.send_queue_max_bytes:
            # even within one iteration nobody may queue more than the bound
            self._cut_off_slow_reader()
            return False
        self._write(frame, on_delivered)
        return True

    @staticmethod
    def send_frame_to_many(frame: bytes, clients: Iterable["BaseProtocol"],
                           on_delivered: Callable[[], None] | None = None, urgent: bool = False) -> int:
        """`send_frame(frame)` to each of `clients`; returns to how many it went.

        The room fan-out's inner loop, so it does per receiver only what
        `send_frame` + `sendData` would do for an open, unpaused connection
        (append to this iteration's output, mark it once) and hands every
        other case to `send_frame` itself. Why it matters: bench/README.md.
        """
        if on_delivered is not None:
            return sum(1 for client in clients if client.send_frame(frame, on_delivered))
        members = clients if isinstance(clients, set) else set(clients)
        if not members:
            return 0
        batcher = next(iter(members))._batcher
        direct = batcher.broadcast(frame, members, urgent) if batcher is not None else set()
        sent = len(direct)
        if sent != len(members):
            for client in members - direct if direct else members:
                if client.send_frame(frame):
                    sent += 1
        return sent

    @classmethod
    def ping_many(cls, payload: bytes, clients: Iterable["BaseProtocol"]) -> int:
        """The same ping to each of `clients`, as one frame through the broadcast path (the liveness
        beat, heihei.core.heartbeat); returns to how many it went. A server frame is not masked, so
        one ping frame serves every connection."""
        if len(payload) > 125:
            raise ValueError("a ping carries at most 125 bytes")
        return cls.send_frame_to_many(bytes((0x89, len(payload))) + payload, clients)

    def send_text(self, text: str | bytes, on_delivered: Callable[[], None] | None = None) -> bool:
        payload = text.encode("utf-8") if isinstance(text, str) else text
        return self.send_frame(self.prepare(payload), on_delivered)

    def confirm_written(self, callback: Callable[[], None]) -> bool:
        """Run `callback` once the client has provably read everything written to it so far
        (the next confirmation pong, as for `send_frame`'s `on_delivered`), without a frame of its
        own: the group feed's cumulative confirmation (heihei.core.groupfeed). A callback asked for
        again before the previous one went out with a ping replaces it (both would fire at the same
        pong, and each confirms everything before it), so a client that never answers holds at most
        one such callback besides those of its pings in flight. False if the connection is gone."""
        if self.state != self.STATE_OPEN or self.cut_off:
            return False
        if self._paused or self._backlog:
            # behind the frames still waiting: a pong may confirm only what was written before its ping
            if self._backlog is None:
                self._backlog = deque()
            last = self._backlog[-1] if self._backlog else None
            if last is not None and last[0] == b"" and isinstance(last[1], _Latest):
                last[1].callback = callback
            else:
                self._backlog.append((b"", _Latest(callback)))
            self._slow = True
            return True
        latest = self._latest_confirm
        if latest is not None:
            latest.callback = callback
            return True
        latest = self._latest_confirm = _Latest(callback)
        self._unconfirmed.append(latest)
        if not self._out:
            self._send_confirm_ping()  # the frames went out already (or wait direct, and come first)
        return True

    def _write(self, frame: bytes, on_delivered: Callable[[], None] | None) -> None:
        if frame:
            self.sendData(frame)
        if on_delivered is not None:
            # the ping that confirms it goes out right behind it, in the same flush
            if isinstance(on_delivered, _Latest):  # a `confirm_written` that waited in the backlog
                if self._latest_confirm is not None:
                    self._latest_confirm.callback = on_delivered.callback
                    return
                self._latest_confirm = on_delivered
                if not self._out:
                    self._unconfirmed.append(on_delivered)
                    self._send_confirm_ping()
                    return
            self._unconfirmed.append(on_delivered)

    # -- batched output (heihei/net/sendpath.py explains why) ----------------

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Every byte Autobahn or we write while open waits for this iteration's flush."""
        if sync or chopsize or self.state != self.STATE_OPEN:
            if self._out:
                self.flush_output()
            return super().sendData(data, sync, chopsize)
        out = self._out
        if not out:  # output pending <=> marked for the next flush
            batcher = self._batcher or self._attach_send_path()
            # a direct connection's queued broadcast frames go first (sendpath.py)
            for frame in batcher.leave_direct(self):
                out.append(frame)
                self._out_bytes += len(frame)
            batcher.mark(self)
        out.append(data)
        self._out_bytes += len(data)

    def _leave_direct(self, keep: bool) -> None:
        """Broadcasts stop going straight to the socket; `keep` their queued frames (else drop them)."""
        batcher = self._batcher
        if batcher is None or self not in batcher.direct:
            return
        frames = batcher.leave_direct(self)
        if keep and frames:
            out = self._out
            if not out:
                batcher.mark(self)
            out.extend(frames)
            self._out_bytes += sum(map(len, frames))

    def dropConnection(self, abort: bool = False) -> None:
        self._leave_direct(keep=True)
        super().dropConnection(abort)

    def flush_output(self) -> None:
        out = self._out
        if not out:
            return
        if self._unconfirmed and self.state == OPEN and not self.cut_off:
            self._send_confirm_ping()  # appends behind the frames it confirms
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_bytes = 0
        transport = self.transport
        if transport is not None and not self.cut_off:
            sock = self._socket
            if write_now(transport, data, sock) == len(data) and sock is not None and not self._slow \
                    and self.state == OPEN:
                # all of it went to the kernel and nothing else is queued: broadcasts may go direct
                self._batcher.enter_direct(self, sock)

    def _send_confirm_ping(self) -> None:
        if self._awaiting_pong is None:
            self._awaiting_pong = {}
        elif len(self._awaiting_pong) >= MAX_CONFIRM_PINGS_IN_FLIGHT:
            return  # the frames stay unconfirmed until a pong makes room (onPong)
        self._confirm_seq += 1
        token = CONFIRM_PING_PREFIX + b"%012d" % self._confirm_seq  # fixed width: orders as bytes
        self._awaiting_pong[token] = self._unconfirmed
        self._unconfirmed = []
        self._latest_confirm = None
        self.sendPing(token)

    # -- liveness: every frame, ping and pong counts (heihei.core.heartbeat) -------------------

    def onMessageBegin(self, isBinary: bool) -> None:
        if self.session is not None:
            self.session.seen()
        super().onMessageBegin(isBinary)

    def onPing(self, payload: bytes) -> None:
        if self.session is not None:
            self.session.seen()
        super().onPing(payload)

    def lift_pre_login_limits(self) -> None:
        """Logged in: the realm's own message size from now on."""
        limit = self.factory.settings.max_message_bytes
        self.maxMessagePayloadSize = self.maxFramePayloadSize = limit

    def credential_revoked(self) -> None:
        """Its token was signed out, expired or given to someone else."""
        self.close(4401, "session ended")

    def login_timed_out(self) -> None:
        """No login within the realm's `login_timeout_s` (realms may say so in their own words first)."""
        self.close(4401, "no login in time")

    def close_silent(self) -> None:
        """The liveness sweep found this connection silent for too long: a dead peer would never
        answer a close handshake, so the transport goes (realms may close more politely)."""
        self._log.info("closing silent {realm} connection {peer} (user {user})", realm=self.realm, peer=self.peer,
                       user=self.user)
        self.dropConnection(abort=True)

    def onPong(self, payload: bytes) -> None:
        if self.session is not None:
            self.session.seen()
        callbacks = self._awaiting_pong.pop(payload, None) if self._awaiting_pong else None
        if callbacks is None:
            return
        # pongs come back in order: anything older was answered (or lost) already
        for token in [t for t in self._awaiting_pong if t < payload]:
            callbacks = self._awaiting_pong.pop(token) + callbacks
        if not self._awaiting_pong:
            self._awaiting_pong = None
        if self._unconfirmed and self.state == OPEN and not self.cut_off:
            self._send_confirm_ping()  # everything written since the last ping, in one
        for callback in callbacks:
            try:
                callback()
            except Exception:
                self._log.failure("delivery confirmation callback failed")

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.state == self.STATE_OPEN:
            self.sendClose(code=code, reason=reason or None)

    def _cut_off_slow_reader(self) -> None:
        if self.cut_off:
            return
        self.cut_off = self._slow = True
        self._leave_direct(keep=False)
        self._unconfirmed = []
        self._latest_confirm = None
        queued = self._backlog_bytes + self._out_bytes
        self._out.clear()
        self._out_bytes = 0
        self._backlog = None
        self._backlog_bytes = 0
        self._log.warn("cutting off slow {realm} client {peer} (user {user}): {n} bytes queued",
                       realm=self.realm, peer=self.peer, user=self.user, n=queued)
        metrics = getattr(self.factory, "metrics", None)
        if metrics is not None:
            metrics.slow_clients.labels(self.realm).inc()
        self.transport.abortConnection()

    def close_going_away(self, code: int, reason: str) -> None:
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)
        elif self.state == self.STATE_CONNECTING:
            self.dropConnection(abort=True)

    def run_in_order(self, make_coro: Callable[[], Coroutine[Any, Any, Any]], what: str) -> bool:
        """Handle this connection's inputs one after another, in arrival order.

        Concurrent handling would let a sender's messages overtake each other
        (their Redis calls run on different pool connections). Returns False,
        without queueing, when `MAX_INBOUND_PENDING` inputs are already waiting:
        the protocol answers that with its own "too fast" error.
        """
        if self._inbound_pending >= MAX_INBOUND_PENDING:
            return False
        self._inbound_pending += 1

        def run(_):
            return defer.Deferred.fromCoroutine(make_coro())

        def done(result):
            self._inbound_pending -= 1
            if not self._inbound_pending:
                self._inbound_tail = None  # nothing queued: an idle connection keeps no Deferred
            if isinstance(result, Failure):
                report(result, self._log, "{what} failed for {peer}", what=what, peer=self.peer)
            return None

        tail = self._inbound_tail
        if tail is None:
            tail = defer.succeed(None)
        self._inbound_tail = tail.addCallback(run).addBoth(done)
        return True

    def inputs_done(self) -> defer.Deferred:
        """Fires once every input queued by `run_in_order` so far has been handled."""
        d = defer.Deferred()
        if self._inbound_tail is None:
            d.callback(None)
        else:
            self._inbound_tail.addBoth(lambda result: (d.callback(None), result)[1])
        return d

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> defer.Deferred:
        """Run a coroutine from a synchronous Autobahn callback, logging any failure."""
        d = defer.Deferred.fromCoroutine(coro)

        def failed(failure):
            report(failure, self._log, "{what} failed for {peer}", what=what, peer=self.peer)

        return d.addErrback(failed)
