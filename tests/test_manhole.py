"""
End-to-end tests of the operator SSH shell, over real sockets on 127.0.0.1.

The client is paramiko (an SSH implementation independent of Twisted's), run
in a thread because it blocks; the server runs on the test's reactor.
"""

from __future__ import annotations

import io
import os
import re
import socket
import stat
import time
from dataclasses import dataclass

import paramiko
import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import keys
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from heihei.manhole import make_manhole_service
from tests.helpers import sleep

CLIENT_TIMEOUT_S = 5.0
_ANSI = re.compile(rb"\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])")


# --- fixtures and helpers ----------------------------------------------------


@pytest.fixture
def reactor():
    """
    The running reactor, checked for leaks: pytest-twisted has no dirty-reactor
    check, so whatever delayed call or socket a test leaves behind fails it.
    """
    from twisted.internet import reactor as running

    calls = set(running.getDelayedCalls())
    readers = set(running.getReaders())
    writers = set(running.getWriters())
    yield running
    assert [c for c in running.getDelayedCalls() if c not in calls] == []
    assert set(running.getReaders()) - readers == set()
    assert set(running.getWriters()) - writers == set()


@pytest.fixture
def log_events():
    """Every Twisted log event emitted during the test."""
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def _errors(events) -> list[str]:
    return [
        formatEvent(e)
        for e in events
        if e.get("log_level") in (LogLevel.error, LogLevel.critical) or "log_failure" in e
    ]


@dataclass
class ClientKey:
    paramiko_key: paramiko.PKey
    authorized_line: bytes


def _client_key() -> ClientKey:
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    private = key.toString("openssh").decode("ascii")
    return ClientKey(
        paramiko_key=paramiko.Ed25519Key.from_private_key(io.StringIO(private)),
        authorized_line=key.public().toString("openssh", comment="operator@test") + b"\n",
    )


@pytest.fixture
def operator_key() -> ClientKey:
    return _client_key()


@pytest.fixture
def stranger_key() -> ClientKey:
    return _client_key()


@pytest.fixture
def paths(tmp_path, operator_key):
    authorized = tmp_path / "authorized_keys"
    authorized.write_bytes(b"# manhole operators\n" + operator_key.authorized_line)
    return {"authorized_keys_path": str(authorized), "host_key_path": str(tmp_path / "host_key")}


async def _start(svc) -> int:
    svc.startService()
    port = await svc.when_listening()
    return port.getHost().port


class _Client:
    """A blocking SSH client; every method must run in a thread."""

    def __init__(self, port: int):
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S)
        self.transport = paramiko.Transport(self._sock)
        self._channel = None
        try:
            self.transport.start_client(timeout=CLIENT_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def login(self, key: ClientKey, username: str = "operator") -> None:
        self.transport.auth_publickey(username, key.paramiko_key)

    def open_shell(self) -> bytes:
        self._channel = self.transport.open_session(timeout=CLIENT_TIMEOUT_S)
        self._channel.get_pty(width=100, height=30)
        self._channel.invoke_shell()
        self._channel.settimeout(0.1)
        return self.read_until(b">>> ")

    def run(self, line: str, expected: bytes) -> bytes:
        """Type a line at the prompt; return the output up to C{expected}."""
        self._channel.sendall(line.encode("utf-8") + b"\r")
        return self.read_until(expected)

    def read_until(self, expected: bytes) -> bytes:
        seen = b""
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while expected not in _ANSI.sub(b"", seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {expected!r}; got {seen!r}")
            try:
                chunk = self._channel.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"channel closed before {expected!r}; got {seen!r}")
            seen += chunk
        return _ANSI.sub(b"", seen)

    def resize(self, width: int, height: int) -> None:
        self._channel.resize_pty(width=width, height=height)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self.transport.close()
        self._sock.close()


async def _in_client(port: int, work):
    """Run C{work(client)} in a thread on a fresh connection, always closing it."""

    def blocking():
        client = _Client(port)
        try:
            return work(client)
        finally:
            client.close()

    return await deferToThread(blocking)


# --- tests -------------------------------------------------------------------


class Room:
    value = 42


@pytest_twisted.ensureDeferred
async def test_authorized_key_gets_prompt_and_namespace(reactor, paths, operator_key, log_events):
    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={"obj": Room()}, reactor=reactor, **paths)
    port = await _start(svc)
    try:

        def session(client):
            client.login(operator_key)
            client.open_shell()
            # Stock Twisted raises NotImplementedError on a window change.
            client.resize(120, 40)
            return client.run("obj.value * 2", b"84")

        output = await _in_client(port, session)
    finally:
        await svc.stopService()
    assert b"84" in output.split(b"obj.value * 2", 1)[1]
    assert _errors(log_events) == []


@pytest_twisted.ensureDeferred
async def test_coroutine_at_prompt_is_run_and_its_result_shown(reactor, paths, operator_key, log_events):
    async def ping(n):
        await sleep(0)
        return f"pong-{n}"

    async def explode():
        await sleep(0)
        raise ValueError("kaboom")

    namespace = {"ping": ping, "explode": explode}
    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace=namespace, reactor=reactor, **paths)
    port = await _start(svc)
    try:

        def session(client):
            client.login(operator_key)
            client.open_shell()
            return client.run("ping(7)", b"called back: 'pong-7'"), client.run("explode()", b"failed: 'kaboom'")

        output, failed = await _in_client(port, session)
    finally:
        await svc.stopService()
    # Shown first as pending, then completed: it really ran asynchronously.
    assert re.search(rb"<Deferred #(\d+)>.*Deferred #\1 called back: 'pong-7'", output, re.S), output
    assert b"coroutine object" not in output
    assert re.search(rb"<Deferred #(\d+)>.*Deferred #\1 failed: 'kaboom'", failed, re.S), failed
    assert _errors(log_events) == []


@pytest_twisted.ensureDeferred
async def test_result_after_operator_left_is_logged_not_written(reactor, paths, operator_key, log_events):
    gate = Deferred()

    async def slow():
        return await gate

    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={"slow": slow}, reactor=reactor, **paths)
    port = await _start(svc)
    try:

        def session(client):
            client.login(operator_key)
            client.open_shell()
            client.run("slow()", b"<Deferred #0>")

        await _in_client(port, session)
    finally:
        # Returns once the server has seen the session go.
        await svc.stopService()
    gate.callback("too late")
    assert _errors(log_events) == []
    late = [formatEvent(e) for e in log_events if "after the session closed" in e.get("log_format", "")]
    assert len(late) == 1 and "too late" in late[0]


@pytest_twisted.ensureDeferred
async def test_unknown_key_is_refused(reactor, paths, stranger_key):
    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={}, reactor=reactor, **paths)
    port = await _start(svc)
    try:

        def session(client):
            with pytest.raises(paramiko.AuthenticationException):
                client.login(stranger_key)
            return client.transport.is_authenticated()

        authenticated = await _in_client(port, session)
    finally:
        await svc.stopService()
    assert authenticated is False


@pytest_twisted.ensureDeferred
async def test_authorized_keys_are_reread_on_every_login(reactor, paths, stranger_key):
    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={"x": 5}, reactor=reactor, **paths)
    port = await _start(svc)
    try:

        def refused(client):
            with pytest.raises(paramiko.AuthenticationException):
                client.login(stranger_key)

        await _in_client(port, refused)
        with open(paths["authorized_keys_path"], "ab") as f:
            f.write(stranger_key.authorized_line)

        def accepted(client):
            client.login(stranger_key, username="anyone-at-all")
            client.open_shell()
            return client.run("x + 1000", b"1005")

        assert b"1005" in await _in_client(port, accepted)
    finally:
        await svc.stopService()


@pytest_twisted.ensureDeferred
async def test_missing_authorized_keys_refuses_everyone_and_logs(reactor, paths, operator_key):
    os.unlink(paths["authorized_keys_path"])
    errors = []

    def observer(event):
        if event.get("log_level").name == "error" and "authorized keys" in event.get("log_format", ""):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={}, reactor=reactor, **paths)
    try:
        port = await _start(svc)
        try:

            def session(client):
                with pytest.raises(paramiko.AuthenticationException):
                    client.login(operator_key)

            await _in_client(port, session)
        finally:
            await svc.stopService()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert errors and errors[0]["path"] == paths["authorized_keys_path"]


@pytest_twisted.ensureDeferred
async def test_password_login_is_not_even_offered(reactor, paths):
    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={}, reactor=reactor, **paths)
    port = await _start(svc)
    try:

        def session(client):
            with pytest.raises(paramiko.BadAuthenticationType) as offered:
                client.transport.auth_none("operator")
            with pytest.raises(paramiko.BadAuthenticationType) as password:
                client.transport.auth_password("operator", "hunter2")
            return offered.value.allowed_types, password.value.allowed_types, client.transport.is_authenticated()

        offered, after_password, authenticated = await _in_client(port, session)
    finally:
        await svc.stopService()
    assert offered == ["publickey"]
    assert after_password == ["publickey"]
    assert authenticated is False


@pytest_twisted.ensureDeferred
async def test_host_key_is_created_private_and_reused(reactor, paths):
    def host_key(client):
        key = client.transport.get_remote_server_key()
        return key.get_name(), key.asbytes()

    first = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={}, reactor=reactor, **paths)
    try:
        first_key = await _in_client(await _start(first), host_key)
    finally:
        await first.stopService()

    assert stat.S_IMODE(os.stat(paths["host_key_path"]).st_mode) == 0o600
    on_disk = keys.Key.fromFile(paths["host_key_path"]).public().blob()

    second = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={}, reactor=reactor, **paths)
    try:
        second_key = await _in_client(await _start(second), host_key)
    finally:
        await second.stopService()

    assert first_key[0] == "ssh-ed25519"
    assert first_key == second_key
    assert first_key[1] == on_disk


@pytest_twisted.ensureDeferred
async def test_stop_closes_open_sessions(reactor, paths, operator_key):
    svc = make_manhole_service("tcp:0:interface=127.0.0.1", namespace={}, reactor=reactor, **paths)
    port = await _start(svc)
    client = await deferToThread(_Client, port)
    try:
        await deferToThread(client.login, operator_key)
        await deferToThread(client.open_shell)
        await svc.stopService()

        def wait_closed():
            deadline = time.monotonic() + CLIENT_TIMEOUT_S
            while client.transport.is_active() and time.monotonic() < deadline:
                time.sleep(0.02)
            return client.transport.is_active()

        assert await deferToThread(wait_closed) is False
    finally:
        await deferToThread(client.close)
