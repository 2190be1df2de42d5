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

A flush sends at most SENDS_PER_TURN broadcast sends; an entry that needs more
sends to its first members and stays queued with a plan and a cursor (who got
what, who is next) for the next reactor turn, and every entry behind it waits
too, so no member sees two entries' frames in another order. Why: a frame for a room
of 10,000 is ~70 ms of `send` calls; in one turn it holds up everything else
the node does (an HTTP answer, a Redis reply, a joiner's first item), which is
where a busy live room's latency went (bench/README.md, scenario 8). Writes of
a connection's own (answers, pings) and Redis commands are not budgeted: they
left direct, so no queued entry holds frames they could overtake. A started
entry takes no new frames (a new entry queues behind it), so its served and
unserved members never need different frames.

An *urgent* broadcast (a live room's gift or system item: heihei.heihei.lanes)
overtakes the queue: urgent entries are flushed first, each whole in one turn
(the budget does not cut them, and what they send does not count against it:
a stream of urgent frames must not hold back the ordinary entries, among them
the liveness pings), and a
direct member that leaves direct takes their frames before those of the
ordinary entries, in the order it would have been sent them. Urgent entries
keep their order among themselves; a frame queued in a connection's own list
(one that is not direct) is never overtaken.
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
#: broadcast sends per reactor turn before the rest waits for the next turn (see the docstring)
SENDS_PER_TURN = 512


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

    def __init__(self, reactor, sends_per_turn: int = SENDS_PER_TURN) -> None:
        self.reactor = reactor
        self.sends_per_turn = sends_per_turn
        #: broadcast sends left in the flush under way
        self.budget = sends_per_turn
        self._dirty: list = []
        self._call = None
        #: direct connections and their sockets (see the module docstring)
        self.direct: dict = {}
        #: broadcast entries queued and not flushed yet, oldest first
        self._broadcasts: list[_Broadcast] = []
        #: urgent broadcast entries, flushed before everything else (see the docstring)
        self._urgent: list[_Broadcast] = []

    def mark(self, conn) -> None:
        """`conn` has output; it will get `flush_output()` once, soon."""
        self._dirty.append(conn)
        self._schedule()

    def mark_all(self, conns: list) -> None:
        """Several connections with output (none of them marked yet this iteration)."""
        self._dirty.extend(conns)
        self._schedule()

    def _schedule(self) -> None:
        if self._call is None:
            self._call = self.reactor.callLater(0, self.flush)

    def broadcast(self, frame: bytes, clients: set, urgent: bool = False) -> set:
        """Queue `frame` for the direct ones among `clients`; returns them (the rest need `send_frame`).
        `urgent`: ahead of the ordinary broadcasts queued (see the docstring)."""
        members = clients & self.direct.keys()
        if members:
            queue = self._urgent if urgent else self._broadcasts
            entry = self._entry_to_join(queue, members)
            if entry is not None:
                entry.add(frame, members)
            else:
                entry = _Broadcast(self, frame, members, queue)
                queue.append(entry)
                if urgent:
                    self._schedule()  # `flush` takes urgent entries first, from their own queue
                else:
                    self.mark(entry)
        return members

    def _entry_to_join(self, pending: list, members: set):
        """The newest entry of `pending` that shares a member with `members`, if no newer one does and
        it is among the last MERGE_LOOKBACK; else None (a new entry, flushed after all queued ones)."""
        for i in range(len(pending) - 1, max(-1, len(pending) - 1 - MERGE_LOOKBACK), -1):
            entry = pending[i]
            if not entry.union.isdisjoint(members):
                return None if entry.started else entry
        return None

    def enter_direct(self, conn, sock) -> None:
        """`conn`'s transport holds nothing and it has no output queued: broadcasts may go to `sock`."""
        self.direct[conn] = sock

    def leave_direct(self, conn) -> list[bytes]:
        """`conn` is no longer direct; returns the broadcast frames still queued for it, oldest first."""
        if self.direct.pop(conn, None) is None:
            return []
        frames = []
        for entry in self._urgent:  # sent before the ordinary entries: taken first
            frames.extend(entry.take(conn))
        for entry in self._broadcasts:
            frames.extend(entry.take(conn))
        return frames

    def flush(self) -> None:
        self._call = None
        self.budget = self.sends_per_turn
        while self._urgent:
            entry = self._urgent[0]
            try:
                entry.flush_output()  # whole: it leaves its queue
            except Exception:
                if self._urgent and self._urgent[0] is entry:
                    del self._urgent[0]
                _log.failure("flushing an urgent broadcast failed")
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

    __slots__ = ("batcher", "parts", "union", "queue", "whole", "plan", "at")

    def __init__(self, batcher: WriteBatcher, frame: bytes, members: set, queue: list) -> None:
        self.batcher = batcher
        #: the batcher's list it waits in; urgent entries go out whole, whatever the turn's budget
        self.queue = queue
        self.whole = queue is batcher._urgent
        self.parts: list[tuple[bytes, set]] = [(frame, members)]
        self.union = members  # a set of its own once a second part comes
        #: once it started (a turn's budget ran out in it): [members set, the same as a list, bytes]
        #: per send group, and `at` = (group, offset) of the first member not served yet
        self.plan: list[list] | None = None
        self.at = (0, 0)

    @property
    def started(self) -> bool:
        """Some members were served in an earlier turn (SENDS_PER_TURN): no frame may join."""
        return self.plan is not None

    def add(self, frame: bytes, members: set) -> None:
        if len(self.parts) == 1:
            self.union = self.union | members
        else:
            self.union |= members
        self.parts.append((frame, members))

    def take(self, conn) -> list[bytes]:
        """`conn` leaves direct: its frames here, in order, no longer sent from here."""
        if self.plan is not None:
            return self._take_planned(conn)
        frames = []
        for frame, members in self.parts:
            if conn in members:
                members.discard(conn)
                frames.append(frame)
        return frames

    def _take_planned(self, conn) -> list[bytes]:
        """`take` once the entry started: nothing if `conn` was served already, else its bytes."""
        at_group, at_offset = self.at
        for index in range(at_group, len(self.plan)):
            group = self.plan[index]
            if conn not in group[0]:
                continue
            group[0].discard(conn)
            position = group[1].index(conn)  # rare (a member writing mid-broadcast): a list scan is fine
            del group[1][position]
            if index == at_group and position < at_offset:
                self.at = (at_group, at_offset - 1)
                return []  # served in an earlier turn
            return [group[2]]
        return []

    def flush_output(self) -> None:
        batcher = self.batcher
        budget = batcher.budget
        if self.whole:
            budget = float("inf")
        elif budget <= 0:
            batcher.mark(self)  # the turn's sends are spent: next turn, still behind older entries
            return
        pending = self.queue
        if pending and pending[0] is self:
            del pending[0]  # entries flush in the order they were queued
        elif self in pending:
            pending.remove(self)
        if self.plan is None:
            groups = self._groups()
            sends = sum(len(members) for members, _ in groups)
            if sends <= budget:  # the common case: all of it in this turn, no plan kept
                for members, data in groups:
                    self._send_to(members, data)
                if not self.whole:
                    batcher.budget -= sends
                return
            self.plan = [[members, list(members), data] for members, data in groups]
        group_index, offset = self.at
        plan = self.plan
        while group_index < len(plan):
            _, order, data = plan[group_index]
            left = len(order) - offset
            if left > budget:
                self._send_to(order[offset:offset + budget], data)
                self.at = (group_index, offset + budget)
                batcher.budget = 0
                pending.insert(0, self)  # everything queued before it has gone out
                batcher.mark(self)
                return
            self._send_to(order[offset:] if offset else order, data)
            budget -= left
            group_index, offset = group_index + 1, 0
        self.at = (group_index, 0)
        batcher.budget = budget

    def _groups(self) -> list[tuple]:
        """(members, bytes) to send, in order: each member appears once, with all its frames."""
        parts = self.parts
        if len(parts) == 1:
            frame, members = parts[0]
            return [(members, frame)]
        half = len(self.union) / 2
        large = [members for _, members in parts if len(members) >= half]
        small = [members for _, members in parts if len(members) < half]
        audience = set.intersection(*large) if large else set()
        if small:
            audience.difference_update(*small)
        groups = []
        if audience:
            groups.append((audience, b"".join([frame for frame, members in parts if len(members) >= half])))
        for conn in self.union - audience:
            frames = [frame for frame, members in parts if conn in members]
            if frames:
                groups.append(({conn}, b"".join(frames)))
        return groups

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
