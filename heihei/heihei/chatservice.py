"""
`ChatService`: the heihei app's 1:1 video chats on one node (`social.chats`):
the domain (heihei.heihei.chats), its RTC credentials (chatrtc) and the
node's sweeper over the chats' deadlines in Redis (countdowns), which any
node fires; and co-hosting a live (heihei.heihei.conference), whose
countdowns share that sweeper.
"""

from __future__ import annotations

import json

from twisted.application.service import Service
from twisted.internet import defer

from heihei.config import ConfigError
from heihei.heihei.accounts import REALM
from heihei.heihei.chatrtc import ChatRtc
from heihei.heihei.chats import Chats
from heihei.heihei.conference import CHECK_TIMER, JOIN_TIMER, Conferences
from heihei.heihei.countdowns import Countdowns
from heihei.heihei.deadlines import Deadlines
from heihei.heihei.userstatus import UserStatus
from heihei.paths import resource
from heihei.store.keys import key

#: the chats' deadlines: one sorted set for the cluster
TIMERS = key("ctimers", REALM)
#: a claimed deadline is another node's to fire if this one has not finished it by then
TIMER_LEASE_S = 10.0
#: at most this many tips or topics, each at most this long
MAX_LINES, MAX_LINE_CHARS = 500, 200


def load_lines(path: str, what: str) -> list[str]:
    """A JSON array of non-empty strings (the tips, the topics)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"[chat] {what} {path}: {e}") from None
    if not isinstance(lines, list) or not lines or len(lines) > MAX_LINES or not all(
            isinstance(t, str) and 0 < len(t) <= MAX_LINE_CHARS for t in lines):
        raise ConfigError(f"[chat] {what} {path}: a JSON array of 1-{MAX_LINES} strings of 1-{MAX_LINE_CHARS} "
                          "characters")
    return lines


def check_settings(s) -> None:
    for name in ("match_expire_s", "invite_expire_s", "join_timeout_s", "heartbeat_s", "heartbeat_timeout_s",
                 "pause_max_s", "match_scan", "sweep_interval_s", "idle_sweep_s"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"[chat] {name} must be positive")
    if s.heartbeat_timeout_s < s.heartbeat_s:
        raise ConfigError("[chat] heartbeat_timeout_s must be at least heartbeat_s")


class ChatService(Service):
    name = "heihei-chats"

    def __init__(self, *, settings, rtc_settings, store, clock, accounts, blocks, people, messaging, lives,
                 utc_offset_h: float = 8.0) -> None:
        """`lives`: the live rooms (heihei.heihei.liveservice.LiveRooms): due-chat's 738, co-hosting."""
        check_settings(settings)
        self.settings = settings
        self.deadlines = Deadlines(store, clock, TIMERS, lease_s=TIMER_LEASE_S)
        self.rtc = ChatRtc(rtc_settings, clock)
        tips = load_lines(settings.tips_file or str(resource("chat-tips.json")), "tips_file")
        topics = load_lines(settings.topics_file or str(resource("chat-topics.json")), "topics_file")
        self.chats = Chats(store=store, clock=clock, settings=settings, accounts=accounts, blocks=blocks,
                           people=people, messaging=messaging, deadlines=self.deadlines, rtc=self.rtc, tips=tips,
                           topics=topics, live_of=lives.live_of, utc_offset_h=utc_offset_h,
                           rates=messaging.hub.rates)
        self.conferences = Conferences(lives=lives, accounts=accounts, rtc=self.rtc, deadlines=self.deadlines)
        #: user/info's userStatus
        self.user_status = UserStatus(chats=self.chats, conferences=self.conferences, lives=lives)
        self.countdowns = Countdowns(self.deadlines, clock, self.fire, interval_s=settings.sweep_interval_s,
                                     idle_s=settings.idle_sweep_s, name="chat")
        messaging.call_outcome = self.chats.call_outcome

    async def fire(self, member: str) -> None:
        if member.startswith((JOIN_TIMER + "|", CHECK_TIMER + "|")):
            await self.conferences.fire(member)
        else:
            await self.chats.fire(member)

    def startService(self) -> None:
        super().startService()
        self.countdowns.start()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.Deferred.fromCoroutine(self.countdowns.stop())
