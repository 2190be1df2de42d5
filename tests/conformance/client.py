"""
The conformance suite's WebSocket client: tests/wsclient.py plus the two
things the shared checks need from the client side.

- `answer_pings=False` (tests/wsclient.py) makes a peer that has gone quiet.
- A refused handshake raises `HandshakeRefused` with the server's HTTP status
  (tests/wsclient.py records it), so a test can tell "refused with 401" from
  "refused" or "connection failed".

`changed()` wakes a waiter on every frame and on the close, so a session can
wait for "a frame like this one" without polling or sleeping.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from tests.wsclient import DEFAULT_TIMEOUT_S, WSClient, WSError, _Protocol


class HandshakeRefused(WSError):
    """The server answered the opening handshake with `status` instead of 101."""

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(f"handshake refused with HTTP {status}: {reason}", status)


class Client(WSClient):
    def __init__(self, answer_pings: bool = True) -> None:
        super().__init__(answer_pings=answer_pings)
        self._waiters: list[defer.Deferred] = []

    def _message(self, payload, is_binary):
        super()._message(payload, is_binary)
        self._wake()

    def _closed(self, was_clean, code, reason, status=None):
        super()._closed(was_clean, code, reason, status)
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if not d.called:
                d.callback(None)

    @property
    def is_closed(self) -> bool:
        return self.closed.called

    async def changed(self, timeout: float) -> None:
        """Wait for the next frame or the close (TimeoutError after `timeout` seconds)."""
        d = defer.Deferred()
        self._waiters.append(d)
        d.addTimeout(timeout, reactor)
        await d

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT_S):
        # a fresh Deferred per wait: WSClient's own `closed` can carry only one timeout
        deadline = reactor.seconds() + timeout
        while not self.closed.called:
            left = deadline - reactor.seconds()
            if left <= 0:
                raise defer.TimeoutError(f"not closed within {timeout} s")
            await self.changed(left)
        return self.close_code, self.close_reason


async def connect(url: str, *, answer_pings: bool = True, timeout: float = DEFAULT_TIMEOUT_S) -> Client:
    """Open a WebSocket; raises HandshakeRefused (with the status) if the server refuses it."""
    client = Client(answer_pings=answer_pings)
    factory = WebSocketClientFactory(url)
    factory.setProtocolOptions(openHandshakeTimeout=timeout)
    factory.protocol = _Protocol
    factory.client = client
    parts = urlsplit(url)
    endpoint = TCP4ClientEndpoint(reactor, parts.hostname, parts.port, timeout=timeout)
    await endpoint.connect(factory)
    client.open.addTimeout(timeout, reactor)
    try:
        await client.open
    except WSError as e:
        if e.status is not None:
            raise HandshakeRefused(e.status, str(e)) from None
        raise
    return client
