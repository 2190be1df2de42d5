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

from typing import Any, Coroutine

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import defer
from twisted.logger import Logger

from heihei.config import WebSocketSettings

CLOSE_GOING_AWAY = 1001
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_NOT_IMPLEMENTED = 4501
SHUTDOWN_GRACE_S = 3.0


class HardenedFactory(WebSocketServerFactory):
    """A WebSocket factory for one realm with every bound set from its settings."""

    _log = Logger()

    def __init__(self, realm: str, settings: WebSocketSettings, protocol: type, *, reactor=None) -> None:
        super().__init__(reactor=reactor)
        self.realm = realm
        self.settings = settings
        self.protocol = protocol
        self.clients: set[WebSocketServerProtocol] = set()
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
            autoPingInterval=settings.auto_ping_interval_s or None,
            autoPingTimeout=settings.auto_ping_timeout_s or None,
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
            for client in list(self.clients):
                client.dropConnection(abort=True)

        timer = clock.callLater(grace_s, drop_stragglers)
        return done.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])


class BaseProtocol(WebSocketServerProtocol):
    """What every realm's connection shares; subclasses speak the wire format."""

    _log = Logger()

    #: the authenticated user id, once known (None while anonymous)
    user: str | None = None

    def onOpen(self) -> None:
        self.factory.client_opened(self)

    def connectionLost(self, reason) -> None:
        try:
            super().connectionLost(reason)
        finally:
            self.factory.client_closed(self)

    @property
    def connection_open(self) -> bool:
        """False once the connection is closing; check it after every await."""
        return self.state == self.STATE_OPEN

    def close_going_away(self, code: int, reason: str) -> None:
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)
        elif self.state == self.STATE_CONNECTING:
            self.dropConnection(abort=True)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> defer.Deferred:
        """Run a coroutine from a synchronous Autobahn callback, logging any failure."""
        d = defer.Deferred.fromCoroutine(coro)

        def failed(failure):
            self._log.failure("{what} failed for {peer}", failure=failure, what=what, peer=self.peer)

        return d.addErrback(failed)


class NotImplementedYetProtocol(BaseProtocol):
    """Placeholder for a realm whose wire format has not landed: a clear close."""

    def onOpen(self) -> None:
        super().onOpen()
        self.sendClose(code=CLOSE_NOT_IMPLEMENTED, reason=f"{self.factory.realm} protocol not implemented yet")
