"""
What the four protocols share, checked once per realm through real sockets and a real Redis.

Each test is parametrized with `realms_with(<capability>)`: a realm that does
not make a promise (live has no offline storage, boss and live carry no client
message id) is not in that test's parametrization. drivers.py explains the
driver interface; test_shutdown.py has the SIGTERM case (a real twistd).
"""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
from twisted.internet import defer, task

from heihei.core.presence import NODES_KEY, node_index_key, user_key
from tests.conformance.drivers import (AUTH, BAD_FRAME, CLEANUP, CLIENT_ID, CROSS_NODE, ERROR, LOGIN_FIRST, MESSAGE,
                                       OFFLINE, OFFLINE_PULL, OVERSIZE, SILENT_PEER, Refused, realms_with)

#: messages a user gets while away, in the offline case
OFFLINE_COUNT = 5
#: the small `max_message_bytes` of the oversize case
SMALL_MESSAGE_BYTES = 1024
#: the node clock starts here in the liveness case (2023-11-14), so expiries look like real ones
T0 = 1_700_000_000
#: how many clock steps one liveness timeout is cut into, and how many timeouts the case waits at most
STEPS_PER_TIMEOUT = 8
TIMEOUTS_WAITED = 3
#: real time for a close the sweeper decided to reach the client (no clock involved any more)
CLOSE_ARRIVES_S = 2.0


@pytest.mark.parametrize("driver", realms_with(AUTH), indirect=True)
@pytest_twisted.ensureDeferred
async def test_auth_accepted_and_refused(driver, nodes):
    """Good credentials give a usable connection; bad ones are refused where the realm refuses:
    in the handshake (HTTP 401: channel, jim) or with its own login refusal (boss, live)."""
    node = await driver.start_node(nodes)
    alice = await driver.credentials(node, 0)
    session = await driver.connect(node, alice)  # raises Refused if the good credentials are not accepted
    await driver.probe(session)  # accepted means usable
    with pytest.raises(Refused) as refused:
        await driver.connect(node, driver.bad_credentials(alice))
    assert (refused.value.stage, refused.value.code) == driver.refusal
    # the refused attempt did not disturb the accepted connection
    await driver.probe(session)


@pytest.mark.parametrize("driver", realms_with(CROSS_NODE), indirect=True)
@pytest_twisted.ensureDeferred
async def test_delivery_across_two_nodes_on_one_redis(driver, nodes):
    """Nodes on one Redis are one server: a sender on `a` reaches a receiver on `b`, in order
    (live: a room message from a viewer on `a` reaches a viewer on `b`)."""
    a = await driver.start_node(nodes, "a")
    b = await driver.start_node(nodes, "b")
    alice = await driver.credentials(a, 0)
    bob = await driver.credentials(b, 1)
    receiver = await driver.connect(b, bob)
    sender = await driver.connect(a, alice)
    await driver.send(sender, bob, "across the cluster")
    await driver.send(sender, bob, "and in order")
    assert await receiver.texts_until(alice.user, "and in order") == ["across the cluster", "and in order"]


@pytest.mark.parametrize("driver", realms_with(OFFLINE), indirect=True)
@pytest_twisted.ensureDeferred
async def test_offline_messages_are_replayed_in_order_exactly_once(driver, nodes):
    """Messages to a user with no connection wait in the inbox and come at the next login
    (pushed by boss and channel, pulled with cmd 19 type 0 by jim clients), oldest first, once.
    The message sent after the login shows that nothing else (a second copy) was on its way."""
    node = await driver.start_node(nodes)
    alice = await driver.credentials(node, 0)
    bob = await driver.credentials(node, 1)
    sender = await driver.connect(node, alice)
    stored = [f"while away {n}" for n in range(OFFLINE_COUNT)]
    for text in stored:
        await driver.send(sender, bob, text)  # bob has no connection anywhere
    receiver = await driver.connect(node, bob)
    pulled = await driver.fetch_offline(receiver)  # jim pulls (cmd 19 type 0); the others push at login
    await driver.send(sender, bob, "back online")
    pushed = await receiver.texts_until(alice.user, "back online")
    assert [e.text for e in pulled] + pushed == stored + ["back online"]


@pytest.mark.parametrize("driver", realms_with(OFFLINE_PULL), indirect=True)
@pytest_twisted.ensureDeferred
async def test_pulled_offline_messages_are_not_pulled_again(driver, nodes):
    """Where the client pulls what waited for it, the pull takes it out: a second pull, or the
    next login's, does not hand the same messages out again."""
    node = await driver.start_node(nodes)
    alice = await driver.credentials(node, 0)
    bob = await driver.credentials(node, 1)
    sender = await driver.connect(node, alice)
    await driver.send(sender, bob, "pull me once")
    receiver = await driver.connect(node, bob)
    assert [e.text for e in await driver.fetch_offline(receiver)] == ["pull me once"]
    assert await driver.fetch_offline(receiver) == []
    await receiver.client.close()
    again = await driver.connect(node, bob)
    assert await driver.fetch_offline(again) == []


@pytest.mark.parametrize("driver", realms_with(CLIENT_ID), indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_repeated_client_id_is_stored_and_delivered_once(driver, nodes):
    """A client that resends after a lost acknowledgement (same jim `id` / channel `clientMsgId`)
    must not make the receiver see the message twice, now or in the stored history."""
    node = await driver.start_node(nodes)
    alice = await driver.credentials(node, 0)
    bob = await driver.credentials(node, 1)
    receiver = await driver.connect(node, bob)
    sender = await driver.connect(node, alice)
    await driver.send(sender, bob, "only once", client_id="client-id-1")
    await driver.send(sender, bob, "only once", client_id="client-id-1")  # a resend after a lost ack
    await driver.send(sender, bob, "marker")
    assert await receiver.texts_until(alice.user, "marker") == ["only once", "marker"]
    assert Counter(await driver.history(receiver, alice)) == Counter({"only once": 1, "marker": 1})


@pytest.mark.parametrize("driver", realms_with(BAD_FRAME), indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_bad_frame_gets_the_protocols_error_and_the_connection_stays(driver, nodes):
    """Clients see a refusal in the format they already parse, and one bad frame does not cost
    them the connection: the next good message is delivered."""
    node = await driver.start_node(nodes)
    alice = await driver.credentials(node, 0)
    bob = await driver.credentials(node, 1)
    receiver = await driver.connect(node, bob)
    sender = await driver.connect(node, alice)
    start = sender.mark()
    sender.send_raw(driver.bad_frame)
    answer = sender.events[await sender.wait(lambda e: e.kind == ERROR, start, what="the error frame")]
    assert answer.code == driver.bad_frame_error, answer
    await driver.send(sender, bob, "still usable")
    assert await receiver.texts_until(alice.user, "still usable") == ["still usable"]
    assert not sender.client.is_closed


@pytest.mark.parametrize("driver", realms_with(OVERSIZE), indirect=True)
@pytest_twisted.ensureDeferred
async def test_an_oversize_message_closes_with_1009(driver, nodes):
    """Each realm's `max_message_bytes` bounds what one message may make the server buffer;
    over it the connection is closed with the WebSocket code for it, 1009."""
    node = await driver.start_node(nodes, section={"max_message_bytes": SMALL_MESSAGE_BYTES})
    alice = await driver.credentials(node, 0)
    session = await driver.connect(node, alice)
    await driver.probe(session)  # frames under the cap are fine
    session.send_raw(driver.oversize_frame(2 * SMALL_MESSAGE_BYTES))
    code, _ = await session.client.wait_closed()
    assert code == 1009


@pytest.mark.parametrize("driver", realms_with(SILENT_PEER), indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_silent_peer_is_closed_on_the_node_clock(driver, nodes):
    """A peer that neither sends nor answers pings is closed once the realm's liveness
    timeout has passed on the injected clock; a peer that keeps talking is not.

    Today only boss (`dead_after`) and jim (`heartbeat_timeout`) sweep on the node clock;
    live and channel rely on Autobahn's auto-ping, which runs on real time, so their cases
    fail until they get the same clock-driven sweep (the keys they are expected to honour are
    the drivers' `liveness_settings`)."""
    clock = task.Clock()
    clock.advance(T0)
    node = await driver.start_node(nodes, section=driver.liveness_settings, clock=clock)
    silent = await driver.connect(node, await driver.credentials(node, 0), answer_pings=False)
    lively = await driver.connect(node, await driver.credentials(node, 1))
    step = driver.liveness_timeout_s / STEPS_PER_TIMEOUT
    advanced = 0.0
    while not silent.client.is_closed and advanced < TIMEOUTS_WAITED * driver.liveness_timeout_s:
        clock.advance(step)
        advanced += step
        await driver.probe(lively)  # a round trip: the node has handled this step's timers
    try:
        await silent.client.wait_closed(CLOSE_ARRIVES_S)
    except defer.TimeoutError:
        pass
    assert silent.client.is_closed, (
        f"{driver.realm}: the silent peer is still open after {advanced:.0f} s on the node clock "
        f"(liveness timeout {driver.liveness_timeout_s:.0f} s; it ignored {silent.client.pings_ignored} pings)")
    # the one that kept talking is still served
    await driver.probe(lively)
    assert not lively.client.is_closed


def presence_of(r, node_id: bytes) -> set[bytes]:
    """Every presence hash (users and rooms, all realms) holding a count for `node_id`."""
    return {k for pattern in ("hh:pres:*", "hh:room:*") for k in r.scan_iter(pattern) if r.hexists(k, node_id)}


@pytest.mark.parametrize("driver", realms_with(CLEANUP), indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_stopped_node_leaves_no_presence_in_redis(driver, nodes, redis):
    """A node that stops cleanly takes its users offline at once: the clean-up of its
    connections and its registry entry reach Redis before it lets go of Redis, so no
    `hh:pres:<realm>:<user>` or room hash keeps a count for it and `hh:nodes` forgets it."""
    node = await driver.start_node(nodes)
    users = [await driver.credentials(node, i) for i in range(2)]
    sessions = [await driver.connect(node, creds) for creds in users]
    r = redis["client"]
    node_id = node.node_id.encode()
    user_keys = {user_key(driver.realm, creds.presence_id).encode() for creds in users}
    # the checks below look where presence really is
    for k in user_keys:
        assert r.hget(k, node_id) == b"1", k
    assert user_keys <= presence_of(r, node_id)
    assert r.zscore(NODES_KEY, node_id) is not None

    await nodes.stop(node)

    for session in sessions:
        assert (await session.client.wait_closed())[0] == 1001
    assert {k: r.hgetall(k) for k in user_keys} == {k: {} for k in user_keys}
    assert presence_of(r, node_id) == set()
    assert r.zscore(NODES_KEY, node_id) is None
    assert not r.exists(node_index_key(node.node_id))


@pytest.mark.parametrize("driver", realms_with(LOGIN_FIRST), indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_login_answer_comes_before_any_message(driver, nodes):
    """Messages sent to a user while the user logs in (stored ones and live ones) all come after the
    login answer: a client that ignores frames before it (J-IM's do) loses none (issue 16)."""
    node = await driver.start_node(nodes)
    sender_creds, receiver_creds = await driver.credentials(node, 0), await driver.credentials(node, 1)
    sender = await driver.connect(node, sender_creds)
    for i in range(3):
        await driver.send(sender, receiver_creds, f"stored{i}")  # while the receiver is away
    sending = True

    async def keep_sending() -> int:
        n = 0
        while sending:
            await driver.send(sender, receiver_creds, f"live{n}")
            n += 1
        return n

    traffic = defer.ensureDeferred(keep_sending())
    receiver = await driver.connect(node, receiver_creds)
    sending = False
    sent = await traffic
    await driver.send(sender, receiver_creds, "marker")
    texts = await receiver.texts_until(sender.user, "marker")
    receiver.mark()
    first = receiver.events[0]
    assert first.kind != MESSAGE, f"{driver.realm}: a message came before the login answer: {receiver.events[:3]!r}"
    stored = [t for t in texts if t.startswith("stored")]
    live = [t for t in texts if t.startswith("live")]
    # what the realm replays at login comes in order before the live traffic, then the live traffic in order
    assert stored in ([], ["stored0", "stored1", "stored2"]), texts
    assert live == sorted(live, key=lambda t: int(t[4:])) and len(set(live)) == len(live), texts
    assert sent >= 1 and texts[-1] == "marker"
    await receiver.client.close()
    await sender.client.close()
