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

Broadcasts (one frame for a whole room) skip even that list. A connection
whose last flush went out whole, directly, and that has written nothing since
is *direct*: the batcher knows its socket. `broadcast` takes the direct
members of a room with one set intersection and queues a single entry (frame,
members); the flush sends the frame to each member's socket. So a room of N
costs N `send` calls and almost no Python per receiver. A direct connection
that writes anything of its own (an answer, a close frame, a ping) first
leaves direct: the broadcast frames queued for it move to its own list, in
front of what it writes, so its bytes keep their order. A send the kernel does
not take whole puts the connection back on the transport path (the rest of
the frame, then its frames from later entries of the same flush, through the
transport's buffered `write`), and so does pausing, cutting off, dropping or
losing the connection.

Broadcasts of one iteration whose members overlap share an entry (a burst in
one room: each message for everyone but its sender, and the sender's own
copy); each member gets all its frames of the entry in one `send`, in the
order they were queued. A broadcast joins the newest queued entry it shares a
member with, so no entry queued after the one it joins holds any of its
members: nobody can see its frames in another order. One that shares no
member with the last MERGE_LOOKBACK entries (another room) starts its own.
"""

from __future__ import annotations

import weakref

from twisted.internet import tcp
from twisted.logger import Logger

_log = Logger()

#: transports whose socket we may write to directly (TLS wraps these and is excluded by type)
_PLAIN_TCP = (tcp.Server, tcp.Client)
#: how many queued broadcast entries a new one looks back over for one to join (each costs
#: one `isdisjoint`)
MERGE_LOOKBACK = 8


def set_no_delay(transport, enabled: bool = True) -> None:
    """TCP_NODELAY on a TCP transport (TLS passes it down); other transports (UNIX sockets) have no Nagle."""
    try:
        transport.setTcpNoDelay(enabled)
    except (AttributeError, OSError, NotImplementedError):
        pass


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
        #: direct connections and their sockets (see the module docstring)
        self.direct: dict = {}
        #: broadcast entries queued and not flushed yet, oldest first
        self._broadcasts: list[_Broadcast] = []

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

    def broadcast(self, frame: bytes, clients: set) -> set:
        """Queue `frame` for the direct ones among `clients`; returns them (the rest need `send_frame`)."""
        members = clients & self.direct.keys()
        if members:
            entry = self._entry_to_join(members)
            if entry is not None:
                entry.add(frame, members)
            else:
                entry = _Broadcast(self, frame, members)
                self._broadcasts.append(entry)
                self.mark(entry)
        return members

    def _entry_to_join(self, members: set):
        """The newest queued entry that shares a member with `members`, if no newer one does and it
        is among the last MERGE_LOOKBACK; else None (a new entry, flushed after all queued ones)."""
        pending = self._broadcasts
        for i in range(len(pending) - 1, max(-1, len(pending) - 1 - MERGE_LOOKBACK), -1):
            entry = pending[i]
            if not entry.union.isdisjoint(members):
                return entry
        return None

    def enter_direct(self, conn, sock) -> None:
        """`conn`'s transport holds nothing and it has no output queued: broadcasts may go to `sock`."""
        self.direct[conn] = sock

    def leave_direct(self, conn) -> list[bytes]:
        """`conn` is no longer direct; returns the broadcast frames still queued for it, oldest first."""
        if self.direct.pop(conn, None) is None:
            return []
        frames = []
        for entry in self._broadcasts:
            frames.extend(entry.take(conn))
        return frames

    def flush(self) -> None:
        self._call = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            try:
                conn.flush_output()
            except Exception:
                _log.failure("flushing output of {conn} failed", conn=conn)


class _Broadcast:
    """Broadcast frames of one iteration whose members overlap, each member's in one `send`.

    `parts` are (frame, members) in the order they were queued. Mostly they
    are one room's messages: each for everyone but its sender, plus the
    sender's own copy. Members in every large part and in no small one (the
    room's audience) get one shared joined buffer; the few others (the
    senders) get their own frames joined, in order. Large: at least half the
    entry's members. Set operations do the grouping, so the audience costs no
    Python per member beyond its `send`.
    """

    __slots__ = ("batcher", "parts", "union")

    def __init__(self, batcher: WriteBatcher, frame: bytes, members: set) -> None:
        self.batcher = batcher
        self.parts: list[tuple[bytes, set]] = [(frame, members)]
        self.union = members  # a set of its own once a second part comes

    def add(self, frame: bytes, members: set) -> None:
        if len(self.parts) == 1:
            self.union = self.union | members
        else:
            self.union |= members
        self.parts.append((frame, members))

    def take(self, conn) -> list[bytes]:
        """`conn` leaves direct: its frames here, in order, no longer sent from here."""
        frames = []
        for frame, members in self.parts:
            if conn in members:
                members.discard(conn)
                frames.append(frame)
        return frames

    def flush_output(self) -> None:
        batcher = self.batcher
        pending = batcher._broadcasts
        if pending and pending[0] is self:
            del pending[0]  # entries flush in the order they were queued
        elif self in pending:
            pending.remove(self)
        parts = self.parts
        if len(parts) == 1:
            frame, members = parts[0]
            self._send_to(members, frame)
            return
        half = len(self.union) / 2
        large = [members for _, members in parts if len(members) >= half]
        small = [members for _, members in parts if len(members) < half]
        audience = set.intersection(*large) if large else set()
        if small:
            audience.difference_update(*small)
        if audience:
            self._send_to(audience, b"".join([frame for frame, members in parts if len(members) >= half]))
        for conn in self.union - audience:
            frames = [frame for frame, members in parts if conn in members]
            if frames:
                self._send_to((conn,), b"".join(frames))

    def _send_to(self, members, data: bytes) -> None:
        size = len(data)
        sockets = self.batcher.direct
        for conn in members:
            sock = sockets.get(conn)
            if sock is None:
                continue
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = -1
            if sent != size:
                self._fall_back(conn, data, sent)

    def _fall_back(self, conn, data: bytes, sent: int) -> None:
        """The kernel did not take all of it: the transport writes the rest, and what follows."""
        rest = data[sent:] if sent > 0 else data
        later = self.batcher.leave_direct(conn)
        transport = conn.transport
        if transport is not None:
            # on an error (sent < 0) the transport meets it the usual way and closes the connection
            transport.write(b"".join([rest, *later]) if later else rest)


class BatchedTransport:
    """A client transport (Redis) whose writes of one reactor iteration leave in one direct send.

    Why: Twisted's buffered `write` costs two `epoll_ctl` calls and an extra
    reactor iteration per command; through this a Redis command costs one
    `send` at the end of the iteration that issued it, and commands issued
    together (several messages handled in one iteration) leave together.
    Everything but writing is the wrapped transport's.
    """

    def __init__(self, transport, batcher: WriteBatcher) -> None:
        self._transport = transport
        self._batcher = batcher
        self._socket = direct_socket(transport)
        self._out: list[bytes] = []
        set_no_delay(transport)  # pipelined commands must not wait for the ACK of earlier ones

    def write(self, data: bytes) -> None:
        if not self._out:
            self._batcher.mark(self)
        self._out.append(data)

    def writeSequence(self, seq) -> None:
        for data in seq:
            self.write(data)

    def flush_output(self) -> None:
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        write_now(self._transport, data, self._socket)

    def loseConnection(self) -> None:
        self.flush_output()
        self._transport.loseConnection()

    def abortConnection(self) -> None:
        self._out.clear()
        self._transport.abortConnection()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


_batchers: "weakref.WeakKeyDictionary[object, WriteBatcher]" = weakref.WeakKeyDictionary()


def batcher_for(reactor) -> WriteBatcher:
    batcher = _batchers.get(reactor)
    if batcher is None:
        batcher = _batchers[reactor] = WriteBatcher(reactor)
    return batcher
