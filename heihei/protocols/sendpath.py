"""
The fan-out write path: one send per connection per reactor iteration.

Why: with stock Twisted every `transport.write` of a small frame costs a
`send` plus two `epoll_ctl` calls (the transport starts and stops watching for
writability), and that, not WebSocket framing, is where a room fan-out spends
its CPU (bench/README.md has the figures). So connections collect what they
write during one iteration of the reactor, and a single `callLater(0)` at the
start of the next iteration flushes every connection with output once:

- a plain TCP transport with nothing buffered gets the bytes with one direct
  `socket.send`; whatever the kernel does not take (partial send, EAGAIN) goes
  to the transport's normal buffered `write`, so backpressure (the transport
  pausing its producer) and error handling stay Twisted's;
- any other transport (TLS, something buffered already) gets one ordinary
  `write` of the joined bytes.

Order is kept: everything a connection writes, frames and Autobahn's own
control frames alike, goes through the same list.
"""

from __future__ import annotations

import weakref

from twisted.internet import tcp
from twisted.logger import Logger

_log = Logger()

#: transports whose socket we may write to directly (TLS wraps these and is excluded by type)
_PLAIN_TCP = (tcp.Server, tcp.Client)


def direct_socket(transport):
    """The socket `write_now` may send on directly: plain TCP only (TLS wraps these and is excluded)."""
    return transport.socket if type(transport) in _PLAIN_TCP else None


def write_now(transport, data: bytes, sock=None) -> int:
    """Write `data` at once if the kernel takes it; returns how many bytes went directly.

    `sock` is `direct_socket(transport)`, cached by the caller (this runs once
    per receiver of a fan-out); without it the transport's type is checked here.
    """
    if sock is None:
        sock = direct_socket(transport)
    # the direct send may only overtake nothing: the transport must hold no bytes of its own
    if (sock is not None and not transport.dataBuffer and not transport._tempDataLen
            and transport.connected and not transport.disconnecting):
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            # let the transport meet the error the usual way (it closes the connection)
            transport.write(data)
            return 0
        if sent != len(data):
            transport.write(data[sent:] if sent else data)
        return sent
    transport.write(data)  # a transport that is gone ignores it
    return 0


class WriteBatcher:
    """Connections with output this iteration, flushed together at the next one."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self._dirty: list = []
        self._call = None

    def mark(self, conn) -> None:
        """`conn` has output; it will get `flush_output()` once, soon."""
        self._dirty.append(conn)
        if self._call is None:
            self._call = self.reactor.callLater(0, self.flush)

    def mark_all(self, conns: list) -> None:
        """Several connections with output (none of them marked yet this iteration)."""
        self._dirty.extend(conns)
        if self._call is None:
            self._call = self.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        self._call = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            try:
                conn.flush_output()
            except Exception:
                _log.failure("flushing output of {conn} failed", conn=conn)


_batchers: "weakref.WeakKeyDictionary[object, WriteBatcher]" = weakref.WeakKeyDictionary()


def batcher_for(reactor) -> WriteBatcher:
    batcher = _batchers.get(reactor)
    if batcher is None:
        batcher = _batchers[reactor] = WriteBatcher(reactor)
    return batcher
