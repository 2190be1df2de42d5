"""Regressions for problems a review found in the core (each test fails without its fix)."""

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from heihei.config import ConfigError, parse_redis_url
from heihei.core.history import History, Inbox, Retention
from heihei.core.model import Message, group_conversation
from tests.core.chatproto import REALM, user
from tests.helpers import inbox_holds, sleep, wait_until
from tests.wsclient import connect


@pytest_twisted.ensureDeferred
async def test_a_large_inbox_is_replayed_in_confirmed_chunks_not_cut_off(nodes, chat):
    node = await nodes.start("a")
    url = chat.add(node, send_queue_max_bytes=256 * 1024)
    total = 3000  # ~1.5 MB of frames: six times the queue bound
    for i in range(total):
        await node.hub.send_to_user(REALM, "alice", "bob", {"text": f"{i:05d}" + "x" * 450})
    bob = await user(url, "bob")
    assert bob.pending_sent == total
    assert [f["text"][:5] for f in bob.early] == [f"{i:05d}" for i in range(total)]
    await inbox_holds(node, REALM, "bob", 0)
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_concurrent_joins_subscribe_the_node_to_the_room_exactly_once(nodes, chat):
    a, b = await nodes.start("a"), await nodes.start("b")
    url_b = chat.add(b)
    c1, c2 = await user(url_b, "c1"), await user(url_b, "c2")
    c1.send(json.dumps({"room": "r", "join": True}))
    c2.send(json.dumps({"room": "r", "join": True}))  # both joins in flight at once
    await c1.next_json()
    await c2.next_json()
    # a third member comes and goes: the node stays subscribed for the two that remain
    c3 = await user(url_b, "c3")
    c3.send(json.dumps({"room": "r", "join": True}))
    assert (await c3.next_json())["total"] == 3
    c3.send(json.dumps({"room": "r", "leave": True}))
    assert await c3.next_json() == {"left": "r", "total": 2}
    await a.hub.send_to_room(REALM, "far", "r", {"text": "from node a"})
    # each marker leaves node a after the room message, through the same Redis, to node b's one
    # subscriber connection: a second copy (a second subscription) or a copy for c3 would come first
    await a.hub.send_to_room(REALM, "far", "r", {"text": "marker"})
    await a.hub.send_to_user(REALM, "far", "c3", {"text": "marker for c3"})
    for c in (c1, c2):
        assert (await c.next_json())["text"] == "from node a"
        assert (await c.next_json())["text"] == "marker", "the room message arrived twice"
    assert (await c3.next_json())["text"] == "marker for c3", "a member who left got the room message"
    for c in (c1, c2, c3):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_presence_is_rewritten_after_redis_lost_it(nodes, chat, redis):
    clock = task.Clock()
    clock.advance(reactor.seconds())
    a = await nodes.start("a", {"presence": {"node_ttl_s": 30.0, "refresh_interval_s": 10.0}}, clock=clock)
    bob = await user(chat.add(a), "bob")
    bob.send(json.dumps({"room": "lobby", "join": True}))
    await bob.next_json()
    redis["client"].flushall()  # a Redis restart without persistence
    assert not await a.hub.presence.is_online(REALM, "bob")
    clock.advance(10)  # the next refresh notices and rewrites
    await wait_until(lambda: a.hub.presence.is_online(REALM, "bob"), what="bob's presence rewritten")
    assert await a.hub.presence.room_total(REALM, "lobby") == 1
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_shutdown_does_not_hang_on_a_client_that_stopped_reading(nodes, chat):
    node = await nodes.start("a")
    url = chat.add(node, send_queue_max_bytes=64 * 1024 * 1024)
    stuck = await connect(f"{url}?user=stuck")
    await stuck.next()
    stuck.protocol.transport.pauseProducing()
    (server_side,) = [c for port, f in chat.ports for c in f.clients]
    for _ in range(300):
        server_side.send_text("z" * 60000)  # megabytes the client will never read
        await sleep(0.002)
    stuck.protocol.closeHandshakeTimeout = 0
    stuck.protocol.serverConnectionDropTimeout = 0
    stuck.protocol.sendClose(1000)  # it says goodbye but does not read the answer
    await sleep(0.5)
    port, factory = chat.ports[0]
    closing = factory.close_all(grace_s=0.5)
    closing.addTimeout(5, reactor)
    await closing
    assert not factory.clients
    stuck.protocol.transport.abortConnection()


@pytest_twisted.ensureDeferred
async def test_small_edge_cases(nodes):
    node = await nodes.start()
    history = History(node.store, task.Clock(), Retention(dedupe_ttl_s=0))
    m = Message(realm="r", conversation=group_conversation("g"), sender="s", body={"t": 1}, kind="group",
                target="g", created_ms=1, client_id="c1")
    stored = await history.store_message(m, inbox_for=["u"])  # ttl 0: dedupe off, not a half-done store
    assert not stored.duplicate
    assert await Inbox(node.store).count("r", "u") == 1
    assert await history.latest("r", "g:g", 0) == []
    g = await node.hub.groups.create("r", {}, ["²", "10", "9"])
    assert await node.hub.groups.members("r", g) == ["9", "10", "²"]
    # two concurrent pulls never both get the same message
    inbox = Inbox(node.store)
    for i in range(20):
        await history.store_message(Message(realm="r", conversation="u:a:b", sender="a", body={"i": i},
                                            created_ms=i + 10), inbox_for=["b"])
    first, second = await defer.gatherResults([defer.Deferred.fromCoroutine(inbox.take("r", "b")),
                                               defer.Deferred.fromCoroutine(inbox.take("r", "b"))])
    assert len(first) + len(second) == 20
    assert not {m.entry for m in first} & {m.entry for m in second}


def test_redis_password_never_appears_in_errors():
    with pytest.raises(ConfigError) as info:
        parse_redis_url("redis://:s3cretPW@host:notaport/0")
    assert "s3cretPW" not in str(info.value)
    assert "redis://:***@host:notaport/0" in str(info.value)
