"""The service tree: listeners, health, metrics, hardened WebSocket defaults, shutdown."""

import json

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

from heihei.net.websocket import BaseProtocol
from heihei.store.client import StoreUnavailable
from tests.conftest import http_url, ws_url
from tests.helpers import sleep, wait_until
from tests.wsclient import WSError, connect


@pytest_twisted.ensureDeferred
async def test_every_listener_answers(nodes):
    node = await nodes.start()
    response = await treq.get(http_url(node, "/healthz"))
    assert response.code == 200
    body = json.loads(await response.text())
    assert body["node"] == "a"
    assert body["redis"]["reachable"] is True
    assert set(body["connections"]) == {"live", "boss", "jim", "channel"}
    assert body["uptime_s"] >= 0

    for listener, path in [("live", "/"), ("jim", "/?token=x"), ("boss", "/entry"), ("boss", "/wsim/entry"),
                           ("http", "/ws/channel")]:
        try:
            client = await connect(ws_url(node, listener, path))
        except WSError as e:
            # realms that authenticate in the handshake refuse an unknown token with 401
            assert e.status == 401, (listener, path, str(e))
            continue
        if client.protocol is not None and not client.closed.called:
            await client.close()


@pytest_twisted.ensureDeferred
async def test_metrics_are_prometheus_text(nodes):
    node = await nodes.start()
    response = await treq.get(http_url(node, "/metrics"))
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type")[0].startswith("text/plain")
    text = await response.text()
    assert 'heihei_connections{realm="live"} 0.0' in text
    assert "# TYPE heihei_deliveries_total counter" in text


@pytest_twisted.ensureDeferred
async def test_healthz_reports_unreachable_redis(nodes, tmp_path):
    from tests.conftest import node_settings
    from heihei.node import Node
    from heihei.store.embedded import free_loopback_port

    dead_port = free_loopback_port()
    node = Node(node_settings(str(tmp_path / "x"), f"redis://127.0.0.1:{dead_port}/0", "x",
                              {"redis": {"connect_timeout_s": 0.5, "reply_timeout_s": 0.5}}), reactor=reactor)
    node.startService()
    try:
        for listener in node.listeners.values():
            await listener._waitingForPort
        response = await treq.get(http_url(node, "/healthz"))
        assert response.code == 503
        assert json.loads(await response.text())["redis"]["reachable"] is False
        # a command fails within the bounded time instead of hanging
        with pytest.raises(Exception) as info:
            await node.store.get("x")
        assert info.type.__name__ == "StoreUnavailable"
    finally:
        await node.stopService()


class Echo(BaseProtocol):
    """A protocol that stays open, to exercise the factory's own limits."""

    def onMessage(self, payload, is_binary):
        self.sendMessage(payload, is_binary)


@pytest_twisted.ensureDeferred
async def test_oversize_message_is_closed_with_1009(nodes):
    node = await nodes.start(extra={"jim": {"max_message_bytes": 1024}})
    node.factories["jim"].protocol = Echo
    client = await connect(ws_url(node, "jim"))
    client.send("x" * 1000)
    assert await client.next() == "x" * 1000
    client.send("y" * 1025)
    code, _ = await client.wait_closed()
    assert code == 1009


@pytest_twisted.ensureDeferred
async def test_shutdown_says_going_away_1001(nodes):
    node = await nodes.start()
    node.factories["live"].protocol = Echo
    clients = [await connect(ws_url(node, "live")) for _ in range(3)]
    assert node.connection_counts()["live"] == 3
    await nodes.stop(node)
    for client in clients:
        code, reason = await client.wait_closed()
        assert code == 1001
        assert reason == "server shutting down"


@pytest_twisted.ensureDeferred
async def test_origin_allow_list(nodes):
    node = await nodes.start(extra={"live": {"allowed_origins": ["https://good.example:443"]}})
    with pytest.raises(WSError) as refused:
        await connect(ws_url(node, "live"), origin="https://evil.example")
    # Autobahn refuses a foreign Origin with 400 (its failHandshake default), not 403: this pins what
    # is sent today; the reason tells this refusal from any other bad handshake
    assert refused.value.status == 400, refused.value
    assert "origin 'https://evil.example' not allowed" in str(refused.value)
    ok = await connect(ws_url(node, "live"), origin="https://good.example")
    await ok.close()
    # no Origin header: a non-browser client, allowed
    plain = await connect(ws_url(node, "live"))
    await plain.close()


@pytest_twisted.ensureDeferred
async def test_connection_cap_refuses_in_handshake(nodes):
    node = await nodes.start(extra={"jim": {"max_connections": 1}})
    node.factories["jim"].countConnections = 1  # one connection already held
    with pytest.raises(WSError) as refused:
        await connect(ws_url(node, "jim"))
    assert refused.value.status == 503, refused.value
    node.factories["jim"].countConnections = 0


@pytest_twisted.ensureDeferred
async def test_embedded_redis_persists_across_restarts(tmp_path, redis):
    from heihei.node import Node
    from tests.conftest import node_settings

    data_dir = str(tmp_path / "persist")
    first = Node(node_settings(data_dir, None, ""), reactor=reactor)
    first.startService()
    await first.ready()
    node_id = first.node_id
    await first.store.set("hh:test:persist", "still here")
    await first.stopService()

    second = Node(node_settings(data_dir, None, ""), reactor=reactor)
    second.startService()
    try:
        await second.ready()
        assert await second.store.get("hh:test:persist") == "still here"
        assert second.node_id == node_id  # generated once, kept in the data dir
    finally:
        await second.stopService()


@pytest_twisted.ensureDeferred
async def test_embedded_redis_is_restarted_after_a_crash(tmp_path, redis):
    from heihei.node import Node
    from tests.conftest import node_settings

    node = Node(node_settings(str(tmp_path / "crash"), None, "c", {"redis": {"restart_delay_s": 0.1}}),
                reactor=reactor)
    node.startService()
    try:
        await node.ready()
        await node.store.set("hh:test:k", "v")
        await sleep(1.2)  # appendfsync everysec
        node.embedded_redis.kill_for_test()
        await sleep(0.3)
        await node.embedded_redis.ready()
        assert node.embedded_redis.restarts == 1

        async def read_back():
            try:
                return await node.store.get("hh:test:k")
            except StoreUnavailable:  # the pool is still reconnecting to the new redis-server
                return None

        assert await wait_until(read_back, interval_s=0.1, what="the value, read back") == "v"
    finally:
        await node.stopService()
