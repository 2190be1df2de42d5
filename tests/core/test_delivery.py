"""The messaging core end to end: real Redis, real nodes, real WebSockets."""

import json
import time

import pytest_twisted
from twisted.internet import task

from heihei.core.acks import ACK_BATCH_S, InboxAcks
from heihei.core.model import pair_conversation
from tests.core.chatproto import REALM, user
from tests.helpers import inbox_holds, sleep, wait_until
from tests.wsclient import connect


async def next_delivery(client):
    """The next delivered message, skipping the answers to the client's own commands."""
    while True:
        frame = await client.next_json()
        if "from" in frame:
            return frame


@pytest_twisted.ensureDeferred
async def test_user_on_node_a_reaches_user_on_node_b(nodes, chat):
    a, b = await nodes.start("a"), await nodes.start("b")
    alice = await user(chat.add(a), "alice")
    bob = await user(chat.add(b), "bob")
    alice.send(json.dumps({"to": "bob", "text": "hi across nodes"}))
    ack = await alice.next_json()
    assert ack["online"] == ["bob"] and ack["offline"] == []
    got = await bob.next_json()
    assert got["from"] == "alice" and got["text"] == "hi across nodes" and got["id"] == ack["ok"]
    assert got["conv"] == pair_conversation("alice", "bob")
    # and back
    bob.send(json.dumps({"to": "alice", "text": "hi back"}))
    await bob.next_json()
    assert (await alice.next_json())["text"] == "hi back"
    # delivered means confirmed: nothing is left in bob's inbox
    await inbox_holds(b, REALM, "bob", 0)
    for c in (alice, bob):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_room_members_on_both_nodes_get_every_message_exactly_once(nodes, chat):
    a, b = await nodes.start("a"), await nodes.start("b")
    url_a, url_b = chat.add(a), chat.add(b)
    members = [await user(url_a, "a1"), await user(url_a, "a2"), await user(url_b, "b1"), await user(url_b, "b2")]
    totals = []
    for m in members:
        m.send(json.dumps({"room": "lobby", "join": True}))
        totals.append((await m.next_json())["total"])
    assert totals == [1, 2, 3, 4]  # exact across nodes
    assert await a.hub.presence.room_total(REALM, "lobby") == 4
    sender = members[0]
    for i in range(5):
        sender.send(json.dumps({"room": "lobby", "text": f"m{i}"}))
    # a last message takes the same way: a copy of any of the five would arrive before it
    sender.send(json.dumps({"room": "lobby", "text": "end"}))
    for m in members:
        got = [(await next_delivery(m))["text"] for _ in range(6)]
        assert got == [f"m{i}" for i in range(5)] + ["end"], "a message arrived twice or out of order"
    history = await a.hub.history.latest(REALM, "r:lobby", 10)
    assert [h.body["text"] for h in history] == [f"m{i}" for i in range(5)] + ["end"]
    await members[3].close()
    await chat.disconnects_done()
    assert await a.hub.presence.room_total(REALM, "lobby") == 3
    for m in members[:3]:
        await m.close()


@pytest_twisted.ensureDeferred
async def test_a_crashed_node_drops_out_and_messages_to_its_users_wait_in_the_inbox(nodes, chat):
    clock = task.Clock()
    clock.advance(time.time())
    ttl = {"presence": {"node_ttl_s": 30.0, "refresh_interval_s": 10.0}}
    a = await nodes.start("a", ttl, clock=clock)
    b = await nodes.start("b", ttl, clock=clock)
    alice = await user(chat.add(a), "alice")
    bob = await user(chat.add(b), "bob")
    assert await a.hub.presence.is_online(REALM, "bob")

    b.hub.presence.stop_refreshing()  # B "crashes": no goodbye, no more heartbeats
    for _ in range(4):
        clock.advance(10)  # node A keeps refreshing on each tick
        await sleep(0.05)
    assert not await a.hub.presence.is_online(REALM, "bob")
    assert await a.hub.presence.is_online(REALM, "alice")
    alice.send(json.dumps({"to": "bob", "text": "are you there?"}))
    ack = await alice.next_json()
    assert ack["offline"] == ["bob"]
    inbox = await a.hub.inbox.pending(REALM, "bob")
    assert [m.body["text"] for m in inbox] == ["are you there?"]
    assert await a.hub.inbox.unread(REALM, "bob") == {pair_conversation("alice", "bob"): 1}

    # node B comes back under the same id: its stale entries are wiped, not resurrected
    await bob.close()
    b.hub.presence.users.clear()
    await nodes.stop(b)
    b2 = await nodes.start("b", ttl, clock=clock)
    assert not await a.hub.presence.is_online(REALM, "bob")
    # bob logs in again on the new B and gets the message that waited
    bob = await user(chat.add(b2), "bob")
    assert bob.pending_sent == 1
    assert [f["text"] for f in bob.early] == ["are you there?"]
    await sleep(0.3)  # the confirmation (bob's pong) arrives
    clock.advance(1)  # confirmed entries leave the inbox in batches, on the node's clock
    await inbox_holds(b2, REALM, "bob", 0)
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_inbox_survives_a_restart_of_the_whole_server(nodes, chat, tmp_path):
    data_dir = str(tmp_path / "aof")
    node = await nodes.start("solo", redis_url=None, data_dir=data_dir)  # embedded redis, AOF
    alice = await user(chat.add(node), "alice")
    for i in range(3):
        alice.send(json.dumps({"to": "bob", "text": f"offline {i}"}))
        assert (await alice.next_json())["offline"] == ["bob"]
    await alice.close()
    await sleep(1.1)  # appendfsync everysec
    await chat.stop_all()
    await nodes.stop(node)

    node = await nodes.start("solo", redis_url=None, data_dir=data_dir)
    bob = await user(chat.add(node), "bob")
    assert bob.pending_sent == 3
    assert [f["text"] for f in bob.early] == ["offline 0", "offline 1", "offline 2"]
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_a_connection_dropping_mid_delivery_loses_nothing(nodes, chat):
    node = await nodes.start("a")
    url = chat.add(node)
    total = 400
    for i in range(total):
        await node.hub.send_to_user(REALM, "alice", "bob", {"text": f"n{i:04d}" + "x" * 1000})
    assert await node.hub.inbox.count(REALM, "bob") == total

    # bob reads one frame of his backlog and his connection dies
    first = await connect(f"{url}?user=bob")
    seen = {json.loads(await first.next())["text"][:5]}
    first.protocol.transport.abortConnection()
    await first.wait_closed()
    await sleep(0.3)
    left = await node.hub.inbox.count(REALM, "bob")
    assert 0 < left < total + 1

    # everything bob did not confirm is still there: across both sessions he gets all of it
    second = await user(url, "bob")
    assert len(second.early) == second.pending_sent
    seen |= {f["text"][:5] for f in second.early}
    frames = [json.loads(x) for x in first.received if x.startswith("{\"from")]
    seen |= {f["text"][:5] for f in frames}
    assert seen == {f"n{i:04d}" for i in range(total)}
    await inbox_holds(node, REALM, "bob", 0)
    await second.close()


@pytest_twisted.ensureDeferred
async def test_duplicate_client_message_ids_are_stored_and_delivered_once(nodes, chat):
    node = await nodes.start("a")
    url = chat.add(node)
    alice, bob = await user(url, "alice"), await user(url, "bob")
    for _ in range(3):
        alice.send(json.dumps({"to": "bob", "text": "once", "cid": "c-1"}))
    acks = [await alice.next_json() for _ in range(3)]
    assert len({a["ok"] for a in acks}) == 1
    assert [a["dup"] for a in acks] == [False, True, True]
    assert (await bob.next_json())["text"] == "once"
    # a second copy would come the same way as this next message, and before it
    alice.send(json.dumps({"to": "bob", "text": "after"}))
    assert (await alice.next_json())["dup"] is False
    assert (await bob.next_json())["text"] == "after", "a duplicate was delivered"
    stored = await node.hub.history.latest(REALM, pair_conversation("alice", "bob"), 10)
    assert [m.body["text"] for m in stored] == ["once", "after"]  # stored once
    # the same id from another sender is a different message
    bob.send(json.dumps({"to": "alice", "text": "mine", "cid": "c-1"}))
    assert (await bob.next_json())["dup"] is False
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_a_slow_reader_is_cut_off_while_others_keep_receiving(nodes, chat):
    node = await nodes.start("a")
    url = chat.add(node, send_queue_max_bytes=256 * 1024)
    slow, fast = await user(url, "slow"), await user(url, "fast")
    for c in (slow, fast):
        c.send(json.dumps({"room": "big", "join": True}))
        await c.next_json()
    slow.protocol.transport.pauseProducing()  # stops reading its socket
    payload = "y" * 30000
    count = 200  # 6 MB: far beyond socket buffers plus the 256 KiB queue
    received = 0
    for i in range(count):
        await node.hub.send_to_room(REALM, "sender", "big", {"text": payload}, store=False)
        while fast.messages.pending:
            await fast.next()
            received += 1
    while received < count:
        await fast.next()
        received += 1
    assert received == count
    slow.protocol.transport.resumeProducing()
    code, _ = await slow.wait_closed()
    assert code == 1006  # dropped, not closed politely: it was not reading
    metric = node.metrics.registry.get_sample_value("heihei_slow_clients_disconnected_total", {"realm": REALM})
    assert metric == 1
    await fast.close()


@pytest_twisted.ensureDeferred
async def test_online_and_offline_hooks_fire_on_first_and_last_connection_only(nodes, chat):
    a, b = await nodes.start("a"), await nodes.start("b")
    events = []
    for node in (a, b):
        node.hub.on_online.append(lambda realm, u, n=node.node_id: events.append(("on", n, u)))
        node.hub.on_offline.append(lambda realm, u, n=node.node_id: events.append(("off", n, u)))
    tab1 = await user(chat.add(a), "carol")
    tab2 = await user(chat.add(b), "carol")  # second device on another node
    tab3 = await user(chat.ports and f"ws://127.0.0.1:{chat.ports[0][0].getHost().port}/", "carol")
    assert events == [("on", "a", "carol")]
    await tab1.close()
    await tab2.close()
    await chat.disconnects_done()  # both nodes have handled both closes: any hook has run
    assert events == [("on", "a", "carol")]
    await tab3.close()
    await chat.disconnects_done()
    assert events == [("on", "a", "carol"), ("off", "a", "carol")]


@pytest_twisted.ensureDeferred
async def test_group_message_reaches_online_members_and_waits_for_offline_ones(nodes, chat):
    a, b = await nodes.start("a"), await nodes.start("b")
    g = await a.hub.groups.create(REALM, {"name": "team"}, ["u1", "u2", "u3", "u4"])
    u1 = await user(chat.add(a), "u1")
    u2 = await user(chat.add(b), "u2")
    u3 = await user(chat.ports[0] and chat.add(b), "u3")
    members = await a.hub.groups.members(REALM, g)
    u1.send(json.dumps({"group": g, "members": members, "text": "hello team"}))
    ack = await u1.next_json()
    assert sorted(ack["online"]) == ["u2", "u3"] and ack["offline"] == ["u4"]
    for c in (u2, u3):
        got = await c.next_json()
        assert (got["from"], got["text"], got["kind"]) == ("u1", "hello team", "group")
    # not to the sender: a message to u1 sent after the group message is the first u1 gets
    u2.send(json.dumps({"to": "u1", "text": "marker"}))
    assert (await u2.next_json())["online"] == ["u1"]
    assert (await u1.next_json())["text"] == "marker", "the sender got a copy of its group message"
    assert [m.body["text"] for m in await a.hub.inbox.pending(REALM, "u4")] == ["hello team"]
    for c in (u1, u2, u3):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_confirmed_deliveries_leave_the_inboxes_in_batches_and_before_a_clean_stop(nodes, chat, monkeypatch):
    a, b = await nodes.start("a"), await nodes.start("b")
    url_a, url_b = chat.add(a), chat.add(b)
    alice = await user(url_a, "alice")
    readers = [await user(url_b, name) for name in ("r1", "r2", "r3")]
    calls = []
    real = b.hub.inbox.ack_many
    monkeypatch.setattr(b.hub.inbox, "ack_many", lambda realm, by_user: (calls.append(by_user), real(realm, by_user))[1])
    # node b's batch timer on a clock of our own: the batch ends when the test says so
    batch_clock = task.Clock()
    b.hub.acks = InboxAcks(b.hub.inbox, batch_clock)
    for i in range(5):
        for r in ("r1", "r2", "r3"):
            alice.send(json.dumps({"to": r, "text": f"{r}-{i}"}))
    for name, reader in zip(("r1", "r2", "r3"), readers):
        assert [(await reader.next_json())["text"] for _ in range(5)] == [f"{name}-{i}" for i in range(5)]
    pending = lambda: sum(map(len, b.hub.acks.pending.get(REALM, {}).values()))  # noqa: E731
    removed = lambda: sum(len(entries) for c in calls for entries in c.values())  # noqa: E731
    await wait_until(lambda: pending() + removed() == 15, what="all 15 deliveries confirmed by pong")
    assert calls == [], "confirmations were removed before the end of their batch"
    assert len(batch_clock.getDelayedCalls()) == 1  # one timer for the whole batch
    batch_clock.advance(ACK_BATCH_S)
    for r in ("r1", "r2", "r3"):
        await inbox_holds(b, REALM, r, 0)
    # one Redis call removed the 15 confirmations of the three readers
    assert [{user: len(entries) for user, entries in c.items()} for c in calls] == [{"r1": 5, "r2": 5, "r3": 5}]

    # confirmed but not removed yet when the node stops (the batch clock does not move): a clean
    # stop removes them first
    alice.send(json.dumps({"to": "r1", "text": "last"}))
    assert (await readers[0].next_json())["text"] == "last"
    await wait_until(lambda: b.hub.acks.pending, what="the confirmation of 'last'")
    assert await b.hub.inbox.count(REALM, "r1") == 1
    await nodes.stop(b)
    assert await a.hub.inbox.count(REALM, "r1") == 0
    for c in [alice, *readers]:
        await c.close()
