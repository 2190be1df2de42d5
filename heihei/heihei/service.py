"""
`Social`: the seed-001 domain of one node, built from its settings, hub and
store — accounts, tokens, SMS codes, WeChat/Weibo sign-in, block lists, push
devices and providers, rooms and messaging. The push channel and the REST
apps only talk to this object (the composition root, heihei/realms.py, hands
it to them); later modules (live, chat, topics, payments) find accounts,
rooms and messaging here.

It is a Service child of the node so that pushes still in flight are awaited
at shutdown and configuration mistakes are reported at start-up.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from heihei.config import ConfigError
from heihei.core.hub import Notice
from heihei.heihei import push as push_mod
from heihei.heihei import sms as sms_mod
from heihei.heihei.accounts import Accounts, Blocks, Tokens, token_hash
from heihei.heihei.catalogs import CatalogError, Catalogs, load_file
from heihei.heihei.clientlogs import ClientLogs
from heihei.heihei.files import UploadedFiles
from heihei.heihei.follows import Follows
from heihei.heihei.messages import Messaging
from heihei.heihei.oauth import WeChat, Weibo
from heihei.heihei.people import LiveStatus, People
from heihei.heihei.records import Records
from heihei.heihei.reports import Reports
from heihei.heihei.rooms import CHANNEL, Rooms
from heihei.heihei.search import UserSearch
from heihei.heihei.topics import Topics, check_topics_file
from heihei.paths import resource

#: a notice to a user's channel connections: the session with this token hash ended
SESSION_REVOKED = "session-revoked"
#: the notice that closes every channel connection of a user (a ban)
NOTICE_KICK = "kick"


async def _run_here(f, *args, **kwargs):
    """Without a thread pool (unit tests): run the blocking call right away."""
    return f(*args, **kwargs)


class Social(Service):
    _log = Logger()
    name = "heihei-social"

    def __init__(self, settings, *, store, hub, clock, outbound, metrics=None, sms_provider=None,
                 push_provider=None, live: LiveStatus | None = None, files: UploadedFiles | None = None,
                 client_logs: ClientLogs | None = None, run_in_thread=None, local_files=None,
                 local_base_url: str = "") -> None:
        self.http_settings = settings.http
        h = self.settings = settings.heihei
        self.social_settings = social = settings.social
        self.uploads_settings = settings.uploads
        self.sms_settings = settings.sms
        self.push_settings = settings.push
        if h.signature_window_s <= 0 or h.token_ttl_s <= 0:
            raise ConfigError("[heihei] signature_window_s and token_ttl_s must be positive")
        self.store = store
        self.clock = clock
        self.hub = hub
        self.search = UserSearch(store)
        self.accounts = Accounts(store, clock, first_user_id=h.first_user_id, first_hei_num=h.first_hei_num,
                                 default_cover_url=h.default_cover_url, search=self.search)
        self.tokens = Tokens(store, clock, ttl_s=h.token_ttl_s, max_per_user=h.max_tokens_per_user)
        self.blocks = Blocks(store, clock)
        self.sms = sms_mod.SmsCodes(store, clock, sms_provider or outbound.sms, settings.sms)
        self.wechat = WeChat(outbound.wechat_for_heihei)
        self.weibo = Weibo(outbound.weibo)
        self.devices = push_mod.Devices(store, clock, max_per_user=settings.push.max_devices_per_user,
                                        token_ttl_s=h.token_ttl_s)
        self.pusher = push_mod.Pusher(self.accounts, self.devices, push_provider or outbound.push, metrics,
                                      clock=clock)
        self.follows = Follows(store, clock)
        self.rooms = Rooms(store, hub, clock)
        self.messaging = Messaging(store=store, hub=hub, clock=clock, accounts=self.accounts, blocks=self.blocks,
                                   pusher=self.pusher, rooms=self.rooms, follows=self.follows,
                                   settings=h)
        self.people = People(store, clock, accounts=self.accounts, blocks=self.blocks, follows=self.follows,
                             settings=social, live=live)
        self.reports = Reports(store, clock, accounts=self.accounts, tokens=self.tokens, settings=social,
                               kick=self.kick)
        #: direct uploads: oss-token and the signs create-subject hands back (None: not wired, in unit tests)
        self.files = files
        self.client_logs = client_logs
        try:
            self.catalogs = Catalogs(store, banners_file=social.banners_file or str(resource("banners.json")),
                                     gift_resources_file=social.gift_resources_file
                                     or str(resource("gift-resources.json")),
                                     expire_s=social.banner_expire_s, base_url=self.img_base)
            initial_topics = load_file(social.topics_file or str(resource("topics.json")), check_topics_file)
        except CatalogError as e:
            raise ConfigError(f"[social] {e}") from None
        #: runs a blocking call (audio decoding) off the reactor thread; awaitable
        self.run_in_thread = run_in_thread or _run_here
        self.topics = Topics(store, clock, people=self.people, files=files, settings=social, base_url=self.img_base,
                             run_in_thread=self.run_in_thread, initial_topics=initial_topics,
                             clean_text=lambda text: hub.moderation.clean(text))
        self.records = Records(store, clock, people=self.people, blocks=self.blocks, files=local_files,
                               base_url=local_base_url or self.public_url, settings=social,
                               run_in_thread=self.run_in_thread)

    async def sign_out(self, uid: str, token: str) -> None:
        """End a session: the token stops working, the device it registered stops getting pushes,
        and the channel connections it opened close, on every node."""
        await self.devices.unregister_session(uid, token)
        await self.tokens.revoke(token)
        await self.hub.notify_users(CHANNEL, [uid], Notice(SESSION_REVOKED, {"token": token_hash(token)}))

    #: the live rooms (heihei.heihei.liveservice.LiveRooms), set by the composition root
    lives = None
    #: the money (heihei.heihei.money.Money: ledger, payments, live gifts), set by the composition root
    money = None
    #: the 1:1 video chats (heihei.heihei.chatservice.ChatService), set by the composition root
    chats = None

    async def live_status(self, uid: str) -> dict:
        """`user/isinlive`: {"isinlive": bool, "liveId"?, "liveStatus"?} — is `uid` live as an anchor."""
        if self.lives is None:
            return {"isinlive": False}
        return await self.lives.live_status(uid)

    @property
    def public_url(self) -> str:
        return self.http_settings.public_url.rstrip("/")

    @property
    def img_base(self) -> str:
        """What a catalog path (`/static/...`) is prefixed with: `[heihei] img_path` or the public URL."""
        return (self.settings.img_path or self.http_settings.public_url).rstrip("/")

    async def user_of(self, token) -> str | None:
        """The user of a session token (None if it is not valid), noted as active."""
        uid = await self.tokens.user_of(token)
        if uid is not None:
            await self.people.seen(uid)
        return uid

    async def kick(self, uid: str) -> None:
        """Close every channel connection of `uid`, on every node."""
        await self.hub.notify_users(CHANNEL, [uid], Notice(NOTICE_KICK, {}))

    @property
    def channel_url(self) -> str:
        base = self.public_url
        if base.startswith("https://"):
            base = "wss://" + base[len("https://"):]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://"):]
        return base + "/ws/channel"

    def startService(self) -> None:
        super().startService()
        if not self.settings.server_secret:
            self._log.warn("[heihei] server_secret is empty: every /messageserver call is refused (701) "
                           "until one is configured")
        if not self.uploads_settings.secret:
            self._log.warn("[uploads] secret is empty: using one generated into the data directory, which only "
                           "works for a single node (every node must share the secret)")

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await self.pusher.drain()
        if self.client_logs is not None:
            self.client_logs.close()
