"""
SIGTERM to a real `twistd -n heihei`: a client of every realm gets the going-away close
(1001) and the process exits with status 0.

One process for all realms, as an operator runs it: loopback listeners, the embedded
redis-server, and a config file holding each driver's settings. The drivers reach it
through `RemoteNode`, which has the one thing of a `Node` they use: its listeners'
addresses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest_twisted
import treq
from twisted.internet import reactor, task

from tests.conformance.drivers import DRIVERS, SHUTDOWN
from tests.conftest import http_url
from tests.test_twistd import ROOT, TWISTD, listener_args

STARTUP_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 20.0
POLL_S = 0.05


class _Listener:
    def __init__(self, port: int) -> None:
        self.port = port

    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port


class RemoteNode:
    """A `twistd heihei` process as the drivers see a node."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.listeners = {name: _Listener(port) for name, port in ports.items()}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(sections: dict[str, dict]) -> str:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


async def _sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def wait_healthy(node: RemoteNode, proc, logs) -> None:
    """Poll /healthz until the process answers with Redis reachable (or give up)."""
    deadline = reactor.seconds() + STARTUP_TIMEOUT_S
    while reactor.seconds() < deadline:
        assert proc.poll() is None, f"twistd exited with {proc.returncode} at start-up:\n{logs()}"
        try:
            response = await treq.get(http_url(node, "/healthz"), timeout=2)
            body = json.loads(await response.content())
            if response.code == 200 and body["redis"]["reachable"]:
                return
        except Exception:
            pass
        await _sleep(POLL_S)
    raise AssertionError(f"twistd never became healthy:\n{logs()}")


async def wait_exit(proc) -> int | None:
    deadline = reactor.seconds() + EXIT_TIMEOUT_S
    while proc.poll() is None and reactor.seconds() < deadline:
        await _sleep(POLL_S)
    return proc.poll()


@pytest_twisted.ensureDeferred
async def test_sigterm_closes_every_realms_clients_with_1001_and_exits_0(tmp_path):
    drivers = [cls() for cls in DRIVERS if SHUTDOWN in cls.capabilities]
    sections: dict[str, dict] = {}
    for driver in drivers:
        await driver.setup()
        for section, values in driver.settings().items():
            sections.setdefault(section, {}).update(values)
    config = tmp_path / "heihei.toml"
    config.write_text(to_toml(sections))
    ports, args = listener_args()
    out_path, err_path = tmp_path / "twistd.out", tmp_path / "twistd.err"

    def logs() -> str:
        return out_path.read_text(errors="replace")[-4000:] + err_path.read_text(errors="replace")[-4000:]

    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([TWISTD, "-n", "--pidfile=", "heihei", "--config", str(config), *args,
                                 "--data-dir", str(tmp_path / "data")],
                                cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT), stdout=out, stderr=err)
    try:
        node = RemoteNode(ports)
        await wait_healthy(node, proc, logs)
        sessions = {}
        for driver in drivers:
            await driver.prepare(node)
            sessions[driver.realm] = await driver.connect(node, await driver.credentials(node, 0))
            await driver.probe(sessions[driver.realm])

        proc.send_signal(signal.SIGTERM)
        codes = {realm: (await session.client.wait_closed(CLOSE_TIMEOUT_S))[0]
                 for realm, session in sessions.items()}
        status = await wait_exit(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for driver in drivers:
            await driver.teardown()
    assert codes == {driver.realm: 1001 for driver in drivers}
    assert status == 0, logs()
