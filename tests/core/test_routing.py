"""One Redis call stores a message, finds its receivers' nodes and publishes to them."""

import json
import time

import pytest
import pytest_twisted

from heihei.core.bus import NODE_CHANNEL_LUA, node_channel
from heihei.core.presence import NODES_KEY, user_key
from heihei.protocols import sendpath

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

    writes = []
    real = sendpath.write_now
    monkeypatch.setattr(sendpath, "write_now", lambda t, data, *s: (writes.append(data), real(t, data, *s))[1])
    result = await a.hub.send_to_group(REALM, "s", "g1", ["u1", "u2", "u3", "s"], {"text": "hello"},
                                       echo_to_sender=True, client_id="c-1")
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

    again = await a.hub.send_to_group(REALM, "s", "g1", ["u1", "u2", "u3", "s"], {"text": "hello"},
                                      echo_to_sender=True, client_id="c-1")
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
