"""Heartbeat frames and dead-peer detection, driven by a task.Clock."""

import pytest_twisted
from twisted.internet import task

from tests.boss.conftest import boss_settings, inputs_done, login
from tests.conftest import ws_url
from tests.helpers import sleep, wait_until
from tests.wsclient import connect


async def answered(alice, anonymous) -> None:
    """The next frame of each is the answer to a request sent now, not a heartbeat."""
    await inputs_done(alice)
    anonymous.send("members_404")
    assert await anonymous.next() == "error_401_not logged in"


@pytest_twisted.ensureDeferred
async def test_heartbeat_frames_every_interval_on_the_node_clock(nodes):
    clock = task.Clock()
    # (no login deadline here: the anonymous connection must live long enough to see heartbeats)
    node = await nodes.start("a", boss_settings(heartbeat_interval=30.0, dead_after=90.0, login_timeout_s=0),
                             clock=clock)
    alice = await login(node, "1")
    anonymous = await connect(ws_url(node, "boss", "/entry"))  # not logged in: probed too
    # a heartbeat is written as the clock moves, so one due by now would come before these answers
    await answered(alice, anonymous)
    clock.advance(29.9)
    await answered(alice, anonymous)
    clock.advance(0.1)
    assert await alice.next() == "heartbeat_1"
    assert await anonymous.next() == "heartbeat_1"
    clock.advance(30)
    assert await alice.next() == "heartbeat_2"
    assert await anonymous.next() == "heartbeat_2"
    # each heartbeat is followed by a ping the client answers: both stay alive past dead_after
    for n in range(3, 7):
        await sleep(0.05)  # let the pong come back
        clock.advance(30)
        assert await alice.next() == f"heartbeat_{n}"
        assert await anonymous.next() == f"heartbeat_{n}"
    assert alice.protocol.state == alice.protocol.STATE_OPEN
    assert node.hub.presence.local("boss", "1")
    await alice.close()
    await anonymous.close()


@pytest_twisted.ensureDeferred
async def test_a_silent_peer_is_closed_and_goes_offline(nodes):
    clock = task.Clock()
    node = await nodes.start("a", boss_settings(heartbeat_interval=30.0, dead_after=90.0), clock=clock)
    alive = await login(node, "1")
    dead = await login(node, "2")
    assert await node.hub.presence.is_online("boss", "2")
    dead.protocol.transport.pauseProducing()  # reads nothing, answers no ping: a dead peer
    for n in range(1, 4):
        clock.advance(30)
        assert await alive.next() == f"heartbeat_{n}"
        await sleep(0.05)
    # 90 s of silence are not yet "more than 90 s"
    assert node.hub.presence.local("boss", "2")
    clock.advance(31)
    assert await alive.next() == "heartbeat_4"
    await wait_until(lambda: not node.hub.presence.local("boss", "2"), what="the silent peer to go")
    assert not await node.hub.presence.is_online("boss", "2")
    dead.protocol.transport.resumeProducing()
    code, _ = await dead.wait_closed()
    assert code != 1000  # dropped, not a clean close
    # the live one, which answered every ping, is still here
    assert node.hub.presence.local("boss", "1")
    alive.send("text_2_are you there_unicast_")
    await inputs_done(alive)
    assert await node.hub.inbox.count("boss", "2") == 1  # stored for later
    await alive.close()


@pytest_twisted.ensureDeferred
async def test_any_frame_counts_as_life(nodes):
    clock = task.Clock()
    node = await nodes.start("a", boss_settings(heartbeat_interval=0.0, dead_after=60.0), clock=clock)
    chatty = await login(node, "1")
    quiet = await login(node, "2")
    for _ in range(4):  # no heartbeats (interval 0): only the client's own frames keep it alive
        clock.advance(20)
        chatty.send("members_404")
        assert await chatty.next() == "error_404_no such group 404"
    await wait_until(lambda: not node.hub.presence.local("boss", "2"), what="the quiet one to go")
    assert node.hub.presence.local("boss", "1")
    await quiet.wait_closed()
    await chatty.close()


@pytest_twisted.ensureDeferred
async def test_a_connection_that_does_not_log_in_is_closed_and_holds_only_a_small_message(nodes):
    clock = task.Clock()
    node = await nodes.start("a", boss_settings(login_timeout_s=30.0, heartbeat_interval=0), clock=clock)
    lingering = await connect(ws_url(node, "boss", "/entry"))
    big = await connect(ws_url(node, "boss", "/entry"))
    alice = await login(node, "1")
    # before login a message over [boss] pre_login_max_message_bytes (8 KiB) closes the connection ...
    big.send("text_2_" + "x" * 9000 + "_unicast")
    assert (await big.wait_closed())[0] == 1009
    # ... after login the realm's own sizes hold (64 KiB frames answered, not closed)
    alice.send("text_2_" + "x" * 9000 + "_unicast")
    alice.send("members_1")
    assert await alice.next() == "error_404_no such group 1"
    clock.advance(29)
    await answered(alice, lingering)
    clock.advance(1)  # 30 s after it opened, still anonymous
    assert await lingering.next() == "error_401_no login within 30 s"
    assert (await lingering.wait_closed())[0] == 4401
    assert alice.close_code is None
    await alice.close()
