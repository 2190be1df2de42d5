"""
The core under faults (issue 16): a distant client, a frozen Redis, a restarted subscriber, a lost
presence decrement. Each test fails on the behaviour the fault campaign found.
"""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import task

from heihei.core.history import history_key
from heihei.core.presence import user_key
from heihei.store.client import StoreUnavailable
from tests.core.chatproto import REALM, user
from tests.helpers import sleep, wait_until
from tests.slowlink import SlowLink
from tests.wsclient import connect


@pytest_twisted.ensureDeferred
async def test_a_distant_client_that_reads_everything_is_not_cut_off(nodes, chat):
    """700 messages/s to a client whose pongs come 0.3 s late: before, every flush sent its own
    confirmation ping and the 257th unanswered one cut the client off; now at most
    MAX_CONFIRM_PINGS_IN_FLIGHT are out, each confirming everything written before it."""
    node = await nodes.start("a")
    url = chat.add(node)
    sender = await user(url, "far-sender")
    far = await connect(f"{url}?user=far", pong_delay_s=0.3)
    assert "ready" in await far.next_json()
    count = 700
    for i in range(count):
        sender.send(json.dumps({"to": "far", "text": f"m{i}"}))
        if i % 50 == 49:
            await sleep(0.05)  # about 700 per second, over many reactor iterations (many flushes)
    texts = [(await far.next_json())["text"] for _ in range(count)]
    assert texts == [f"m{i}" for i in range(count)]
    # a confirmation ping answers for many flushes: a few per round trip, not one per flush
    assert far.pings_received < count / 5, far.pings_received
    # every delivery gets confirmed in the end: the inbox empties
    await wait_until(lambda: _inbox_empty(node, "far"), timeout_s=10, what="every delivery to be confirmed")
    assert far.close_code is None
    await far.close()
    await sender.close()
    await sleep(0.4)  # the client's last late pongs


async def _inbox_empty(node, name) -> bool:
    return await node.hub.inbox.count(REALM, name) == 0


@pytest_twisted.ensureDeferred
async def test_a_write_whose_caller_gave_up_is_never_applied_later(nodes, chat, redis):
    """A slow link to Redis: the send is refused when its reply is late. The command was still on
    its way and Redis runs it after all; the script sees its caller's deadline has passed and
    refuses itself, so a client that retries as told makes no duplicate (before: a ghost write)."""
    link = await SlowLink.open(redis["port"])
    try:
        node = await nodes.start("a", {"redis": {"reply_timeout_s": 0.4, "connect_timeout_s": 0.4}},
                                 redis_url=link.url)
        url = chat.add(node)
        alice = await user(url, "alice")
        link.delay_s = 1.0
        try:
            await node.hub.send_to_user(REALM, "alice", "bob", {"text": "ghost?"})
            raise AssertionError("the send was answered through a link slower than its timeout")
        except StoreUnavailable:
            pass
        link.delay_s = 0.0
        await sleep(1.5)  # the held command has reached Redis and run
        assert not redis["client"].exists(history_key(REALM, "u:alice:bob"))  # no ghost
        await wait_until(lambda: _store_answers(node), what="the store to answer again")
        await node.hub.send_to_user(REALM, "alice", "bob", {"text": "ghost?"})  # the retry, stored once
        assert [m.body["text"] for m in await node.hub.history.latest(REALM, "u:alice:bob", 5)] == ["ghost?"]
        await alice.close()
    finally:
        await link.close()


async def _store_answers(node) -> bool:
    try:
        await node.hub.inbox.count(REALM, "bob")
        return True
    except StoreUnavailable:
        return False


@pytest_twisted.ensureDeferred
async def test_after_the_subscriber_reconnects_connected_users_get_what_they_missed(nodes, chat, redis):
    """While node b's subscriber is reconnecting, a message for b's user is stored but its bus packet
    reaches nobody; once b is subscribed again, b's connections catch up from their inboxes (before,
    the user got it only at the next login)."""
    a = await nodes.start("a")
    b = await nodes.start("b")
    sender = await user(chat.add(a), "sender")
    receiver = await user(chat.add(b), "receiver")
    assert await a.hub.presence.is_online(REALM, "receiver")
    redis["client"].execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # every subscriber, both nodes
    await a.hub.send_to_user(REALM, "sender", "receiver", {"text": "while b was away from the bus"})
    frame = await receiver.next_json(timeout=10)
    assert frame["text"] == "while b was away from the bus"
    await wait_until(lambda: _inbox_empty(b, "receiver"), what="the caught-up message to be confirmed")
    # and nothing twice: the next message is the next thing the receiver gets
    await a.hub.send_to_user(REALM, "sender", "receiver", {"text": "next"})
    assert (await receiver.next_json())["text"] == "next"
    await sender.close()
    await receiver.close()


@pytest_twisted.ensureDeferred
async def test_presence_lost_to_an_outage_is_repaired(nodes, chat, redis):
    """A user who disconnected while Redis could not take the -1 stays 'online' for everyone; the
    node's periodic assertion of its exact presence puts it right."""
    clock = task.Clock()
    node = await nodes.start("a", {"presence": {"refresh_interval_s": 10.0, "node_ttl_s": 30.0}}, clock=clock)
    chat.add(node)
    # what a lost -1 leaves behind: this node counted as holding a connection of "gone"
    redis["client"].hset(user_key(REALM, "gone"), node.node_id, 1)
    redis["client"].sadd(f"hh:nodeidx:{node.node_id}", user_key(REALM, "gone"))
    assert await node.hub.presence.is_online(REALM, "gone")
    for _ in range(3):  # ASSERT_EVERY_REFRESHES refreshes
        clock.advance(10)
        await sleep(0.05)
    await wait_until(lambda: _offline(node, "gone"), what="the stale presence to be removed")


async def _offline(node, name) -> bool:
    return not await node.hub.presence.is_online(REALM, name)


@pytest_twisted.ensureDeferred
async def test_room_messages_published_while_the_bus_was_away_are_caught_up_once(nodes, chat, redis):
    """Rooms keep no inbox: a room message published while node b's subscriber reconnects reached
    nobody on b (chaos defect 1). Once b is subscribed again it reads the room's history from just
    before the gap and delivers what its members missed; members on the sending node, who had it
    already, do not get it twice."""
    a = await nodes.start("a")
    b = await nodes.start("b")
    here = await user(chat.add(a), "here")
    there = await user(chat.add(b), "there")
    for client in (here, there):
        client.send(json.dumps({"room": "lobby", "join": True}))
        assert "joined" in await client.next_json()
    before = await a.hub.send_to_room(REALM, "here", "lobby", {"text": "before the gap"})
    assert (await there.next_json())["text"] == "before the gap"
    assert (await here.next_json())["id"] == before.message.id
    redis["client"].execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # every subscriber, both nodes
    await a.hub.send_to_room(REALM, "here", "lobby", {"text": "in the gap"})
    assert (await there.next_json(timeout=10))["text"] == "in the gap"
    assert (await here.next_json())["text"] == "in the gap"
    after = await a.hub.send_to_room(REALM, "here", "lobby", {"text": "after"})
    for client in (there, here):  # the next thing each gets: nothing twice, nothing from before the gap
        assert (await client.next_json())["id"] == after.message.id
    await here.close()
    await there.close()
