"""One Redis call stores a message, finds its receivers' nodes and publishes to them."""

import json
import time

import pytest
import pytest_twisted

from heihei.core.bus import NODE_CHANNEL_LUA, node_channel
from heihei.core.presence import NODES_KEY, user_key
from heihei.net import sendpath
from tests.helpers import sleep

REALM = "test"


@pytest.mark.parametrize("node", ["n1", "b x", "c/ü", "a:b*", "%41", "用户-1", "~._-"])
def test_the_lua_channel_name_is_the_python_one(redis, node):
    script = NODE_CHANNEL_LUA + "return node_channel(ARGV[1])"
    assert redis["client"].eval(script, 0, node).decode("utf-8") == node_channel(node)


def _alive(redis, *nodes, dead=()):
    now_ms = int(time.time() * 1000)
    client = redis["client"]
    for node in nodes:
        client.zadd(NODES_KEY, {node: now_ms + 60_000})
    for node in dead:
        client.zadd(NODES_KEY, {node: now_ms - 1})


def _packets(pubsub, expected: int) -> dict[str, dict]:
    got = {}
    deadline = time.monotonic() + 5
    while len(got) < expected and time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.1)
        if m and m["type"] == "message":
            got[m["channel"].decode("utf-8")] = json.loads(m["data"])
    return got


@pytest_twisted.ensureDeferred
async def test_a_group_message_costs_one_call_and_one_packet_per_other_node(nodes, redis, monkeypatch):
    a = await nodes.start("a")
    client = redis["client"]
    _alive(redis, "b x", "c/ü", dead=["gone"])
    client.hset(user_key(REALM, "u1"), mapping={"b x": 1})
    client.hset(user_key(REALM, "u2"), mapping={"b x": 1, "c/ü": 2})
    client.hset(user_key(REALM, "u3"), mapping={"gone": 1})  # its node is dead: offline
    client.hset(user_key(REALM, "s"), mapping={"c/ü": 1})  # the sender's other connection
    pubsub = client.pubsub()
    pubsub.subscribe(node_channel("b x"), node_channel("c/ü"), node_channel("gone"))
    assert len(_packets(pubsub, 3)) == 0  # only the subscribe confirmations so far

    await a.hub.groups.create(REALM, {}, ["u1", "u2", "u3", "s"], group_id="g1")
    writes = []
    real = sendpath.write_now
    monkeypatch.setattr(sendpath, "write_now", lambda t, data, *s: (writes.append(data), real(t, data, *s))[1])
    result = await a.hub.send_to_group(REALM, "s", "g1", {"text": "hello"}, echo_to_sender=True, client_id="c-1")
    commands = b"".join(writes)
    assert commands.count(b"\r\nEVALSHA\r\n") + commands.count(b"\r\nEVAL\r\n") == 1
    assert b"\r\nPUBLISH\r\n" not in commands  # published by the script, inside Redis

    assert sorted(result.online) == ["u1", "u2"] and result.offline == ["u3"]
    entry = result.message.entry
    packets = _packets(pubsub, 2)
    assert packets == {
        node_channel("b x"): {"k": "u", "r": REALM, "us": ["u1", "u2"], "ack": ["u1", "u2"], "e": entry, "o": "a"},
        node_channel("c/ü"): {"k": "u", "r": REALM, "us": ["u2", "s"], "ack": ["u2"], "e": entry, "o": "a"},
    }
    assert await a.hub.inbox.count(REALM, "u3") == 1  # stored for the offline one
    assert await a.hub.inbox.count(REALM, "s") == 0  # the sender's copy is not an inbox entry

    again = await a.hub.send_to_group(REALM, "s", "g1", {"text": "hello"}, echo_to_sender=True, client_id="c-1")
    assert again.duplicate and again.message.id == result.message.id
    assert _packets(pubsub, 1) == {}  # a repeated client id publishes nothing
    pubsub.close()


@pytest_twisted.ensureDeferred
async def test_a_room_message_is_published_by_the_call_that_stores_it(nodes, redis):
    from heihei.core.bus import room_channel

    a = await nodes.start("a")
    pubsub = redis["client"].pubsub()
    pubsub.subscribe(room_channel(REALM, "r 1"))
    _packets(pubsub, 1)
    result = await a.hub.send_to_room(REALM, "s", "r 1", {"text": "hi"})
    assert _packets(pubsub, 1) == {
        room_channel(REALM, "r 1"): {"k": "r", "r": REALM, "room": "r 1", "e": result.message.entry, "o": "a"}}
    history = await a.hub.history.latest(REALM, result.message.conversation, 5)
    assert [m.id for m in history] == [result.message.id]
    pubsub.close()


class _Viewer:
    """A room member that records what it is sent, and how many stores of its room were in flight then."""

    realm = "t2"
    user = None
    peer = "fake"
    send_queue_max_bytes = 1 << 20
    connection_open = True

    def __init__(self, hub, room):
        self.hub, self.where, self.got = hub, ("t2", room), []

    def prepare(self, payload):
        return payload

    def send_frame(self, frame, on_delivered=None):
        self.got.append((frame.decode(), self.hub._room_storing.get(self.where, 0)))
        return True


async def _room_with_viewer(nodes, room="r"):
    from heihei.core.hub import PlainRenderer

    a = await nodes.start("a")
    a.hub.register_realm("t2", PlainRenderer())
    viewer = _Viewer(a.hub, room)
    a.hub.presence.rooms[("t2", room)] = {viewer}
    return a, viewer


@pytest_twisted.ensureDeferred
async def test_room_messages_stored_together_go_out_together_in_order(nodes):
    from twisted.internet import defer

    a, viewer = await _room_with_viewer(nodes)
    sends = [defer.Deferred.fromCoroutine(a.hub.send_to_room("t2", "s", "r", {"frame": f"m{i}"})) for i in range(3)]
    await defer.gatherResults(sends)
    # nothing went out while the others of the burst were still being stored: one flush for all
    assert viewer.got == [("m0", 0), ("m1", 0), ("m2", 0)]
    assert a.hub._room_batches == {} and a.hub._room_storing == {}


@pytest_twisted.ensureDeferred
async def test_a_slow_or_failing_store_holds_the_others_back_only_briefly(nodes, monkeypatch):
    from twisted.internet import defer

    from heihei.store.client import StoreUnavailable

    a, viewer = await _room_with_viewer(nodes)
    real = a.hub.router.to_room
    gate = defer.Deferred()

    async def slow_then_failing(message, room):
        if message.body["frame"] == "slow":
            await gate
            raise StoreUnavailable("redis eval: timed out")
        return await real(message, room)

    monkeypatch.setattr(a.hub.router, "to_room", slow_then_failing)
    first = defer.Deferred.fromCoroutine(a.hub.send_to_room("t2", "s", "r", {"frame": "quick"}))
    slow = defer.Deferred.fromCoroutine(a.hub.send_to_room("t2", "s", "r", {"frame": "slow"}))
    await first
    assert viewer.got == []  # held: another message of the room is still being stored
    await sleep(0.05)
    assert [frame for frame, _ in viewer.got] == ["quick"]  # ... but not for long
    gate.callback(None)
    try:
        await slow
    except StoreUnavailable:
        pass
    else:
        raise AssertionError("the failing store succeeded")
    assert a.hub._room_batches == {} and a.hub._room_storing == {}
    await a.hub.send_to_room("t2", "s", "r", {"frame": "after"})
    assert [frame for frame, _ in viewer.got] == ["quick", "after"]


class _Receiver:
    """A connection as the hub's writer sees it: prepares and takes frames (no send_frame_to_many)."""

    def __init__(self, user):
        self.user = user
        self.got = []

    def prepare(self, payload):
        return payload

    def send_frame(self, frame, on_delivered=None):
        self.got.append(frame)
        return True


class _CountingRenderer:
    """Variant = the receiver's user; a body with `alike` renders the same for everyone."""

    def __init__(self):
        self.variant_calls = 0

    def variant(self, message, client):
        self.variant_calls += 1
        return client.user

    @staticmethod
    def renders_alike(message):
        return bool(message.body.get("alike"))

    def render(self, message, variant):
        return (message.body["text"] if message.body.get("alike") else f"{message.body['text']} for {variant}").encode()


@pytest_twisted.ensureDeferred
async def test_a_message_that_renders_alike_costs_one_variant_call_not_one_per_receiver(nodes):
    from heihei.core.model import Message

    a = await nodes.start("a")
    renderer = _CountingRenderer()
    a.hub.register_realm("t3", renderer)
    receivers = {_Receiver(f"u{i}") for i in range(50)}

    assert a.hub.send_to_clients(Message("t3", "r", "0", {"text": "hi", "alike": True}, kind="room"), receivers) == 50
    assert renderer.variant_calls == 1
    assert all(r.got == [b"hi"] for r in receivers)

    assert a.hub.send_to_clients(Message("t3", "r", "0", {"text": "yo"}, kind="room"), receivers) == 50
    assert renderer.variant_calls == 51  # one per receiver: their bytes differ
    assert all(r.got[1] == f"yo for {r.user}".encode() for r in receivers)
