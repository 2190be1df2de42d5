"""
Operator SSH shell: a Python prompt inside the running server.

Why: live debugging of rooms, presence and connections without a restart.
An operator logs in with `ssh -p PORT anyname@host` and gets Twisted's
ColoredManhole, with the service objects handed to `make_manhole_service`
in scope.

What is promised:

- Public-key login only. Keys come from one OpenSSH `authorized_keys` file
  that is read again on every login attempt, so granting or revoking access is
  an edit of that file. Any username is accepted for a listed key. Password and
  keyboard-interactive login are not offered at all. If the file is missing or
  unreadable, everyone is refused and an error is logged.
- Lines of that file with OpenSSH options (`from="..." ssh-ed25519 ...`) are
  skipped (Twisted cannot parse them): an option meant as a restriction must
  never become a wider grant.
- The host key lives at `host_key_path`. If the file is absent at start-up, an
  ed25519 key is generated and written there with mode 0600, and reused on
  every later start, so operators' `known_hosts` stay valid.
- An expression that evaluates to a coroutine (`room.close_all()` where
  `close_all` is `async def`) is run, and its result is printed when it
  completes, just like the manhole prints the result of a Deferred.
- Stopping the service closes the listening port and then every open operator
  session; the `stopService` Deferred fires once they are all gone.
"""

from __future__ import annotations

import inspect
import os
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.application import strports
from twisted.application.service import MultiService
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker, readAuthorizedKeyFile
from twisted.conch.insults import insults
from twisted.conch.interfaces import IConchUser
from twisted.conch.manhole import ColoredManhole, ManholeInterpreter
from twisted.conch.manhole_ssh import ConchFactory, TerminalRealm, TerminalSession
from twisted.conch.ssh import connection, keys, transport, userauth
from twisted.conch.ssh.common import getNS
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

_log = Logger()

# Twisted's default is ten hours: an unauthenticated connection should not
# hold a socket that long.
LOGIN_TIMEOUT_S = 60
# On shutdown, sessions get this long to receive the disconnect message before
# their TCP connection is aborted, so a stalled client cannot hang the stop.
SHUTDOWN_GRACE_S = 2.0


def make_manhole_service(
    description: str,
    authorized_keys_path: str,
    host_key_path: str,
    namespace: dict[str, Any],
    reactor: Any,
) -> ManholeService:
    """
    Build (not start) the operator SSH shell service.

    @param description: a Twisted server endpoint string, e.g.
        C{"tcp:2222:interface=127.0.0.1"}. It goes through
        L{strports.service}, so a taken port fails start-up.
    @param authorized_keys_path: OpenSSH authorized_keys file, re-read on
        every login attempt.
    @param host_key_path: private host key; created (ed25519, mode 0600) at
        start-up if absent.
    @param namespace: names visible at the prompt. Each session gets a shallow
        copy: the objects are the live ones, but names an operator assigns stay
        in their own session.
    @param reactor: used for listening and for the login timeout.

    @return: a L{ManholeService}; its C{when_listening()} gives the listening
        port (tests use it to learn the port number behind C{tcp:0}).
    """
    realm = _ManholeRealm(namespace)
    checker = SSHPublicKeyChecker(_AuthorizedKeysFile(authorized_keys_path))
    factory = _ManholeFactory(Portal(realm, [checker]), reactor)
    return ManholeService(description, factory, host_key_path, reactor)


# --- the service -------------------------------------------------------------


class ManholeService(MultiService):
    """
    The manhole listener plus the lifetime of its host key and sessions.

    It wraps the L{strports.service} listener (its only child) to load the host
    key just before listening, to expose the listening port, and to close the
    operator sessions on stop, which a bare listener service leaves open.
    """

    def __init__(self, description: str, factory: _ManholeFactory, host_key_path: str, reactor: Any):
        super().__init__()
        self._factory = factory
        self._host_key_path = host_key_path
        self._listener = strports.service(description, factory, reactor=reactor)
        self._listener.setServiceParent(self)
        self._port: IListeningPort | None = None
        self._port_waiters: list[Deferred[IListeningPort | None]] = []
        self._watching_listener = False

    def privilegedStartService(self) -> None:
        # Under twistd this runs before privileges are dropped, so a host key
        # readable by root only still loads.
        self._factory.use_host_key(_load_or_create_host_key(self._host_key_path))
        super().privilegedStartService()
        self._watch_listener()

    def startService(self) -> None:
        if not self._factory.has_host_key():
            # Started without privilegedStartService (plain startService).
            self._factory.use_host_key(_load_or_create_host_key(self._host_key_path))
        super().startService()
        self._watch_listener()

    def when_listening(self) -> Deferred[IListeningPort | None]:
        """
        Fire with the L{IListeningPort} once the service listens.

        Fires with None if listening failed without raising (a start-up
        failure normally raises from C{startService} itself). It may be called
        before or after C{startService}; after C{stopService} it waits for the
        next start.
        """
        if self._port is not None:
            return succeed(self._port)
        d: Deferred[IListeningPort | None] = Deferred()
        self._port_waiters.append(d)
        return d

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await super().stopService()
        self._port = None
        self._watching_listener = False
        await self._factory.disconnect_all()

    def _watch_listener(self) -> None:
        # StreamServerEndpointService documents _waitingForPort; it fires with
        # the port, or None when a failure was already reported. stopService
        # later replaces its result with None, so the port is captured now.
        waiting = self._listener._waitingForPort
        if waiting is None or self._watching_listener:
            return
        self._watching_listener = True

        def listening(port: IListeningPort | None) -> IListeningPort | None:
            self._port = port
            waiters, self._port_waiters = self._port_waiters, []
            for d in waiters:
                d.callback(port)
            return port

        waiting.addCallback(listening)


def _load_or_create_host_key(path: str) -> keys.Key:
    """
    Return the private host key at C{path}, creating it first if absent.

    Creation uses O_EXCL with mode 0600 from the start, so the key is never
    readable by others, not even for a moment, and two processes racing on
    the first start cannot overwrite each other's key.
    """
    try:
        key = keys.Key.fromFile(path)
    except FileNotFoundError:
        pass
    else:
        if os.stat(path).st_mode & 0o077:
            _log.warn("manhole host key {path} is readable by other users", path=path)
        return key

    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return keys.Key.fromFile(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key.toString("openssh"))
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        # A half-written key would break every later start.
        os.unlink(path)
        raise
    _log.info(
        "manhole generated host key {path} ({fingerprint})",
        path=path,
        fingerprint=_fingerprint(key),
    )
    return key


def _fingerprint(key: keys.Key) -> str:
    """The same SHA256 form `ssh-keygen -l` and OpenSSH's own logs print."""
    return "SHA256:" + key.fingerprint(keys.FingerprintFormats.SHA256_BASE64)


# --- authentication ----------------------------------------------------------


@implementer(IAuthorizedKeysDB)
class _AuthorizedKeysFile:
    """
    One authorized_keys file, for every username, read on every call.

    Reading each time is what lets an operator revoke a key without a
    restart; the file is small and logins are rare, so the blocking read in
    the reactor thread is acceptable.
    """

    def __init__(self, path: str):
        self._path = path

    def getAuthorizedKeys(self, username: bytes) -> list[keys.Key]:
        try:
            with open(self._path, "rb") as f:
                return list(readAuthorizedKeyFile(f))
        except OSError as e:
            _log.error(
                "cannot read manhole authorized keys {path} ({error}): refusing every login",
                path=self._path,
                error=e,
            )
            return []


class _ManholeUserAuth(userauth.SSHUserAuthServer):
    """
    Userauth with the injected clock, a short login timeout and login logs.

    The methods offered to clients come from the portal's checkers: with only
    the public-key checker, "publickey" is the only method ever offered.
    """

    loginTimeout = LOGIN_TIMEOUT_S

    def __init__(self, clock: IReactorTime):
        self.clock = clock

    def auth_publickey(self, packet: bytes) -> Deferred[Any]:
        d = super().auth_publickey(packet)
        if packet[0:1] == b"\x00":
            # "Would you accept this key?" query: no login happens here.
            return d
        user = self.user.decode("utf-8", "replace")
        peer = _peer(self.transport)
        try:
            fingerprint = _fingerprint(keys.Key.fromString(getNS(packet[1:], 2)[1]))
        except Exception:
            fingerprint = "<unparseable key>"

        def succeeded(result: Any) -> Any:
            _log.info(
                "manhole login: user {user} with key {fingerprint} from {peer}",
                user=user,
                fingerprint=fingerprint,
                peer=peer,
            )
            if isinstance(self.transport, _ManholeTransport):
                self.transport.login = f"{user} ({fingerprint})"
            return result

        def failed(reason: Failure) -> Failure:
            if reason.check(UnauthorizedLogin):
                _log.warn(
                    "manhole login refused: user {user} with key {fingerprint} from {peer}",
                    user=user,
                    fingerprint=fingerprint,
                    peer=peer,
                )
            return reason

        return d.addCallbacks(succeeded, failed)


def _peer(ssh_transport: Any) -> str:
    try:
        return str(ssh_transport.transport.getPeer())
    except Exception:
        return "<unknown peer>"


# --- SSH plumbing ------------------------------------------------------------


class _ManholeTransport(transport.SSHServerTransport):
    """Server transport that tells its factory when it comes and goes."""

    login: str | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.connection_made(self)

    def connectionLost(self, reason: Failure) -> None:
        try:
            super().connectionLost(reason)
        finally:
            if self.login is not None:
                _log.info("manhole session of {login} from {peer} closed", login=self.login, peer=_peer(self))
            self.factory.connection_lost(self)


class _ManholeFactory(ConchFactory):
    """
    ConchFactory with one host key, the injected reactor, and a record of live
    connections so that stopping the service can close them.
    """

    protocol = _ManholeTransport

    def __init__(self, portal: Portal, reactor: Any):
        super().__init__(portal)
        self._reactor = reactor
        # ConchFactory keeps these as class attributes shared by every
        # instance: give this factory its own.
        self.publicKeys: dict[bytes, keys.Key] = {}
        self.privateKeys: dict[bytes, keys.Key] = {}
        self.services = {
            b"ssh-userauth": partial(_ManholeUserAuth, reactor),
            b"ssh-connection": connection.SSHConnection,
        }
        self._connections: dict[_ManholeTransport, list[Deferred[None]]] = {}

    def use_host_key(self, key: keys.Key) -> None:
        self.privateKeys = {key.sshType(): key}
        self.publicKeys = {key.sshType(): key.public()}

    def has_host_key(self) -> bool:
        return bool(self.privateKeys)

    def connection_made(self, conn: _ManholeTransport) -> None:
        self._connections[conn] = []

    def connection_lost(self, conn: _ManholeTransport) -> None:
        for d in self._connections.pop(conn, []):
            d.callback(None)

    async def disconnect_all(self) -> None:
        """
        Close every connection and wait until all are gone.

        Each client is sent an SSH disconnect message first; whoever has not
        gone after L{SHUTDOWN_GRACE_S} is aborted.
        """
        if not self._connections:
            return
        gone = []
        for conn, waiters in list(self._connections.items()):
            d: Deferred[None] = Deferred()
            waiters.append(d)
            gone.append(d)
            conn.sendDisconnect(transport.DISCONNECT_BY_APPLICATION, b"manhole is shutting down")

        def abort_stragglers() -> None:
            for conn in list(self._connections):
                conn.transport.abortConnection()

        timer = self._reactor.callLater(SHUTDOWN_GRACE_S, abort_stragglers)
        try:
            await gatherResults(gone)
        finally:
            if timer.active():
                timer.cancel()


class _TerminalSession(TerminalSession):
    """
    TerminalSession that survives what stock Twisted leaves unimplemented:
    a resized terminal, an EOF from the client, and (most important) telling
    the shell that its session is gone, so late output is not written to a
    closed channel.
    """

    # Used when the client asks for a shell without a pty.
    width = 80
    height = 24
    _terminal: insults.ServerProtocol | None = None

    def openShell(self, proto: Any) -> None:
        self._terminal = self.chainedProtocolFactory()
        self.transportFactory(proto, self._terminal, IConchUser(self.original), self.width, self.height)

    def windowChanged(self, newWindowSize: tuple[int, ...]) -> None:
        self.height, self.width = newWindowSize[:2]
        if self._terminal is not None and self._terminal.terminalProtocol is not None:
            self._terminal.terminalProtocol.terminalSize(self.width, self.height)

    def eofReceived(self) -> None:
        # The client closed its input: like ^D at the prompt.
        if self._terminal is not None:
            self._terminal.loseConnection()

    def closed(self) -> None:
        terminal, self._terminal = self._terminal, None
        if terminal is not None:
            terminal.connectionLost(Failure(ConnectionDone("manhole session closed")))


class _ManholeRealm(TerminalRealm):
    sessionFactory = _TerminalSession

    def __init__(self, namespace: dict[str, Any]):
        super().__init__()
        self.chainedProtocolFactory = lambda: insults.ServerProtocol(_Manhole, namespace)


# --- the shell ---------------------------------------------------------------


class _CoroutineInterpreter(ManholeInterpreter):
    """
    ManholeInterpreter that runs a coroutine typed at the prompt.

    Without this, `some_async_fn()` would print `<coroutine object ...>` and
    never run (plus a "never awaited" warning). Wrapped in a Deferred, it is
    shown the way the manhole shows Deferreds: `<Deferred #N>` now, then
    `Deferred #N called back: result` when it completes.
    """

    def displayhook(self, obj: Any) -> None:
        if not inspect.iscoroutine(obj):
            super().displayhook(obj)
            return
        d = Deferred.fromCoroutine(obj)
        super().displayhook(d)
        # The operator has seen the failure on their terminal; nobody else
        # holds this Deferred, so without this it would also be logged as an
        # "Unhandled error in Deferred" when garbage collected.
        d.addErrback(lambda _failure: None)


class _Manhole(ColoredManhole):
    """ColoredManhole with coroutine support and no writes after disconnect."""

    _gone = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.interpreter = _CoroutineInterpreter(self, self.namespace)

    def connectionLost(self, reason: Failure) -> None:
        self._gone = True
        super().connectionLost(reason)

    def addOutput(self, data: str | bytes, isAsync: bool | None = None) -> None:
        if self._gone:
            # A Deferred or coroutine finished after the operator left.
            _log.info("manhole output after the session closed: {output!r}", output=data)
            return
        super().addOutput(data, isAsync)


__all__ = ["make_manhole_service", "ManholeService", "LOGIN_TIMEOUT_S", "SHUTDOWN_GRACE_S"]
