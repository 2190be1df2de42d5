"""A small real WebSocket client for tests (Autobahn on the running reactor)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from tests.helpers import sleep

DEFAULT_TIMEOUT_S = 5.0


class WSError(Exception):
    """The opening handshake failed; `status` is the server's HTTP status (None if it sent none)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _http_status(protocol) -> int | None:
    """The status code of the server's handshake answer, once Autobahn has parsed its status line."""
    line = getattr(protocol, "http_status_line", None)
    parts = line.split() if line else []
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


class _Protocol(WebSocketClientProtocol):
    def onConnect(self, response):
        self.factory.client.response = response

    def onPing(self, payload):
        # Autobahn answers every ping by itself; a client made with answer_pings=False plays a
        # peer that went quiet (a server that counts pongs as life must see it go silent)
        client = self.factory.client
        client.pings_received += 1
        if not client.answer_pings:
            client.pings_ignored += 1
        elif client.pong_delay_s:
            # a distant client: its pong arrives one round trip later
            reactor.callLater(client.pong_delay_s, self._late_pong, payload)
        else:
            super().onPing(payload)

    def _late_pong(self, payload):
        if self.state == self.STATE_OPEN:
            self.sendPong(payload)

    def onOpen(self):
        self.factory.client._opened(self)

    def onMessage(self, payload, isBinary):
        self.factory.client._message(payload, isBinary)

    def onClose(self, wasClean, code, reason):
        self.factory.client._closed(wasClean, code, reason, _http_status(self))


class WSClient:
    def __init__(self, answer_pings: bool = True, pong_delay_s: float = 0.0):
        self.answer_pings = answer_pings
        self.pong_delay_s = pong_delay_s
        self.pings_ignored = 0
        self.pings_received = 0
        self.protocol = None
        self.response = None
        self.messages: defer.DeferredQueue = defer.DeferredQueue()
        self.received: list = []
        self.open = defer.Deferred()
        self.closed = defer.Deferred()
        self.close_code = None
        self.close_reason = None
        #: HTTP status of the handshake answer (101 when it opened)
        self.status = None

    def _opened(self, protocol):
        self.protocol = protocol
        self.status = _http_status(protocol)
        self.open.callback(self)

    def _message(self, payload, is_binary):
        value = payload if is_binary else payload.decode("utf-8")
        self.received.append(value)
        self.messages.put(value)

    def _closed(self, was_clean, code, reason, status=None):
        self.close_code, self.close_reason = code, reason
        if self.status is None:
            self.status = status
        if not self.open.called:
            self.open.errback(WSError(f"handshake failed ({status}): {reason}", status))
        if not self.closed.called:
            self.closed.callback((code, reason))

    def send(self, payload: str | bytes, binary: bool = False) -> None:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.protocol.sendMessage(payload, isBinary=binary)

    async def next(self, timeout: float = DEFAULT_TIMEOUT_S):
        d = self.messages.get()
        d.addTimeout(timeout, reactor)
        return await d

    async def next_json(self, timeout: float = DEFAULT_TIMEOUT_S):
        return json.loads(await self.next(timeout))

    async def drain(self, quiet_s: float) -> list:
        """Everything that arrives until nothing has for `quiet_s` seconds (for a burst of unknown length)."""
        got = []
        while True:
            try:
                got.append(await self.next(quiet_s))
            except defer.TimeoutError:  # the quiet that ends the burst; any other error is the test's
                return got

    async def no_message(self, wait: float = 0.3) -> None:
        """Assert nothing arrives within `wait` seconds.

        The last resort: it proves nothing about what arrives later, and it costs
        `wait` on every run. Prefer a marker that must arrive after what must not,
        then assert the marker is the next message."""
        await sleep(wait)
        assert not self.messages.pending, f"unexpected messages: {self.messages.pending!r}"

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT_S):
        self.closed.addTimeout(timeout, reactor)
        return await self.closed

    async def close(self, code: int = 1000) -> None:
        if self.protocol is not None and not self.closed.called:
            self.protocol.sendClose(code=code)
            await self.wait_closed()


async def connect(url: str, *, headers: dict | None = None, origin: str | None = None,
                  timeout: float = DEFAULT_TIMEOUT_S, max_size: int = 16 * 1024 * 1024,
                  answer_pings: bool = True, pong_delay_s: float = 0.0) -> WSClient:
    """Open a WebSocket; raises WSError if the server refuses the handshake."""
    client = WSClient(answer_pings=answer_pings, pong_delay_s=pong_delay_s)
    factory = WebSocketClientFactory(url, headers=headers, origin=origin)
    factory.setProtocolOptions(maxFramePayloadSize=max_size, maxMessagePayloadSize=max_size,
                               openHandshakeTimeout=timeout)
    factory.protocol = _Protocol
    factory.client = client
    parts = urlsplit(url)
    endpoint = TCP4ClientEndpoint(reactor, parts.hostname, parts.port, timeout=timeout)
    await endpoint.connect(factory)
    client.open.addTimeout(timeout, reactor)
    await client.open
    return client
