"""
The composition root: which realms a node speaks, and how each is put together.

`heihei.node.Node` builds the core first (store, hub, metrics, the node-wide
clean-up tracker) and hands it to `build_realms`. Each realm's builder below
constructs that realm's domain services, its sessions and liveness, its
WebSocket factory with its protocol, and its HTTP resources, and returns a
`Realm`: what the node mounts and starts. Only this module and node.py choose
protocols or mount resources; realm packages (heihei/live, heihei/heihei,
heihei/boss, heihei/jim) and protocol modules never reach into the node.

Adding a realm: a domain package, a protocol module (and HTTP surfaces under
heihei/web), a `build_<realm>` function here, and its listener option in
heihei/tap.py if it has its own port (docs/architecture.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.application.service import IService
from twisted.web.resource import IResource

from heihei.config import Settings, WebSocketSettings
from heihei.core.heartbeat import Liveness
from heihei.core.hub import Hub
from heihei.core.sessions import Cleanups, RealmSessions
from heihei.metrics import Metrics
from heihei.net.websocket import HardenedFactory

#: room for the multipart envelope around an upload of [boss] max_upload_bytes
UPLOAD_ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Core:
    """What every realm may use; built by the node before any realm."""

    settings: Settings
    hub: Hub
    store: Any
    clock: Any
    reactor: Any
    metrics: Metrics
    data_dir: str
    cleanups: Cleanups
    #: every outbound HTTP service (heihei.outbound.Outbound), closed by the node at stop
    outbound: Any
    #: the bearer token of the admin API (realms' operator routes check it)
    admin_token: str


@dataclass(frozen=True)
class Mount:
    """An HTTP resource at `path` on the site of `listener` ("" = the site's fallback for every
    path no other mount claims); `gate` decides from a request's headers, before its body is read,
    whether it may send one (heihei.web.limits.Gate); `surface` (heihei.web.kit.routes.Surface) words
    the site's own refusals of requests to it (a body too large ...) in its envelope."""

    listener: str
    path: str
    resource: IResource
    gate: Callable | None = None
    surface: Any = None


@dataclass
class Realm:
    """What a realm gives the node."""

    name: str
    factory: HardenedFactory
    #: the listener option serving its WebSockets ("live", "boss", "jim", "http")
    listener: str
    #: () when the listener is the WebSocket factory itself; else the paths on the listener's site
    websocket_paths: tuple[str, ...] = ()
    http: list[Mount] = field(default_factory=list)
    #: started after the listeners, stopped before the hub (in reverse)
    services: list[IService] = field(default_factory=list)
    #: shown in the manhole as operators[<name>]; the admin API routes of the realm use it too
    operators: object | None = None
    #: its operator routes (heihei.web.admin.AdminRoutes), mounted under /admin/ at their prefix
    admin: object | None = None
    #: the request body a listener's site must accept for this realm (uploads)
    body_bytes: dict[str, int] = field(default_factory=dict)


def build_realms(core: Core) -> list[Realm]:
    return [build_live(core), build_boss(core), build_jim(core), build_heihei(core)]


def _sessions(core: Core, realm: str, settings: WebSocketSettings, *, timeout_s: float, beat_interval_s: float,
              check_interval_s=None, on_beat: Callable | None = None, credential_check=None) -> RealmSessions:
    extra = {"on_beat": on_beat} if on_beat is not None else {}
    liveness = Liveness(core.clock, timeout_s=timeout_s, beat_interval_s=beat_interval_s,
                        check_interval_s=check_interval_s, on_dead=lambda conn: conn.close_silent(), **extra)
    return RealmSessions(realm, core.hub, core.cleanups, liveness, login_timeout_s=settings.login_timeout_s,
                         credential_check=credential_check)


def _ping_liveness(settings: WebSocketSettings) -> dict[str, float]:
    """Realms without a heartbeat of their own: a ping every `auto_ping_interval_s`, and a
    connection silent for that long plus `auto_ping_timeout_s` is gone."""
    interval = settings.auto_ping_interval_s
    return {"beat_interval_s": interval, "timeout_s": interval + settings.auto_ping_timeout_s if interval > 0 else 0}


def _factory(core: Core, name: str, settings: WebSocketSettings, protocol: type, sessions: RealmSessions,
             context: object) -> HardenedFactory:
    return HardenedFactory(name, settings, protocol, hub=core.hub, sessions=sessions, metrics=core.metrics,
                           context=context, reactor=core.reactor)


# -- seed 000: live-activity chat ------------------------------------------------------------------


def build_live(core: Core) -> Realm:
    from heihei.live.operators import LiveOperators
    from heihei.live.service import LiveService, check_settings
    from heihei.live.wechat import WeChatLogin
    from heihei.live.activities import REALM
    from heihei.protocols.live import LiveFrames, LiveProtocol, LiveRenderer, on_notice
    from heihei.web.admin import LiveAdmin

    settings = core.settings.live
    check_settings(settings)
    provider = WeChatLogin(core.outbound.wechat_for_live)
    service = LiveService(core.hub, core.store, settings, clock=core.clock, provider=provider, frames=LiveFrames())
    core.hub.register_realm(REALM, LiveRenderer(), on_notice=on_notice(service))
    sessions = _sessions(core, REALM, settings, **_ping_liveness(settings))
    factory = _factory(core, REALM, settings, LiveProtocol, sessions, service)
    operators = LiveOperators(service)
    return Realm(REALM, factory, listener="live", services=[sessions, service], operators=operators,
                 admin=LiveAdmin(core.admin_token, operators))


# -- seed 002: boss underscore chat ----------------------------------------------------------------


def build_boss(core: Core) -> Realm:
    from heihei.boss.chat import BossChat
    from heihei.boss.groups import GroupService
    from heihei.boss.mediastore import MediaStore
    from heihei.boss.profiles import Profiles
    from heihei.boss.service import BossService
    from heihei.protocols.boss import REALM, BossOperators, BossProtocol, BossRenderer, beat
    from heihei.web.boss import BOSS, BossWeb
    from heihei.web.root import RootResource

    s = core.settings.boss
    media = MediaStore(s.media_dir or os.path.join(core.data_dir, "boss-media"), reactor=core.reactor,
                       max_upload_bytes=s.max_upload_bytes, max_media_seconds=s.max_media_seconds)
    chat = BossChat(core.hub, s, clock=core.clock)
    core.hub.register_realm(REALM, BossRenderer())
    core.hub.use_group_log(REALM)  # one log per group, a cursor per member (docs/groups.md)
    sessions = _sessions(core, REALM, s, timeout_s=s.dead_after, beat_interval_s=s.heartbeat_interval,
                         check_interval_s=max(s.dead_after / 3, 0.1) if s.dead_after > 0 else 1.0, on_beat=beat)
    factory = _factory(core, REALM, s, BossProtocol, sessions, chat)

    profiles = Profiles(core.store, core.outbound.profiles, cache_s=s.profile_cache_s)
    groups = GroupService(core.hub, profiles, media, max_members=s.max_group_members)
    routes = BossWeb(s, clock=core.clock, groups=groups, profiles=profiles, media=media)
    web = routes.resource()
    # every HTTP route answers at /<route> and at /wsim/<route>; /entry and /wsim/entry are WebSockets
    wsim = RootResource(fallback=web)
    return Realm(REALM, factory, listener="boss", websocket_paths=("entry", "wsim/entry"),
                 http=[Mount("boss", "", web, gate=routes.gate, surface=BOSS), Mount("boss", "wsim", wsim, surface=BOSS)],
                 services=[sessions, BossService(s, media=media, demo=core.settings.server.demo)],
                 operators=BossOperators(s, core.clock, groups, profiles, media),
                 body_bytes={"boss": s.max_upload_bytes + UPLOAD_ENVELOPE_BYTES})


# -- seed 003: J-IM customer service ---------------------------------------------------------------


def build_jim(core: Core) -> Realm:
    from heihei.jim.service import Jim, JimService
    from heihei.jim.store import REALM
    from heihei.protocols.jim import JimProtocol, JimRenderer, on_notice
    from heihei.web.vanke import VANKE, VankeApp

    s = core.settings.jim
    jim = Jim(core.hub, core.store, s, clock=core.clock, auth_hook=core.outbound.jim_auth)
    core.hub.register_realm(REALM, JimRenderer(), on_notice=on_notice)
    core.hub.use_group_log(REALM, echo_to_sender=True, pull=True)  # clients pull what they missed (docs/groups.md)
    timeout = s.heartbeat_timeout
    sessions = _sessions(core, REALM, s, timeout_s=timeout, beat_interval_s=s.auto_ping_interval_s,
                         check_interval_s=max(0.5, timeout / 4) if timeout > 0 else 1.0,
                         credential_check=jim.tokens_valid)
    factory = _factory(core, REALM, s, JimProtocol, sessions, jim)
    vanke = VankeApp(jim, s)
    return Realm(REALM, factory, listener="jim",
                 http=[Mount("http", "im", vanke.resource(), gate=vanke.gate, surface=VANKE)],
                 services=[sessions, JimService(s, demo=core.settings.server.demo)], operators=jim)


# -- seed 001: the heihei app (push channel, /api, /messageserver) -----------------------------------


def build_heihei(core: Core) -> Realm:
    from heihei.heihei.operators import HeiheiOperators
    from heihei.heihei.rooms import CHANNEL
    from heihei.heihei.service import Social
    from heihei.protocols.channel import ChannelProtocol, ChannelRenderer, on_notice
    from heihei.web.admin_heihei import HeiheiAdmin
    from heihei.web.api.chat import ChatApi
    from heihei.web.api.live import LiveApi
    from heihei.web.api.msg import MsgApi
    from heihei.web.api.payment import PaymentApi
    from heihei.web.api.social import SmsApi, SocialApi
    from heihei.web.api.sys import RootApi, SysApi
    from heihei.web.api.record import RecordApi
    from heihei.web.api.topic import TopicApi
    from heihei.web.api.user import UserApi, UsrApi
    from heihei.web.api.base import HEIHEI
    from heihei.web.media import MEDIA, MediaHooks
    from heihei.web.messageserver import MessageServerApi
    from heihei.web.root import RootResource
    from heihei.web.static import shipped_static

    storage = _heihei_storage(core)
    social = Social(core.settings, store=core.store, hub=core.hub, clock=core.clock, outbound=core.outbound,
                    metrics=core.metrics, files=storage.files, client_logs=_client_logs(core),
                    run_in_thread=_thread_runner(core.reactor), local_files=storage.local,
                    local_base_url=storage.local_base_url)
    lives = _build_lives(core, social)
    chats = _build_chats(core, social, lives)
    social.people.live = lives  # user/isinlive
    money = _build_money(core, social, lives)
    core.hub.register_realm(CHANNEL, ChannelRenderer(), on_notice=on_notice)
    s = core.settings.channel
    sessions = _sessions(core, CHANNEL, s, **_ping_liveness(s), credential_check=social.tokens.valid_many)
    factory = _factory(core, CHANNEL, s, ChannelProtocol, sessions, social)

    sections = {"user": UserApi, "usr": UsrApi, "msg": MsgApi, "sys": SysApi, "social": SocialApi, "sms": SmsApi,
                "topic": TopicApi, "record": RecordApi, "live": LiveApi, "payment": PaymentApi, "chat": ChatApi}
    modules = [*sections.values(), RootApi, MessageServerApi]
    operators = HeiheiOperators(social)
    api = RootResource(fallback=RootApi(social, modules).resource())
    for name, module in sections.items():
        api.mount(name, module(social).resource())
    media = MediaHooks(lives, lambda: core.settings.media.callback_key)
    return Realm(CHANNEL, factory, listener="http", websocket_paths=("ws/channel",),
                 http=[Mount("http", "api", api, surface=HEIHEI),
                       Mount("http", "messageserver/api/msg", MessageServerApi(social).resource(), surface=HEIHEI),
                       Mount("http", "media", media.resource(), surface=MEDIA),
                       Mount("http", "static", shipped_static()),
                       Mount("http", storage.bucket, storage.resource)],
                 services=[sessions, social, lives, money, chats], operators=operators,
                 admin=HeiheiAdmin(core.admin_token, operators),
                 body_bytes={"http": storage.body_bytes})


#: top-level paths of the --http site that an uploads bucket may not take
RESERVED_HTTP_PATHS = ("api", "admin", "ws", "messageserver", "im", "static", "media", "healthz", "metrics")


@dataclass(frozen=True)
class HeiheiStorage:
    bucket: str
    files: Any
    local: Any
    #: the node's OSS-compatible resource, mounted at /<bucket>/
    resource: IResource
    #: where the node serves what it stores itself (voice records), without the key
    local_base_url: str
    body_bytes: int


def _heihei_storage(core: Core) -> HeiheiStorage:
    """`[uploads]`: the provider behind oss-token (the node itself or Aliyun OSS), the node's object
    store (its uploads and the voice records) and the resource serving it (docs/uploads.md)."""
    from heihei.config import ConfigError
    from heihei.heihei.files import UploadedFiles
    from heihei.heihei.uploads import BUCKET_RE, Uploads
    from heihei.paths import load_or_create_secret
    from heihei.web.oss import OssResource
    from heihei.web.oss_signing import NodeOss
    from heihei.web.oss_store import LocalFiles, ObjectStore

    u = core.settings.uploads
    if u.provider not in ("node", "aliyun"):
        raise ConfigError(f"[uploads] provider must be \"node\" or \"aliyun\", not {u.provider!r}")
    if not BUCKET_RE.fullmatch(u.bucket) or u.bucket in RESERVED_HTTP_PATHS:
        raise ConfigError(f"[uploads] bucket {u.bucket!r}: 3-63 lower-case letters, digits and hyphens, and not one "
                          f"of the site's own paths ({', '.join(RESERVED_HTTP_PATHS)})")
    secret = u.secret or load_or_create_secret(core.data_dir, "uploads-secret", 32)
    site_url = core.settings.http.public_url.rstrip("/")
    caps = {"record": {"mp3": u.max_record_bytes},
            "message": {f: u.max_message_bytes for f in ("mp3", "png", "jpeg", "jpg")},
            "avatar": {f: u.max_avatar_bytes for f in ("png", "jpeg", "jpg")}}
    store = ObjectStore(u.storage_dir or os.path.join(core.data_dir, "uploads"))
    try:
        store.prepare()
        node_oss = NodeOss(secret, bucket=u.bucket, site_url=site_url,
                           public_base_url=u.public_base_url if u.provider == "node" else "")
        provider = node_oss if u.provider == "node" else core.outbound.aliyun_oss
        uploads = Uploads(provider, bucket=u.bucket, secret=secret, ttl_s=u.ttl_s, max_bytes=caps)
    except (OSError, ValueError) as e:
        raise ConfigError(f"[uploads] {e}") from None
    files = UploadedFiles(core.store, core.clock, uploads,
                          local_path=store.path_of if u.provider == "node" else None)
    largest = max(u.max_record_bytes, u.max_message_bytes, u.max_avatar_bytes, core.settings.social.record_max_bytes)
    return HeiheiStorage(u.bucket, files, LocalFiles(store, core.reactor),
                         OssResource(node_oss, store, clock=core.clock, reactor=core.reactor),
                         node_oss.public_base_url if u.provider == "node" else f"{site_url}/{u.bucket}",
                         largest + UPLOAD_ENVELOPE_BYTES)


def _thread_runner(reactor, max_jobs: int = 2):
    """Blocking work (decoding audio) in the reactor's thread pool, at most `max_jobs` at a time."""
    from twisted.internet import defer, threads

    jobs = defer.DeferredSemaphore(max_jobs)

    async def run(f, *args, **kwargs):
        return await jobs.run(threads.deferToThreadPool, reactor, reactor.getThreadPool(), f, *args, **kwargs)

    return run


def _client_logs(core: Core):
    from heihei.config import ConfigError
    from heihei.heihei.clientlogs import ClientLogs

    s = core.settings.social
    try:
        return ClientLogs(s.client_log_dir or os.path.join(core.data_dir, "client-logs"),
                          node_id=core.hub.node_id, clock=core.clock, rates=core.hub.rates,
                          file_bytes=s.client_log_file_bytes, files=s.client_log_files,
                          max_bytes=s.client_log_max_bytes)
    except (OSError, ValueError) as e:
        raise ConfigError(f"[social] client logs: {e}") from None


def _build_money(core: Core, social, lives):
    """The heihei app's money (social.money): ledger, catalog, payment providers, live gifts."""
    from heihei.heihei.money import Money
    money = Money(core.settings, store=core.store, clock=core.clock, reactor=core.reactor,
                  accounts=social.accounts, img_base=social.img_base)
    money.attach_lives(lives)
    social.money = money
    return money


def _build_lives(core: Core, social):
    """The heihei app's live rooms (social.lives), with the media signer of [media]."""
    from heihei.config import ConfigError
    from heihei.heihei.liveservice import LiveRooms
    from heihei.outbound.streams import MediaSigner

    media = core.settings.media
    signer = None
    if media.secret:
        try:
            signer = MediaSigner(secret=media.secret, app=media.app, push_rtmp=media.push_rtmp,
                                 pull_flv=media.pull_flv, pull_rtmp=media.pull_rtmp, pull_hls=media.pull_hls,
                                 push_ttl_s=media.push_ttl_s, pull_ttl_s=media.pull_ttl_s)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    lives = LiveRooms(settings=core.settings.lives, media=media, public_url=social.public_url, store=core.store,
                      hub=core.hub, clock=core.clock, accounts=social.accounts, blocks=social.blocks,
                      follows=social.follows, rooms=social.rooms, messaging=social.messaging, pusher=social.pusher,
                      signer=signer, sign_secret=media.secret or core.settings.heihei.server_secret,
                      demo=core.settings.server.demo)
    social.lives = lives
    social.messaging.live_text = lives.room_text
    return lives


def _build_chats(core: Core, social, lives):
    """The heihei app's 1:1 video chats (social.chats), with the RTC keys of [rtc]."""
    from heihei.heihei.chatservice import ChatService

    chats = ChatService(settings=core.settings.chat, rtc_settings=core.settings.rtc, store=core.store,
                        clock=core.clock, accounts=social.accounts, blocks=social.blocks, people=social.people,
                        messaging=social.messaging, lives=lives,
                        utc_offset_h=core.settings.lives.utc_offset_h)
    social.chats = chats
    return chats
