"""
The node's Redis connections: a command pool and one subscriber connection.

Why two: a connection in SUBSCRIBE mode cannot run commands (Synapse's
replication layer does the same split). Both reconnect by themselves; the
subscriber subscribes again to everything after every reconnect.

Every command is bounded in time twice: txredisapi's reply timeout covers a
Redis that stops answering on an open connection, and our own deadline covers
the wait for a connection at all (txredisapi's lazy pool waits forever while
Redis is down). Either way the caller gets `StoreUnavailable` within seconds.
"""

from __future__ import annotations

from typing import Any, Callable

import txredisapi
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from heihei.config import RedisAddress
from heihei.net.sendpath import BatchedTransport, batcher_for
from heihei.store.commands import LeanCommands
from heihei.store.scripts import LATE

#: a script must have run this long before its caller would give up (heihei.store.scripts): the
#: estimate of Redis's clock may be this far off without a refused write being applied later
#: (at most a quarter of the reply timeout)
DEADLINE_MARGIN_S = 0.5
#: how often the offset between this node's clock and Redis's is measured again
CLOCK_SYNC_INTERVAL_S = 60.0


class StoreUnavailable(Exception):
    """Redis did not answer in time or is not reachable."""


MessageHandler = Callable[[str, bytes], None]


class _BatchedWrites:
    """Commands leave through `BatchedTransport`: one send per connection per reactor iteration."""

    def makeConnection(self, transport):
        return super().makeConnection(BatchedTransport(transport, batcher_for(self.factory.reactor)))


class _LoggingRedisProtocol(_BatchedWrites, LeanCommands, txredisapi.RedisProtocol):
    _log = Logger(namespace="heihei.store")

    def connectionMade(self):
        self._log.debug("redis command connection up")
        return super().connectionMade()

    def connectionLost(self, why):
        if not self.factory.disconnectCalled:
            self._log.warn("redis command connection lost ({why}); reconnecting", why=why.getErrorMessage())
        return super().connectionLost(why)


class _Subscriber(_BatchedWrites, txredisapi.SubscriberProtocol):
    _log = Logger(namespace="heihei.store")

    def messageReceived(self, pattern, channel, message):
        self.factory.store._dispatch(channel, message)

    def connectionLost(self, why):
        if not self.factory.disconnectCalled:
            self._log.warn("redis subscriber connection lost ({why}); reconnecting", why=why.getErrorMessage())
            self.factory.store._subscriber_lost()
        self.factory.store._subscriber = None
        return super().connectionLost(why)


class _SubscriberFactory(txredisapi.RedisFactory):
    protocol = _Subscriber

    def addConnection(self, conn):
        super().addConnection(conn)
        if conn.connected and not self.disconnectCalled:
            self.store._subscriber_connected(conn)


class Store(Service):
    """Redis access for one node. Start it, then `await store.ready()`."""

    _log = Logger()

    def __init__(self, address: RedisAddress, *, wait_for: Callable[[], defer.Deferred] | None = None,
                 reply_timeout_s: float = 5.0, connect_timeout_s: float = 5.0, pool_size: int = 4,
                 reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.address = address
        self._wait_for = wait_for
        self.reply_timeout_s = reply_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.pool_size = pool_size
        self._pool_factory: txredisapi.RedisFactory | None = None
        self._sub_factory: _SubscriberFactory | None = None
        self._subscriber: _Subscriber | None = None
        self._handlers: dict[str, list[MessageHandler]] = {}
        #: channel -> its SUBSCRIBE still waiting for Redis's answer
        self._subscribing: dict[str, defer.Deferred] = {}
        self._ready = defer.Deferred()
        #: Redis's clock minus ours, in ms (scripts' deadlines are in Redis's clock)
        self.clock_offset_ms = 0.0
        self._clock_sync = None
        #: called (with no argument) each time the subscriber connection is up again after a loss
        self.on_resubscribed: list[Callable[[], None]] = []
        #: called when the subscriber connection drops (not at shutdown): published messages go nowhere now
        self.on_bus_lost: list[Callable[[], None]] = []
        self._subscriber_was_up = False

    # -- lifecycle -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        waiting = self._wait_for() if self._wait_for else defer.succeed(None)
        waiting.addCallbacks(lambda _: self._connect(), self._pool_failed)

    def _connect(self) -> None:
        if not self.running:
            return
        address = self.address
        self._pool_factory = self._make_factory(txredisapi.RedisFactory, _LoggingRedisProtocol, self.pool_size,
                                                self.reply_timeout_s)
        self._sub_factory = self._make_factory(_SubscriberFactory, _Subscriber, 1, None)
        self._sub_factory.store = self
        self._pool_factory.deferred.addCallbacks(self._pool_ready, self._pool_failed)
        self._pool_factory.startConnecting(self._endpoint())
        self._sub_factory.startConnecting(self._endpoint())
        self._log.info("connecting to {where}", where=address.describe())

    def _make_factory(self, cls, protocol, size, reply_timeout):
        a = self.address
        uuid = a.unix_path or f"{a.host}:{a.port}"
        factory = cls.__new__(cls)
        txredisapi.RedisFactory.__init__(factory, uuid, a.db or None, size, isLazy=True,
                                         handler=txredisapi.ConnectionHandler, charset="utf-8",
                                         password=a.password, replyTimeout=reply_timeout, convertNumbers=False)
        factory.protocol = protocol
        factory.reactor = self.reactor
        return factory

    def _endpoint(self):
        a = self.address
        if a.unix_path:
            return UNIXClientEndpoint(self.reactor, a.unix_path, timeout=self.connect_timeout_s)
        return TCP4ClientEndpoint(self.reactor, a.host, a.port, timeout=self.connect_timeout_s)

    def _pool_ready(self, _):
        self._log.info("connected to {where}", where=self.address.describe())
        from twisted.internet import task

        self._clock_sync = task.LoopingCall(lambda: defer.Deferred.fromCoroutine(self.sync_clock()).addErrback(
            lambda f: self._log.debug("measuring Redis's clock failed: {why}", why=f.getErrorMessage())))
        self._clock_sync.clock = self.reactor
        if not self._ready.called:
            # the first measurement before anyone may write
            defer.Deferred.fromCoroutine(self.sync_clock()).addBoth(self._first_sync_done)

    def _first_sync_done(self, result):
        if isinstance(result, Failure):
            self._log.warn("measuring Redis's clock failed: {why}", why=result.getErrorMessage())
        if self.running and self._clock_sync is not None and not self._clock_sync.running:
            self._clock_sync.start(CLOCK_SYNC_INTERVAL_S, now=False).addErrback(
                lambda f: self._log.failure("clock sync loop died", failure=f))
        if not self._ready.called:
            self._ready.callback(self)

    async def sync_clock(self) -> float:
        """Measure Redis's clock against ours (the middle of a TIME round trip); returns the offset."""
        before = self.reactor.seconds()
        seconds, micros = await self.execute_command("TIME")
        after = self.reactor.seconds()
        redis_ms = int(seconds) * 1000 + int(micros) / 1000
        self.clock_offset_ms = redis_ms - (before + after) * 500
        return self.clock_offset_ms

    def deadline_ms(self) -> int:
        """When, in Redis's clock, a write sent now must have run (heihei.store.scripts)."""
        now_ms = self.reactor.seconds() * 1000 + self.clock_offset_ms
        margin_s = min(DEADLINE_MARGIN_S, self.reply_timeout_s / 4)
        return int(now_ms + (self.reply_timeout_s - margin_s) * 1000)

    def _pool_failed(self, failure):
        self._log.error("cannot use {where}: {why}", where=self.address.describe(), why=failure.getErrorMessage())
        if failure.check(defer.CancelledError):
            return
        if not self._ready.called:
            self._ready.errback(StoreUnavailable(failure.getErrorMessage()))

    def ready(self) -> defer.Deferred:
        """Fires once the command pool is connected (a fresh Deferred each call)."""
        d = defer.Deferred()

        def relay(result):
            (d.errback if isinstance(result, Failure) else d.callback)(result)
            return result

        self._ready.addBoth(relay)
        return d

    async def stop(self) -> None:
        if self._clock_sync is not None and self._clock_sync.running:
            self._clock_sync.stop()
        for factory in (self._sub_factory, self._pool_factory):
            if factory is not None:
                await factory.disconnect()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.Deferred.fromCoroutine(self.stop())

    # -- commands --------------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., defer.Deferred]:
        """`await store.get(k)`: any txredisapi command, with our deadline."""
        if name.startswith("_"):
            raise AttributeError(name)
        if not hasattr(txredisapi.BaseRedisProtocol, name):
            raise AttributeError(name)

        direct = not getattr(getattr(txredisapi.BaseRedisProtocol, name), "_blocking", False)

        def call(*args: Any, **kwargs: Any) -> defer.Deferred:
            factory = self._pool_factory
            if factory is None:  # not connected yet (or never will be)
                return defer.fail(StoreUnavailable(f"redis {name}: not connected yet"))
            conn = self._idle_connection() if direct else None
            if conn is not None:  # connected: txredisapi's reply timeout bounds it
                return getattr(conn, name)(*args, **kwargs).addErrback(self._translate, name)
            return self._bounded(getattr(factory.handler, name)(*args, **kwargs), name)

        return call

    def _idle_connection(self):
        """A connected pool connection for a non-blocking command, without txredisapi's handler.

        Why: the handler fetches a connection through an inlineCallbacks
        generator and a Deferred per command; that was half of a command's CPU
        (bench/README.md, 1:1 scenario). Always the same connection while it
        lives: Redis runs commands one at a time anyway, so one pipelined
        connection costs nothing in throughput, keeps commands in the order they
        were issued, and lets those of one reactor iteration leave in one send.
        None while no connection is up; then the handler waits for one.
        """
        for conn in self._pool_factory.connectionQueue.pending:
            if conn.connected:
                return conn
        return None

    def _bounded(self, d: defer.Deferred, what: str) -> defer.Deferred:
        d.addTimeout(self.reply_timeout_s + self.connect_timeout_s, self.reactor)
        return d.addErrback(self._translate, what)

    @staticmethod
    def _translate(failure: Failure, what: str):
        if failure.check(defer.TimeoutError, defer.CancelledError, txredisapi.ConnectionError):
            raise StoreUnavailable(f"redis {what}: {failure.getErrorMessage() or 'timed out'}")
        if failure.check(txredisapi.ResponseError) and LATE in failure.getErrorMessage():
            raise StoreUnavailable(f"redis {what}: ran after its deadline, refused itself")
        return failure

    async def ping(self) -> bool:
        """True if Redis answers right now (for /healthz)."""
        if self._pool_factory is None or not self._pool_factory.size:
            return False
        try:
            return (await self.execute_command("PING")) in ("PONG", b"PONG")
        except Exception:
            return False

    # -- pub/sub ---------------------------------------------------------------

    def subscribe(self, channel: str, handler: MessageHandler) -> defer.Deferred:
        """Call `handler(channel, message)` for every message on `channel`, across reconnects.

        The Deferred fires once Redis has answered the SUBSCRIBE (everything published after that
        reaches the handler), at once if the channel was subscribed already or the subscriber
        connection is down (a catch-up follows its return, `on_resubscribed`)."""
        first = channel not in self._handlers
        self._handlers.setdefault(channel, []).append(handler)
        pending = self._subscribing.get(channel)
        if first and self._subscriber is not None:
            pending = self._subscriber.subscribe(channel)
            self._subscribing[channel] = pending
            pending.addErrback(self._subscribe_failed, channel)

            def done(result, d=pending):
                if self._subscribing.get(channel) is d:
                    del self._subscribing[channel]
                return result

            pending.addBoth(done)
        if pending is None or pending.called:
            return defer.succeed(None)
        waiter = defer.Deferred()
        pending.addBoth(lambda result: (waiter.callback(None), result)[1])
        return waiter

    def unsubscribe(self, channel: str, handler: MessageHandler) -> None:
        handlers = self._handlers.get(channel, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers and channel in self._handlers:
            del self._handlers[channel]
            if self._subscriber is not None:
                self._subscriber.unsubscribe(channel).addErrback(self._subscribe_failed, channel,
                                                                 "unsubscribing from")

    def _subscriber_connected(self, conn: _Subscriber) -> None:
        self._subscriber = conn
        channels = list(self._handlers)
        d = conn.subscribe(channels) if channels else defer.succeed(None)
        d.addErrback(self._subscribe_failed, channels)
        self._log.debug("subscriber connected, {n} channels", n=len(channels))
        if self._subscriber_was_up:
            # what was published while we were not subscribed went nowhere: let the owners catch up
            d.addCallback(lambda _: self._resubscribed())
        self._subscriber_was_up = True

    def _subscriber_lost(self) -> None:
        for hook in list(self.on_bus_lost):
            try:
                hook()
            except Exception:
                self._log.failure("a bus-lost hook failed")

    def _resubscribed(self) -> None:
        for hook in list(self.on_resubscribed):
            try:
                hook()
            except Exception:
                self._log.failure("a resubscription hook failed")

    def _subscribe_failed(self, failure, channel, doing: str = "subscribing to"):
        if self._sub_factory is None or self._sub_factory.disconnectCalled:
            return  # stopping: the connection went before the (un)subscription was answered
        self._log.error("{doing} {channel} failed: {why}", doing=doing, channel=channel,
                        why=failure.getErrorMessage())

    def _dispatch(self, channel, message) -> None:
        if isinstance(channel, bytes):
            channel = channel.decode()
        for handler in list(self._handlers.get(channel, ())):
            try:
                handler(channel, message)
            except Exception:
                self._log.failure("handler for {channel} failed", channel=channel)

    async def publish(self, channel: str, message: bytes | str) -> int:
        if self._pool_factory is None:
            raise StoreUnavailable("redis publish: not connected yet")
        return await self.__getattr__("publish")(channel, message)
