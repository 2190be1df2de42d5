"""
A TCP proxy on loopback whose client-to-server direction can be slowed down: bytes the client sent
are still on their way when the client gives up and closes. That is what a slow network does to
a Redis command whose caller timed out, and the case a script deadline exists for (a paused or
busy Redis does not show it: a closed client's unread command is dropped there).
"""

from __future__ import annotations

from twisted.internet import endpoints, protocol, reactor


class SlowLink:
    """`await SlowLink.open(port)` listens on an ephemeral port and forwards to 127.0.0.1:`port`.
    Set `delay_s` to hold every client byte that long (order kept); a client's close reaches the
    server only after its held bytes did."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay_s = 0.0
        self._listener = None
        self._links: set[_ClientSide] = set()

    @classmethod
    async def open(cls, target_port: int) -> "SlowLink":
        link = cls(target_port)
        factory = protocol.Factory.forProtocol(lambda: _ClientSide(link))
        link._listener = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        return link

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._listener.getHost().port}/0"

    async def close(self) -> None:
        for link in list(self._links):
            link.transport.abortConnection()
        await self._listener.stopListening()


class _ServerSide(protocol.Protocol):
    def __init__(self, client: "_ClientSide") -> None:
        self.client = client

    def dataReceived(self, data: bytes) -> None:
        self.client.transport.write(data)

    def connectionLost(self, reason=None) -> None:
        if self.client.transport is not None:
            self.client.transport.loseConnection()


class _ClientSide(protocol.Protocol):
    def __init__(self, link: SlowLink) -> None:
        self.link = link
        self.server: _ServerSide | None = None
        self.waiting: list[bytes] = []  # before the server connection is up
        self.release_at = 0.0  # when the last held chunk goes out: later chunks never overtake it

    def connectionMade(self) -> None:
        self.link._links.add(self)
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.link.target_port)
        endpoints.connectProtocol(endpoint, _ServerSide(self)).addCallback(self._server_up)

    def _server_up(self, server: _ServerSide) -> None:
        self.server = server
        for chunk in self.waiting:
            server.transport.write(chunk)
        self.waiting.clear()
        if self.transport is None or not self.transport.connected:
            self._close_server_side()

    def dataReceived(self, data: bytes) -> None:
        self._after_delay(lambda: self._forward(data))

    def connectionLost(self, reason=None) -> None:
        self.link._links.discard(self)
        self._after_delay(self._close_server_side)

    def _after_delay(self, action) -> None:
        now = reactor.seconds()
        self.release_at = max(now + self.link.delay_s, self.release_at)
        if self.release_at <= now:
            action()
        else:
            reactor.callLater(self.release_at - now, action)

    def _forward(self, data: bytes) -> None:
        if self.server is None:
            self.waiting.append(data)
        else:
            self.server.transport.write(data)

    def _close_server_side(self) -> None:
        if self.server is not None:
            self.server.transport.loseConnection()
