"""
One heihei node: the service tree behind `twistd heihei`.

`tap.makeService` builds a `Node` from settings; tests build the same object
with `127.0.0.1:0` listeners. The node owns the Redis store (and the embedded
redis-server when no `--redis` URL is given), the metrics registry, one
WebSocket factory per realm, one listener per endpoint option and, if asked,
the manhole. It contains wiring only; behaviour lives in the modules it wires.
"""

from __future__ import annotations

import os
import signal
import sys

from autobahn.twisted.resource import WebSocketResource
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet import defer, endpoints
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from heihei.config import ConfigError, Settings, parse_redis_url
from heihei.core.history import Retention
from heihei.core.grouplog import GroupRetention
from heihei.core.hub import Hub
from heihei.core.moderation import Moderation, ModerationOperators
from heihei.core.sessions import Cleanups
from heihei.demo.profile import DemoService, demo_secrets, demo_settings
from heihei.loopback import on_loopback_by_default
from heihei.metrics import Metrics
from heihei.net.websocket import HardenedFactory
from heihei.outbound import Outbound
from heihei.paths import load_or_create_secret
from heihei.realms import Core, Realm, build_realms
from heihei.store.client import Store
from heihei.store.embedded import EmbeddedRedis
from heihei.web.accesslog import redacted_log_formatter
from heihei.web.admin_cluster import ClusterAdmin
from heihei.web.admin import ADMIN, AdminFallback, ModerationAdmin, admin_gate, admin_token
from heihei.web.health import HealthApp
from heihei.web.console import console_pages
from heihei.web.limits import BoundedSite, refusal_wording
from heihei.web.root import RootResource

#: the listeners, in start order; "http" and "boss" serve a site, the others a realm's WebSockets
LISTENERS = ("http", "live", "boss", "jim")


class StartupError(Exception):
    """Start-up cannot go on; the message says what to fix."""


class Listener(StreamServerEndpointService):
    """A listener that names its option when it cannot bind, and tells its port."""

    def __init__(self, option: str, description: str, factory, reactor) -> None:
        try:
            endpoint = endpoints.serverFromString(reactor, description)
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"--{option}: bad endpoint description {description!r}: {e}") from e
        super().__init__(endpoint, factory)
        self.option = option
        self.description = description
        self._raiseSynchronously = True
        self.port = None

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise StartupError(f"cannot listen on {self.description} (--{self.option}): "
                               f"{e.socketError or e}") from None
        except Exception as e:
            raise StartupError(f"cannot listen on {self.description} (--{self.option}): {e}") from None
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, port):
        self.port = port
        return port

    def address(self) -> tuple[str, int]:
        """(host, port) actually bound, for tests and logs."""
        a = self.port.getHost()
        return a.host, a.port


class HubService(Service):
    """Starts the hub once Redis is usable; at stop, waits for the connections' clean-ups, then
    leaves the cluster, before Redis goes."""

    _log = Logger()

    def __init__(self, hub: Hub, store: Store, cleanups: Cleanups) -> None:
        self.hub = hub
        self.store = store
        self.cleanups = cleanups
        self._started: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self._started = defer.Deferred.fromCoroutine(self._start())
        self._started.addErrback(self._failed)

    async def _start(self) -> None:
        await self.store.ready()
        await self.hub.start()

    def _failed(self, failure):
        self._log.failure("the messaging hub could not start", failure=failure)
        return failure

    def ready(self) -> defer.Deferred:
        d = defer.Deferred()
        self._started.addBoth(lambda r: ((d.errback if isinstance(r, Failure) else d.callback)(r), r)[1])
        return d

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await self.cleanups.drain()
        try:
            await self.hub.stop()
        except Exception:
            self._log.failure("leaving the cluster cleanly failed")


class Node(MultiService):
    _log = Logger()

    def __init__(self, settings: Settings, *, reactor=None, clock=None, handle_signals: bool = False) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        #: time for the domain's timers and expiries (tests pass a task.Clock)
        self.clock = clock or reactor
        if settings.server.demo:
            settings = demo_settings(settings)
        self.settings = settings
        self.handle_signals = handle_signals
        server = settings.server
        self.data_dir = os.path.abspath(server.data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        if server.demo:
            settings = self.settings = demo_secrets(settings, self.data_dir)
        self.node_id = server.node_id or load_or_create_secret(self.data_dir, "node-id", 6)
        self.metrics = Metrics()
        self.started_at = reactor.seconds()
        #: every outbound HTTP service (WeChat, Weibo, SMS, push, profiles, the J-IM hook), closed at stop
        self.outbound = Outbound.from_settings(settings, reactor=reactor, clock=self.clock)

        self.embedded_redis: EmbeddedRedis | None = None
        if server.redis:
            address = parse_redis_url(server.redis)
            wait_for = None
        else:
            self.embedded_redis = EmbeddedRedis(os.path.join(self.data_dir, "redis"),
                                                appendfsync=settings.redis.appendfsync,
                                                restart_delay_s=settings.redis.restart_delay_s, reactor=reactor)
            self.embedded_redis.setServiceParent(self)
            address = self.embedded_redis.address
            wait_for = self.embedded_redis.ready
        self.store = Store(address, wait_for=wait_for, reply_timeout_s=settings.redis.reply_timeout_s,
                           connect_timeout_s=settings.redis.connect_timeout_s, pool_size=settings.redis.pool_size,
                           reactor=reactor)
        self.store.setServiceParent(self)
        m = settings.messaging
        self.hub = Hub(self.node_id, self.store, clock=self.clock, metrics=self.metrics,
                       retention=Retention(max_count=m.history_max_count, max_age_s=m.history_max_age_s,
                                           dedupe_ttl_s=m.dedupe_ttl_s, inbox_max=m.inbox_max),
                       group_retention=GroupRetention(max_count=m.group_log_max_count,
                                                      max_age_s=m.group_log_max_age_s),
                       presence_ttl_s=settings.presence.node_ttl_s,
                       presence_refresh_s=settings.presence.refresh_interval_s)
        self.hub.moderation = Moderation.from_file(settings.moderation.banned_words_file)
        self.cleanups = Cleanups()
        self.hub_service = HubService(self.hub, self.store, self.cleanups)
        self.hub_service.setServiceParent(self)

        self.admin_token = admin_token(settings.admin.token, self.data_dir)
        self.realms: list[Realm] = build_realms(Core(settings, self.hub, self.store, self.clock, reactor,
                                                     self.metrics, self.data_dir, self.cleanups, self.outbound,
                                                     self.admin_token))
        self.factories: dict[str, HardenedFactory] = {realm.name: realm.factory for realm in self.realms}
        #: operator tools per realm (and the node's banned words), in the manhole and behind the admin API
        self.operators: dict[str, object] = {realm.name: realm.operators for realm in self.realms
                                             if realm.operators is not None}
        self.operators["moderation"] = ModerationOperators(self.hub.moderation,
                                                           settings.moderation.banned_words_file)
        self.listeners: dict[str, Listener] = {}
        self._mount_and_listen()
        for realm in self.realms:
            for service in realm.services:
                service.setServiceParent(self)
        self.demo: DemoService | None = None
        if settings.server.demo:
            self.demo = DemoService(self.store, self.clock)
            self.demo.setServiceParent(self)

        self.manhole = None
        if server.manhole:
            self._add_manhole(server.manhole, server.manhole_keys)

    # -- wiring helpers ------------------------------------------------------

    def _mount_and_listen(self) -> None:
        """One site per site listener (`--http`, `--boss`) with the realms' resources on it, and
        each realm's WebSockets where it asks: at paths of a site or as a listener of its own."""
        roots = {"http": RootResource(fallback=HealthApp(self).resource()), "boss": RootResource()}
        groups = [ModerationAdmin(self.admin_token, self.operators["moderation"]), ClusterAdmin(self.admin_token, self)]
        groups += [realm.admin for realm in self.realms if realm.admin is not None]
        admin = RootResource(fallback=AdminFallback(self.admin_token, [type(g) for g in groups]).resource())
        for group in groups:
            admin.mount(group.prefix.removeprefix("/admin/"), group.resource())
        roots["http"].mount("admin", admin)
        body_bytes = {name: self.settings.http.max_body_bytes for name in roots}
        gates: dict[str, list] = {name: [] for name in roots}
        gates["http"].append(admin_gate(self.admin_token))
        surfaces: dict[str, list] = {name: [] for name in roots}
        surfaces["http"].append(("admin", ADMIN))
        for realm in self.realms:
            for mount in realm.http:
                roots[mount.listener].mount(mount.path, mount.resource)
                if mount.gate is not None:
                    gates[mount.listener].append(mount.gate)
                if mount.surface is not None:
                    surfaces[mount.listener].append((mount.path, mount.surface))
            for listener, needed in realm.body_bytes.items():
                body_bytes[listener] = max(body_bytes[listener], needed)
        if self.settings.server.demo:
            from heihei.demo.web import demo_pages

            for site in ("http", "boss"):
                roots[site].mount("demo", demo_pages(self))
        roots["http"].mount("console", console_pages())
        factories = {}
        for realm in self.realms:
            if realm.websocket_paths:
                for path in realm.websocket_paths:
                    roots[realm.listener].mount(path, WebSocketResource(realm.factory))
            else:
                factories[realm.listener] = realm.factory
        server = self.settings.server
        for option in LISTENERS:
            if option in roots:
                factory = self._site(roots[option], body_bytes[option], gates[option], surfaces[option])
            else:
                factory = factories[option]
            self._listen(option, getattr(server, option), factory)

    def _site(self, root, max_body_bytes: int, gates: list, surfaces: list):
        http = self.settings.http
        word = refusal_wording(surfaces)

        def gate(method, uri, headers):
            for one in gates:
                refusal = one(method, uri, headers)
                if refusal is not None:
                    return refusal
            return None

        site = BoundedSite(root, max_body_bytes=max_body_bytes, request_deadline_s=http.request_deadline_s,
                           reactor=self.reactor, gate=gate if gates else None, word=word,
                           logFormatter=redacted_log_formatter)
        site.timeOut = http.idle_timeout_s
        site.displayTracebacks = False
        return site

    def _listen(self, option: str, description: str, factory) -> None:
        listener = Listener(option, description, factory, self.reactor)
        listener.setServiceParent(self)
        self.listeners[option] = listener

    def _add_manhole(self, description: str, keys_file: str) -> None:
        from heihei.manhole import make_manhole_service

        if not keys_file:
            raise ConfigError("--manhole needs --manhole-keys (an OpenSSH authorized_keys file)")
        # an operator shell with the live objects: on this machine only unless an interface is named
        description = on_loopback_by_default(description)
        self.manhole = make_manhole_service(description, keys_file, os.path.join(self.data_dir, "manhole_host_key"),
                                            self.manhole_namespace(), self.reactor)
        self.manhole.setServiceParent(self)

    def manhole_namespace(self) -> dict:
        """What an operator finds at the manhole prompt."""
        return {"node": self, "store": self.store, "hub": self.hub, "settings": self.settings, "metrics": self.metrics,
                "factories": self.factories, "reactor": self.reactor, "operators": self.operators,
                "moderation": self.hub.moderation}

    # -- queries ---------------------------------------------------------------

    def connection_counts(self) -> dict[str, int]:
        return {realm: len(factory.clients) for realm, factory in self.factories.items()}

    def ready(self) -> defer.Deferred:
        """Fires when Redis is usable and every listener is bound."""
        waits = [self.store.ready(), self.hub_service.ready()] + [listener._waitingForPort for listener in self.listeners.values()]
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: self)

    # -- lifecycle ---------------------------------------------------------------

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except StartupError as e:
            if not self.handle_signals:  # in-process (tests): let the caller see it
                raise
            # under twistd a traceback would bury the one line an operator needs
            self._log.critical("heihei: {error}", error=str(e))
            sys.stderr.write(f"heihei: {e}\n")
            raise SystemExit(1) from None

    def startService(self) -> None:
        super().startService()
        for realm in self.realms:
            if realm.websocket_paths:  # a WebSocketResource does not start its factory (no port does)
                realm.factory.doStart()
        if self.handle_signals:
            self.reactor.callWhenRunning(self._install_signal_handlers)
        self._log.info("node {node} starting; listeners: {listeners}", node=self.node_id,
                       listeners=", ".join(f"{k}={v.description}" for k, v in self.listeners.items()))

    def _install_signal_handlers(self) -> None:
        # Stock twistd re-raises SIGTERM after a clean shutdown (exit status 143);
        # we promise exit 0, so we stop the reactor ourselves.
        def stop(signum, frame):
            self._log.info("signal {signum} received, shutting down", signum=signum)
            self.reactor.callFromThread(self.reactor.stop)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def stopService(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        """Stop accepting, say goodbye (1001) to every client, then stop Redis."""
        Service.stopService(self)
        for listener in self.listeners.values():
            if listener.running:
                await listener.stopService()
        await defer.gatherResults([f.close_all() for f in self.factories.values()], consumeErrors=True)
        for realm in self.realms:
            if realm.websocket_paths:
                realm.factory.doStop()
        for service in reversed(list(self)):
            if service.running and service not in self.listeners.values():
                await defer.maybeDeferred(service.stopService)
        await self.outbound.close()  # after the services: the pushes and hook calls they wait for end first
        self._log.info("node {node} stopped", node=self.node_id)
