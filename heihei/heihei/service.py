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
from heihei.heihei import push as push_mod
from heihei.heihei import sms as sms_mod
from heihei.heihei.accounts import Accounts, Blocks, Tokens
from heihei.heihei.follows import Follows
from heihei.heihei.messages import Messaging
from heihei.heihei.oauth import WeChat, Weibo
from heihei.heihei.rooms import Rooms


class Social(Service):
    _log = Logger()
    name = "heihei-social"

    def __init__(self, settings, *, store, hub, clock, outbound, metrics=None, sms_provider=None,
                 push_provider=None) -> None:
        self.http_settings = settings.http
        h = self.settings = settings.heihei
        self.sms_settings = settings.sms
        self.push_settings = settings.push
        if h.signature_window_s <= 0 or h.token_ttl_s <= 0:
            raise ConfigError("[heihei] signature_window_s and token_ttl_s must be positive")
        self.store = store
        self.clock = clock
        self.hub = hub
        self.accounts = Accounts(store, clock, first_user_id=h.first_user_id, first_hei_num=h.first_hei_num,
                                 default_cover_url=h.default_cover_url)
        self.tokens = Tokens(store, clock, ttl_s=h.token_ttl_s, max_per_user=h.max_tokens_per_user)
        self.blocks = Blocks(store, clock)
        self.sms = sms_mod.SmsCodes(store, clock, sms_provider or outbound.sms, settings.sms)
        self.wechat = WeChat(outbound.wechat_for_heihei)
        self.weibo = Weibo(outbound.weibo)
        self.devices = push_mod.Devices(store, clock, max_per_user=settings.push.max_devices_per_user,
                                        token_ttl_s=h.token_ttl_s)
        self.pusher = push_mod.Pusher(self.accounts, self.devices, push_provider or outbound.push, metrics)
        self.follows = Follows(store, clock)
        self.rooms = Rooms(store, hub, clock)
        self.messaging = Messaging(store=store, hub=hub, clock=clock, accounts=self.accounts, blocks=self.blocks,
                                   pusher=self.pusher, rooms=self.rooms, follows=self.follows,
                                   settings=h)

    #: the live rooms (heihei.heihei.liveservice.LiveRooms), set by the composition root
    lives = None

    async def live_status(self, uid: str) -> dict:
        """`user/isinlive`: {"isinlive": bool, "liveId"?, "liveStatus"?} — is `uid` live as an anchor."""
        if self.lives is None:
            return {"isinlive": False}
        return await self.lives.live_status(uid)

    @property
    def public_url(self) -> str:
        return self.http_settings.public_url.rstrip("/")

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

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await self.pusher.drain()
