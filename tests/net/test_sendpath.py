"""The batched send path: order, partial sends, backpressure, closing mid-flush."""

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor

from heihei.config import WebSocketSettings
from heihei.net import websocket as base_module
from heihei.net.websocket import BaseProtocol, HardenedFactory
from heihei.net.sendpath import write_now
from tests.helpers import sleep, wait_until
from tests.wsclient import connect


class Quiet(BaseProtocol):
    """Says nothing by itself: the test drives it from the server side."""


class _Session:
    """What the network layer needs of a session (heihei.core.sessions): nothing to do here."""

    id = "test"

    def seen(self):
        pass

    def closed(self):
        pass


class NoSessions:
    """The send path needs no messaging core: connections get a session that does nothing."""

    def open(self, conn):
        return _Session()


def factory_for(settings):
    return HardenedFactory("test", settings, Quiet, hub=None, sessions=NoSessions(), reactor=reactor)


@pytest_twisted.async_yield_fixture
async def server():
    settings = WebSocketSettings(send_queue_max_bytes=64 * 1024 * 1024, max_message_bytes=1 << 20,
                                 auto_ping_interval_s=0)
    factory = factory_for(settings)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    clients = []

    async def open_client():
        client = await connect(f"ws://127.0.0.1:{port.getHost().port}/")
        clients.append(client)
        await wait_until(lambda: len(factory.clients) == len(clients), what="the server side of the connection")
        (proto,) = [p for p in factory.clients if p not in [c.server for c in clients[:-1]]]
        client.server = proto
        return client, proto

    yield open_client
    for c in clients:
        if not c.closed.called:
            await c.close()
    # the server sides go too before close_all: one still open would get a server-initiated close,
    # whose close-handshake timer (txaio batches it into whole seconds, and a cancelled call keeps
    # its bucket's delayed call) outlives the leak check's grace: a flaky teardown, 1 run in ~15
    await wait_until(lambda: not factory.clients, what="the server sides of the closed connections")
    await factory.close_all(grace_s=0.5)
    await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_frames_keep_their_order_within_and_across_iterations(server):
    client, proto = await server()
    expected = []
    for batch in range(5):
        for i in range(200):
            text = f"{batch}:{i}:" + "z" * (i * 37 % 3000)
            expected.append(text)
            proto.send_text(text)
        await sleep(0)
    got = [await client.next() for _ in expected]
    assert got == expected


@pytest_twisted.ensureDeferred
async def test_one_socket_write_per_connection_per_iteration(server, monkeypatch):
    client, proto = await server()
    calls = []
    real = base_module.write_now
    monkeypatch.setattr(base_module, "write_now", lambda t, data, *sock: (calls.append(len(data)), real(t, data, *sock))[1])
    for i in range(50):
        proto.send_text(f"m{i}")
    assert calls == []  # nothing written yet: the flush comes at the next iteration
    await sleep(0.05)
    assert len(calls) == 1
    assert [await client.next() for _ in range(50)] == [f"m{i}" for i in range(50)]


@pytest_twisted.ensureDeferred
async def test_partial_sends_fall_back_to_the_transport_and_backpressure_pauses_us(server):
    client, proto = await server()
    proto.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.protocol.transport.pauseProducing()  # the client stops reading
    payload = "p" * 60000
    for i in range(100):  # 6 MB over several iterations: far more than the kernel takes
        assert proto.send_text(f"{i:03d}" + payload)
        await sleep(0)
    await sleep(0.2)
    # the kernel took part of it; the transport holds the rest and has paused us
    assert proto._paused
    buffered = proto.transport._tempDataLen + len(proto.transport.dataBuffer) - proto.transport.offset
    assert buffered > 0
    assert len(proto._backlog) > 0  # later frames wait in our bounded queue
    client.protocol.transport.resumeProducing()
    got = [await client.next(10) for _ in range(100)]
    assert [g[:3] for g in got] == [f"{i:03d}" for i in range(100)]
    assert all(g[3:] == payload for g in got)
    assert not proto._paused and not proto._backlog


@pytest_twisted.ensureDeferred
async def test_closing_mid_flush_sends_the_frames_before_the_close(server):
    client, proto = await server()
    for i in range(20):
        proto.send_text(f"last words {i}")
    proto.close(1000, "bye")  # same iteration as the frames
    got = [await client.next() for _ in range(20)]
    assert got == [f"last words {i}" for i in range(20)]
    code, reason = await client.wait_closed()
    assert (code, reason) == (1000, "bye")


@pytest_twisted.ensureDeferred
async def test_aborting_mid_flush_drops_the_output_quietly(server):
    client, proto = await server()
    for i in range(20):
        proto.send_text(f"never {i}")
    proto.dropConnection(abort=True)
    await sleep(0.05)  # the scheduled flush finds the transport gone
    code, _ = await client.wait_closed()
    assert code == 1006
    assert proto._out == []


@pytest_twisted.ensureDeferred
async def test_delivery_confirmation_rides_behind_the_frames(server):
    client, proto = await server()
    confirmed = []
    for i in range(10):
        proto.send_text(f"c{i}", on_delivered=lambda i=i: confirmed.append(i))
    assert confirmed == []
    for _ in range(10):
        await client.next()
    await wait_until(lambda: confirmed, what="the confirmation")
    assert confirmed == list(range(10))  # one pong confirmed all ten


class _BufferedTransport:
    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(data)


def test_write_now_uses_the_transport_for_anything_but_plain_tcp():
    t = _BufferedTransport()
    assert write_now(t, b"abc") == 0
    assert t.written == [b"abc"]


# -- broadcasts to direct connections ------------------------------------------------


def _frame(proto, text):
    return proto.prepare(text.encode("utf-8"))


async def _direct(server, count):
    """`count` connections that each flushed something whole: broadcasts go to their sockets."""
    pairs = [await server() for _ in range(count)]
    for _, proto in pairs:
        proto.send_text("hello")
    for client, proto in pairs:
        assert await client.next() == "hello"
        assert proto in proto._batcher.direct
    return pairs


@pytest_twisted.ensureDeferred
async def test_a_broadcast_costs_one_socket_send_per_member_and_no_transport_write(server, monkeypatch):
    pairs = await _direct(server, 3)
    protos = {p for _, p in pairs}
    writes = []
    for p in protos:
        monkeypatch.setattr(p.transport, "write", lambda data: writes.append(data))
    batcher = next(iter(protos))._batcher
    marked = len(batcher._dirty)
    assert BaseProtocol.send_frame_to_many(_frame(pairs[0][1], "to all"), protos) == 3
    assert len(batcher._dirty) == marked + 1  # one entry for the room, not one per connection
    assert all(p._out == [] for p in protos)
    for client, _ in pairs:
        assert await client.next() == "to all"
    assert writes == []


@pytest_twisted.ensureDeferred
async def test_an_own_write_after_a_broadcast_in_the_same_iteration_comes_after_it(server):
    (c1, p1), (c2, p2) = await _direct(server, 2)
    BaseProtocol.send_frame_to_many(_frame(p1, "b1"), {p1, p2})
    p1.send_text("own")  # p1 leaves direct: b1 moves in front of its own frame
    BaseProtocol.send_frame_to_many(_frame(p1, "b2"), {p1, p2})
    assert p1 not in p1._batcher.direct and p2 in p2._batcher.direct
    assert [await c1.next() for _ in range(3)] == ["b1", "own", "b2"]
    assert [await c2.next() for _ in range(2)] == ["b1", "b2"]
    await sleep(0.01)
    assert p1 in p1._batcher.direct  # its flush went out whole: direct again


@pytest_twisted.ensureDeferred
async def test_an_own_write_before_a_broadcast_in_the_same_iteration_comes_before_it(server):
    (c1, p1), (c2, p2) = await _direct(server, 2)
    p1.send_text("first")
    BaseProtocol.send_frame_to_many(_frame(p1, "room"), {p1, p2})
    assert [await c1.next() for _ in range(2)] == ["first", "room"]
    assert await c2.next() == "room"


@pytest_twisted.ensureDeferred
async def test_a_partial_broadcast_send_puts_the_rest_and_later_entries_on_the_transport(server):
    (c1, p1), (c2, p2) = await _direct(server, 2)
    p1.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c1.protocol.transport.pauseProducing()  # client 1 stops reading: its kernel buffers fill
    big = "x" * 200_000
    for i in range(5):  # five entries flushed together: the first already does not fit
        BaseProtocol.send_frame_to_many(_frame(p1, f"{i}{big}"), {p1, p2})
    await sleep(0.2)
    assert p1 not in p1._batcher.direct
    assert p1._paused  # the transport holds the rest and told us to stop
    got2 = [await c2.next(10) for _ in range(5)]
    assert [g[0] for g in got2] == list("01234")
    c1.protocol.transport.resumeProducing()
    got1 = [await c1.next(10) for _ in range(5)]
    assert [g[0] for g in got1] == list("01234") and all(g[1:] == big for g in got1)


@pytest_twisted.ensureDeferred
async def test_closing_after_a_broadcast_sends_it_before_the_close_frame(server):
    (c1, p1), (c2, p2) = await _direct(server, 2)
    BaseProtocol.send_frame_to_many(_frame(p1, "last"), {p1, p2})
    p1.close(1000, "bye")
    assert await c1.next() == "last"
    assert await c1.wait_closed() == (1000, "bye")
    assert await c2.next() == "last"
    # closed or closing connections take nothing more, directly or not
    assert BaseProtocol.send_frame_to_many(_frame(p2, "after"), {p1, p2}) == 1


@pytest_twisted.ensureDeferred
async def test_a_connection_lost_before_the_flush_is_skipped_quietly(server):
    (c1, p1), (c2, p2) = await _direct(server, 2)
    BaseProtocol.send_frame_to_many(_frame(p1, "gone?"), {p1, p2})
    p1.transport.abortConnection()
    await sleep(0.05)
    assert p1 not in p2._batcher.direct
    assert await c2.next() == "gone?"
    code, _ = await c1.wait_closed()
    assert code == 1006


class _CountingSocket:
    """A direct member's socket that records each send."""

    def __init__(self, sock, who, sends):
        self.sock, self.who, self.sends = sock, who, sends

    def send(self, data):
        self.sends.append(self.who)
        return self.sock.send(data)


def _count_sends(batcher, protos):
    sends = []
    for p in protos:
        batcher.direct[p] = _CountingSocket(batcher.direct[p], p, sends)
    return sends


async def _counted_room(server, count):
    """`count` direct connections, the set of them, their batcher, and the list their sends go to."""
    pairs = await _direct(server, count)
    room = {p for _, p in pairs}
    batcher = pairs[0][1]._batcher
    return pairs, room, batcher, _count_sends(batcher, room)


@pytest_twisted.ensureDeferred
async def test_a_burst_to_one_room_leaves_in_one_send_per_member(server):
    pairs, room, batcher, sends = await _counted_room(server, 3)
    for i in range(8):
        BaseProtocol.send_frame_to_many(_frame(pairs[0][1], f"burst {i}"), set(room))
    assert len(batcher._broadcasts) == 1  # the room's eight frames share one entry
    for client, _ in pairs:
        assert [await client.next() for _ in range(8)] == [f"burst {i}" for i in range(8)]
    assert sorted(map(id, sends)) == sorted(map(id, room))  # one send per member, not eight


@pytest_twisted.ensureDeferred
async def test_a_burst_from_several_senders_gives_everyone_their_frames_in_order_in_one_send(server):
    pairs = await _direct(server, 6)
    senders, audience = pairs[:3], pairs[3:]
    everyone = {p for _, p in pairs}
    batcher = pairs[0][1]._batcher
    sends = _count_sends(batcher, everyone)
    send = BaseProtocol.send_frame_to_many
    expected = {p: [] for p in everyone}
    for i, (_, sender) in enumerate(senders):  # each message: the sender's own copy, and everyone else's
        send(_frame(sender, f"mine {i}"), {sender})
        expected[sender].append(f"mine {i}")
        send(_frame(sender, f"from {i}"), everyone - {sender})
        for p in everyone - {sender}:
            expected[p].append(f"from {i}")
    assert len(batcher._broadcasts) == 2  # the first sender's own copy came before anything overlapped it
    for client, proto in pairs:
        assert [await client.next() for _ in expected[proto]] == expected[proto]
    for _, proto in audience:
        assert sum(1 for who in sends if who is proto) == 1  # the audience: three frames, one send
    # senders 2 and 3 get own copies in between the others' frames: still one send in the joined entry
    assert sum(1 for who in sends if who is senders[1][1]) == 1
    assert sum(1 for who in sends if who is senders[0][1]) == 2  # its own copy's entry, then the rest


@pytest_twisted.ensureDeferred
async def test_broadcasts_join_entries_only_where_no_member_can_see_another_order(server):
    (c1, p1), (c2, p2), (c3, p3), (c4, p4) = await _direct(server, 4)
    batcher = p1._batcher
    send = BaseProtocol.send_frame_to_many
    send(_frame(p1, "A"), {p1, p2})
    send(_frame(p1, "other room"), {p4})  # shares no member: an entry of its own
    send(_frame(p1, "B"), {p2, p3})
    send(_frame(p1, "C"), {p1, p2})
    assert [[f for f, _ in e.parts] for e in batcher._broadcasts] == [
        [_frame(p1, "A"), _frame(p1, "B"), _frame(p1, "C")], [_frame(p1, "other room")]]
    assert [await c1.next() for _ in range(2)] == ["A", "C"]
    assert [await c2.next() for _ in range(3)] == ["A", "B", "C"]
    assert await c3.next() == "B"
    assert await c4.next() == "other room"
    await sleep(0.01)
    # a member that writes its own frame in between takes its queued frames along, in order
    send(_frame(p1, "D"), {p1, p2, p3})
    p2.send_text("own")
    send(_frame(p1, "E"), {p1, p2, p3})
    assert [await c2.next() for _ in range(3)] == ["D", "own", "E"]
    assert [await c1.next() for _ in range(2)] == ["D", "E"]
    assert [await c3.next() for _ in range(2)] == ["D", "E"]


@pytest_twisted.ensureDeferred
async def test_nagle_is_off_on_every_websocket_connection(server):
    # Autobahn means to set TCP_NODELAY but never does on Twisted; without it a burst waits 40 ms
    # for the client's delayed ACK
    client, proto = await server()
    assert proto.transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest_twisted.ensureDeferred
async def test_an_operator_may_leave_nagle_on():
    # `tcp_nodelay = false`: less CPU with many messages in flight, at the price of delayed-ACK stalls
    settings = WebSocketSettings(tcp_nodelay=False, auto_ping_interval_s=0)
    factory = factory_for(settings)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = await connect(f"ws://127.0.0.1:{port.getHost().port}/")
    try:
        await wait_until(lambda: factory.clients, what="the server side of the connection")
        (proto,) = factory.clients
        assert proto.transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    finally:
        await client.close()
        await wait_until(lambda: not factory.clients, what="the server side to go (see the fixture)")
        await factory.close_all(grace_s=0.5)
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_broadcast_beyond_a_turns_sends_finishes_next_turn_and_later_frames_wait_behind_it(
        server, monkeypatch):
    pairs = await _direct(server, 5)
    room = {p for _, p in pairs}
    batcher = pairs[0][1]._batcher
    monkeypatch.setattr(batcher, "sends_per_turn", 2)
    sends = _count_sends(batcher, room)
    send = BaseProtocol.send_frame_to_many
    send(_frame(pairs[0][1], "one"), set(room))
    batcher._call.cancel()
    batcher.flush()  # one turn, run by hand: two members served, the entry waits for the next
    assert len(sends) == 2
    (entry,) = batcher._broadcasts
    assert entry.started and batcher._call is not None
    served = set(sends)
    (s, u) = next(p for p in room if p in served), next(p for p in room if p not in served)
    send(_frame(s, "two"), set(room))
    assert len(batcher._broadcasts) == 2  # a started entry takes no new frame: "two" queues behind it
    u.send_text("own")  # not served yet: takes "one" and "two" along, in order, before its own
    s.send_text("own")  # served: "two" and then its own
    for client, proto in pairs:
        expected = ["one", "two", "own"] if proto in (s, u) else ["one", "two"]
        assert [await client.next() for _ in expected] == expected
    assert sends.count(s) == 1 and u not in sends
    assert all(sends.count(p) == 2 for p in room - {s, u})  # "one" and "two", in separate turns


@pytest_twisted.ensureDeferred
async def test_a_turns_sends_are_shared_by_the_entries_in_order(server, monkeypatch):
    pairs = await _direct(server, 4)
    (c1, p1), (c2, p2), (c3, p3), (c4, p4) = pairs
    batcher = p1._batcher
    monkeypatch.setattr(batcher, "sends_per_turn", 3)
    sends = _count_sends(batcher, {p1, p2, p3, p4})
    send = BaseProtocol.send_frame_to_many
    send(_frame(p1, "room a"), {p1, p2})
    send(_frame(p1, "room b"), {p3, p4})
    batcher._call.cancel()
    batcher.flush()
    assert len(sends) == 3  # room a whole, then one member of room b; the other next turn
    assert len(batcher._broadcasts) == 1 and batcher._broadcasts[0].started
    for client in (c1, c2):
        assert await client.next() == "room a"
    for client in (c3, c4):
        assert await client.next() == "room b"
    assert len(sends) == 4


@pytest_twisted.ensureDeferred
async def test_a_ping_to_many_is_one_frame_through_the_broadcast_path(server):
    pairs, room, batcher, sends = await _counted_room(server, 3)
    assert BaseProtocol.ping_many(b"hh-beat-7", room) == 3
    await wait_until(lambda: all(c.pings_received == 1 for c, _ in pairs), what="every client pinged")
    assert sorted(map(id, sends)) == sorted(map(id, room))  # one socket send each, no own output
    with pytest.raises(ValueError):
        BaseProtocol.ping_many(b"x" * 126, room)


@pytest_twisted.ensureDeferred
async def test_an_urgent_broadcast_overtakes_the_queued_ones_and_goes_out_whole(server, monkeypatch):
    pairs = await _direct(server, 4)
    (c1, p1), (c2, p2), (c3, p3), (c4, p4) = pairs
    room = {p1, p2, p3, p4}
    batcher = p1._batcher
    monkeypatch.setattr(batcher, "sends_per_turn", 2)
    sends = _count_sends(batcher, room)
    send = BaseProtocol.send_frame_to_many
    send(_frame(p1, "chat"), set(room))
    send(_frame(p1, "gift 1"), set(room), urgent=True)
    send(_frame(p1, "gift 2"), set(room), urgent=True)  # urgent ones join each other, in order
    p4.send_text("own")  # leaving direct: the urgent frames first, as they would have been sent
    batcher._call.cancel()
    batcher.flush()
    # the gifts went to every direct member first, whatever the budget; then the chat got its
    # own budget's worth (urgent sends do not spend it) and finishes next turn
    assert sorted(map(id, sends[:3])) == sorted(map(id, [p1, p2, p3])) and len(sends) == 5
    assert batcher._broadcasts[0].started and not batcher._urgent
    for client, proto in pairs:
        expected = ["gift 1", "gift 2", "chat"] + (["own"] if proto is p4 else [])
        assert [await client.next() for _ in expected] == expected


@pytest_twisted.ensureDeferred
async def test_a_stream_of_urgent_frames_does_not_hold_back_the_ordinary_ones(server, monkeypatch):
    pairs, room, batcher, sends = await _counted_room(server, 3)
    monkeypatch.setattr(batcher, "sends_per_turn", 2)  # the room is larger than a turn's budget
    some = pairs[0][1]
    send = BaseProtocol.send_frame_to_many
    send(_frame(some, "chat"), set(room))
    BaseProtocol.ping_many(b"hh-beat-1", room)  # the liveness beat takes the ordinary path too
    for i in range(30):  # an urgent frame queued before every turn
        send(_frame(some, f"gift {i}"), set(room), urgent=True)
        await sleep(0)
    for client, _ in pairs:
        got = [await client.next() for _ in range(31)]
        assert got.index("chat") < 5, got  # it went out within the first turns, not after the stream
        assert [g for g in got if g != "chat"] == [f"gift {i}" for i in range(30)]
    await wait_until(lambda: all(c.pings_received == 1 for c, _ in pairs), what="the beat's ping")
