"""
Shared fixtures: a real redis-server for the session, whole nodes on
ephemeral loopback ports, and a leak check after every test.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

import pytest
import pytest_twisted
import redis as redis_sync
from treq.api import set_global_pool
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool

from heihei.config import build_settings
from heihei.node import Node
from heihei.store.embedded import free_loopback_port, redis_server_binary
from tests.helpers import sleep

LOOPBACK = "tcp:0:interface=127.0.0.1"

# treq's default pool keeps connections open across tests, which the leak
# check would (rightly) report; tests open a fresh connection per request.
set_global_pool(HTTPConnectionPool(reactor, persistent=False))
LEAK_GRACE_S = 2.0


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server (the embedded binary) on a free port, for the whole session."""
    tmp = tempfile.mkdtemp(prefix="heihei-redis-")
    port = free_loopback_port()
    proc = subprocess.Popen(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", tmp, "--save", "",
         "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis_sync.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis_sync.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("test redis-server did not start")
            time.sleep(0.05)
    yield {"url": f"redis://127.0.0.1:{port}/0", "port": port, "client": client}
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def redis(redis_server):
    """The session Redis, emptied for this test; a synchronous client for checks."""
    redis_server["client"].flushall()
    return redis_server


def node_settings(data_dir: str, redis_url: str | None, node_id: str, extra: dict | None = None):
    layers = [{"server": {"http": LOOPBACK, "live": LOOPBACK, "boss": LOOPBACK, "jim": LOOPBACK,
                          "data_dir": data_dir, "node_id": node_id, "redis": redis_url or ""}}]
    if extra:
        layers.append(extra)
    return build_settings(layers)


class NodeFactory:
    """Starts nodes for one test and stops them all at its end."""

    def __init__(self, tmp_path, redis_url):
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.nodes: list[Node] = []

    async def start(self, name: str = "a", extra: dict | None = None, *, redis_url: str | None = "default",
                    data_dir: str | None = None, clock=None) -> Node:
        """A node named `name` (also its node id); `clock` drives its timers (default: real time)."""
        url = self.redis_url if redis_url == "default" else redis_url
        settings = node_settings(data_dir or str(self.tmp_path / name), url, name, extra)
        node = Node(settings, reactor=reactor, clock=clock)
        node.startService()
        self.nodes.append(node)
        await node.ready()
        return node

    async def stop(self, node: Node) -> None:
        if node in self.nodes:
            self.nodes.remove(node)
            await node.stopService()

    async def stop_all(self) -> None:
        for node in list(reversed(self.nodes)):
            await self.stop(node)


@pytest_twisted.async_yield_fixture
async def nodes(redis, tmp_path):
    factory = NodeFactory(tmp_path, redis["url"])
    yield factory
    await factory.stop_all()


def http_url(node: Node, path: str = "/", listener: str = "http") -> str:
    host, port = node.listeners[listener].address()
    return f"http://{host}:{port}{path}"


def ws_url(node: Node, listener: str, path: str = "/") -> str:
    host, port = node.listeners[listener].address()
    return f"ws://{host}:{port}{path}"


def _selectables():
    return set(reactor.getReaders()) | set(reactor.getWriters())


@pytest_twisted.async_yield_fixture(autouse=True)
async def leak_check():
    """Fail a test that leaves delayed calls or connections behind."""
    calls_before = set(reactor.getDelayedCalls())
    selectables_before = _selectables()
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        calls = [c for c in reactor.getDelayedCalls() if c not in calls_before and c.active()]
        selectables = [s for s in _selectables() - selectables_before]
        if not calls and not selectables:
            return
        if time.monotonic() > deadline:
            break
        await sleep(0.05)
    described = [f"{c.func!r} {c.args!r}" for c in calls]
    for c in calls:
        c.cancel()
    for s in selectables:
        closer = getattr(s, "abortConnection", None) or getattr(s, "stopListening", None)
        if closer is not None:
            closer()
    pytest.fail(f"test leaked delayed calls {described!r} or connections {selectables!r}")
