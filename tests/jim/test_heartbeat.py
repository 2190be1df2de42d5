"""cmd 13 heartbeats and `[jim] heartbeat_timeout`, driven by task.Clock."""

import pytest_twisted
from twisted.internet import task

from tests.helpers import sleep
from tests.jim.helpers import ask, extra, login, register


@pytest_twisted.ensureDeferred
async def test_silent_connections_are_closed_and_heartbeats_keep_them(nodes):
    clock = task.Clock()
    clock.advance(1_700_000_000)
    node = await nodes.start("a", extra(heartbeat_timeout=120.0), clock=clock)
    await register(node, "lively")
    await register(node, "silent")
    lively, silent = await login(node, "tok-lively"), await login(node, "tok-silent", answer_pings=False)
    # the sweeper looks every timeout/4 = 30 s: silent for > 120 s is seen at 150 s
    for step in range(1, 16):  # 10 s steps; the presence refresh ticks along
        clock.advance(10)
        await sleep(0.02)
        if step % 3 == 0:
            beat = await ask(lively, {"cmd": 13, "hbbyte": "-127"})
            assert beat == {"command": 13, "data": {"createTime": int(clock.seconds() * 1000), "hbbyte": -128}}
        if step == 12:
            assert silent.close_code is None  # 120 s is not yet too long
    code, reason = await silent.wait_closed()
    assert code == 4000 and reason == "heartbeat timeout"
    assert lively.close_code is None
    await sleep(0.1)
    assert not await node.hub.presence.is_online("jim", "silent")
    assert await node.hub.presence.is_online("jim", "lively")
    # any frame counts as a sign of life, not only cmd 13
    for _ in range(12):
        clock.advance(10)
        await sleep(0.02)
        assert (await ask(lively, {"cmd": 99}))["code"] == 10017
    assert lively.close_code is None
    await lively.close()


@pytest_twisted.ensureDeferred
async def test_heartbeat_timeout_zero_never_closes(nodes):
    clock = task.Clock()
    node = await nodes.start("a", extra(heartbeat_timeout=0), clock=clock)
    await register(node, "u")
    u = await login(node, "tok-u")
    clock.advance(3600)
    await sleep(0.1)
    assert u.close_code is None
    assert (await ask(u, {"cmd": 13}))["command"] == 13
    await u.close()


@pytest_twisted.ensureDeferred
async def test_a_page_answering_the_servers_pings_is_not_silent(nodes):
    # J-IM's demo page sends cmd 13 only from a button; the browser still answers the server's
    # WebSocket pings by itself, so an open page must not be dropped after heartbeat_timeout
    clock = task.Clock()
    clock.advance(1_700_000_000)
    node = await nodes.start("a", extra(heartbeat_timeout=120.0, insecure_login=True), clock=clock)
    reader = await login(node, query="username=reader&password=123")
    silent = await login(node, query="username=silent&password=123", answer_pings=False)
    for _ in range(20):  # 200 s without a single frame from either client
        clock.advance(10)  # the server pings every auto_ping_interval_s (30 s) on its clock ...
        await sleep(0.05)  # ... and the reader's pong comes back
    assert reader.pings_ignored == 0 and silent.pings_ignored >= 3
    assert (await silent.wait_closed()) == (4000, "heartbeat timeout")
    assert reader.close_code is None
    assert (await ask(reader, '{"cmd":13,"hbbyte":"-127"}'))["command"] == 13
    await reader.close()
