"""
`Chats`: seed 001's 1:1 video chats — matching strangers (匹配), invitations
(约聊) and the chat itself (对聊) — on any node of the cluster.

State machines (docs/heihei.md, "Chat and co-hosting", draws them):
- a user: free -> `m` (match-chat) -> in a chat (matched), or free again
  (stop-match-chat, `match_expire_s`); free -> in an invitation (due-chat, as
  inviter or invitee) -> in a chat (accept-chat, or the invitee invites back)
  or free (cancel-due-chat, `invite_expire_s`); in a chat -> free (stop-chat, a
  missed heart-beat, the join timeout, a pause longer than `pause_max_s`).
- a chat: `invite` -> `open` -> `ended`, or `invite` -> `cancelled`/`missed`;
  a matched chat starts `open`.
Each transition is one script of heihei.heihei.chatstate, so a user is in at
most one match, invitation or chat, cluster-wide. Every countdown is a
deadline in Redis (heihei.heihei.deadlines) that whichever node is alive
fires (ChatService); firing runs the same script a user's request would, so a
second firing changes nothing.

Timer members: `match|<uid>`, `invite|<chatId>`, `beat|<chatId>|<uid>` (the
join timeout, then each heart-beat, then the pause limit, re-armed).

The gift of a chat (`chat/buy-gift`) is not here: it needs the gift ledger
(issue 19). It plugs in as one more `ChatApi` endpoint that asks
`Chats.partner_in_open_chat` (732 otherwise) and then charges through the
ledger, the receiver being the partner.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from heihei.core.errors import Refused
from heihei.core.policy import Rate
from heihei.heihei import chatstate as S
from heihei.heihei.errors import (BAD_PARAMETER, BAD_USER_STATE, NO_SUCH_CHAT, NO_SUCH_USER, NOT_ALLOWED,
                                  SENDING_TOO_FAST, USER_BUSY, USER_IS_LIVE)
from heihei.heihei.liveinfo import local_time

MATCH_TIMER, INVITE_TIMER, BEAT_TIMER = "match", "invite", "beat"

#: chat-user-status's `status`: 0 entering, 1 in the chat, 2 left, 3 disconnected (the seed's list)
ENTERING, PRESENT, LEFT, DISCONNECTED = 0, 1, 2, 3
#: each invitation is stored and may be pushed to a phone: at most a burst of 5, then one per 5 s per user
#: (per node)
INVITE_RATE = Rate(0.2, 5)
#: end reasons that count as "left" (the others: "disconnected")
LEFT_REASONS = ("stop",)


def timer(kind: str, *parts: str) -> str:
    return "|".join((kind, *parts))


def chat_id_value(chat_id: str) -> int | str:
    """A chat id as the seed writes it: a JSON integer (a Java long)."""
    return int(chat_id) if chat_id.isascii() and chat_id.isdigit() and int(chat_id) < 2 ** 63 else chat_id


def action(name: str, comment: str, **fields: Any) -> dict[str, Any]:
    return {"msgType": "action", "action": name, "comment": comment, **fields}


class Chats:
    _log = Logger()

    def __init__(self, *, store, clock, settings, accounts, blocks, people, messaging, deadlines, rtc,
                 tips: list[str], topics: list[str], live_of=None, utc_offset_h: float = 8.0, rates=None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.accounts = accounts
        self.blocks = blocks
        self.people = people
        self.messaging = messaging
        self.deadlines = deadlines
        self.rtc = rtc
        self.tips = list(tips)
        self.topics = list(topics) or ["快来相互调戏吧~"]
        #: async uid -> the live they broadcast now or None (heihei.heihei.liveservice.LiveRooms.live_of)
        self.live_of = live_of
        self.utc_offset_h = utc_offset_h
        #: heihei.core.policy.RateLimiter of the node (None: no limit)
        self.rates = rates

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def _new_chat_id(self) -> str:
        n = int(await self.store.incr(S.CHAT_SEQ))
        return str((self.now_ms() << 20) | (n & 0xFFFFF))

    async def _push(self, uid: str, msg: dict[str, Any]) -> None:
        """An action item to every channel connection of `uid`, on any node; with a msgId."""
        msg.setdefault("msgId", await self.messaging.new_msg_id())
        await self.messaging.notify(uid, {"msg": msg, "timeStamp": self.now_ms() // 1000})

    async def chat(self, chat_id: str) -> dict[str, str]:
        return await self.store.hgetall(S.chat_key(chat_id)) or {}

    async def _member_chat(self, uid: str, chat_id: str, *, status: str | None = S.OPEN) -> dict[str, str]:
        """The chat `uid` is in (732 otherwise), in `status` when given."""
        chat = await self.chat(chat_id)
        if uid not in (chat.get("a"), chat.get("b")) or (status is not None and chat.get("status") != status):
            raise Refused(NO_SUCH_CHAT, f"chat {chat_id}")
        return chat

    @staticmethod
    def other(chat: dict[str, str], uid: str) -> str:
        return chat["b"] if chat.get("a") == uid else chat["a"]

    # -- matching ----------------------------------------------------------------------------

    async def match(self, uid: str) -> dict[str, Any]:
        """match-chat: join the match queue, or take the longest-waiting eligible user at once."""
        chat_id = await self._new_chat_id()
        now = self.now_ms()
        expire_at, join_by = now + self.settings.match_expire_s * 1000, self._join_by(now)
        got = await S.MATCH(self.store, [S.QUEUE, S.user_key(uid), S.chat_key(chat_id), self.deadlines.key],
                            [uid, now, self.settings.match_scan, S.USER_PREFIX, S.LAST_PREFIX,
                             S.BLOCK_PREFIX, chat_id, S.LAST_KEEP_MS, expire_at, join_by])
        code = int(got[0])
        if code == -1:
            raise Refused(BAD_USER_STATE, "you are in a chat or an invitation already")
        if code == 1:
            self._armed(join_by)
            await self._opened(chat_id, str(got[2]), uid)
        else:
            self._armed(expire_at)
        return {"expireTime": self.settings.match_expire_s, "tips": list(self.tips)}

    def _join_by(self, now: int) -> int:
        return now + int(self.settings.join_timeout_s * 1000)

    def _armed(self, due_ms: int) -> None:
        """A script armed a countdown: this node's sweeper wakes for it (others find it by looking)."""
        if self.deadlines.on_armed is not None:
            self.deadlines.on_armed(due_ms)

    async def stop_match(self, uid: str) -> None:
        """stop-match-chat: leave the queue (nothing to do when not in it)."""
        await S.LEAVE_QUEUE(self.store, [S.QUEUE, S.user_key(uid), self.deadlines.key], [uid])

    async def match_expired(self, uid: str) -> bool:
        return bool(int(await S.LEAVE_QUEUE(self.store, [S.QUEUE, S.user_key(uid), self.deadlines.key], [uid])))

    # -- invitations -------------------------------------------------------------------------

    async def invite(self, uid: str, target: str) -> dict[str, Any]:
        """due-chat: invite `target` (738 live, 739 busy); if `target` is inviting `uid`, both join now."""
        if target == uid:
            raise Refused(BAD_PARAMETER, "userId (yourself)")
        profiles = await self.accounts.get_many([uid, target])
        if target not in profiles:
            raise Refused(NO_SUCH_USER, f"userId {target}")
        if await self.blocks.either_blocked(uid, target):
            raise Refused(NOT_ALLOWED, "one of you blocked the other")
        if self.live_of is not None and await self.live_of(target) is not None:
            raise Refused(USER_IS_LIVE, f"user {target} is live")
        if self.rates is not None and not self.rates.allow(("heihei-due-chat", uid), INVITE_RATE):
            raise Refused(SENDING_TOO_FAST, "inviting too often")
        chat_id = await self._new_chat_id()
        expire = self.settings.invite_expire_s
        now = self.now_ms()
        lapse_at, join_by = now + expire * 1000, self._join_by(now)
        got = await S.INVITE_SCRIPT(self.store, [S.user_key(uid), S.user_key(target), S.chat_key(chat_id),
                                                 self.deadlines.key],
                                    [uid, target, chat_id, now, S.CHAT_PREFIX, lapse_at, join_by])
        code = int(got[0])
        if code == -1:
            raise Refused(BAD_USER_STATE, "you are matching, inviting or chatting already")
        if code == -2:
            raise Refused(USER_BUSY, f"user {target} is busy")
        if code == 2:  # they were inviting us: the chat is on
            chat_id = str(got[1])
            self._armed(join_by)
            await self._opened(chat_id, target, uid)
            return {"expireTime": expire, "chatId": chat_id_value(chat_id)}
        self._armed(lapse_at)
        inviter = profiles[uid]
        notice = action("due-chat-notify", "约你私聊", expireTime=expire, chatId=chat_id_value(chat_id),
                        fromUserId=int(uid), fromUserName=inviter.get("displayName", ""),
                        gender=inviter.get("gender", ""), birthDay=inviter.get("birthDay", ""),
                        coverUrl=inviter.get("coverUrl", ""), msgId=await self.messaging.new_msg_id(), type=0,
                        needstore=True, getuiAction="duechat")
        # stored in the pair's conversation (history-msg, message-list), pushed to a receiver not connected
        await self.messaging.send_to_user(target, notice)
        await self.messaging.note_conversation(uid, target)
        return {"expireTime": expire, "chatId": chat_id_value(chat_id)}

    async def cancel_invite(self, uid: str, chat_id: str) -> None:
        """cancel-due-chat: the inviter withdraws (711 someone else's, 732 no such or no longer open)."""
        chat = await self.chat(chat_id)
        done = int(await S.CLOSE(self.store, [S.chat_key(chat_id), self.deadlines.key],
                                 [chat_id, S.USER_PREFIX, S.INVITE, S.CANCELLED, "cancel", self.now_ms(),
                                  S.CHAT_KEEP_MS, uid]))
        if done == -2:
            raise Refused(NOT_ALLOWED, "not your invitation")
        if done != 1:
            raise Refused(NO_SUCH_CHAT, f"chat {chat_id}")
        me = await self.accounts.get(uid) or {}
        await self._push(chat["b"], action("cancel-due-chat", "对方取消约聊", common="对方取消约聊",
                                           chatId=chat_id_value(chat_id), fromUserId=int(uid),
                                           fromUserName=me.get("displayName", ""), gender=me.get("gender", ""),
                                           coverUrl=me.get("coverUrl", ""), birthDay=me.get("birthDay", "")))

    async def accept(self, uid: str, inviter: str, chat_id: str) -> dict[str, Any]:
        """accept-chat: the invitee takes the invitation; both get join-chat."""
        now = self.now_ms()
        join_by = self._join_by(now)
        if not int(await S.ACCEPT(self.store, [S.chat_key(chat_id), self.deadlines.key],
                                  [uid, inviter, now, chat_id, join_by])):
            raise Refused(NO_SUCH_CHAT, f"chat {chat_id} (no open invitation from user {inviter})")
        self._armed(join_by)
        await self._opened(chat_id, inviter, uid)
        return {"expireTime": int(self.settings.join_timeout_s)}

    async def invite_expired(self, chat_id: str) -> bool:
        return int(await S.CLOSE(self.store, [S.chat_key(chat_id), self.deadlines.key],
                                 [chat_id, S.USER_PREFIX, S.INVITE, S.MISSED, "expired", self.now_ms(),
                                  S.CHAT_KEEP_MS, ""])) == 1

    # -- the chat ----------------------------------------------------------------------------

    async def _opened(self, chat_id: str, a: str, b: str) -> None:
        """A chat is on (the script armed each user's `join_timeout_s`): both get join-chat."""
        for uid in (a, b):
            await self._push(uid, action("join-chat", "加入对聊", chatId=chat_id_value(chat_id),
                                         chatid=chat_id_value(chat_id)))

    def _topic(self, chat: dict[str, str]) -> str:
        return self.topics[int(chat.get("topic") or 0) % len(self.topics)]

    async def _users(self, viewer: str, chat: dict[str, str]) -> list[dict[str, Any]]:
        users = await self.people.list_users(viewer, [chat["a"], chat["b"]])
        for u in users:
            slot = "a" if str(u["id"]) == chat["a"] else "b"
            u["status"] = self._user_status(chat, slot)
        return users

    @staticmethod
    def _user_status(chat: dict[str, str], slot: str) -> int:
        if chat.get("status") in (S.ENDED, S.CANCELLED, S.MISSED):
            return LEFT if chat.get("reason") in LEFT_REASONS else DISCONNECTED
        return PRESENT if chat.get(f"joined_{slot}") == "1" else ENTERING

    def _status(self, chat: dict[str, str]) -> int:
        st = chat.get("status")
        if st == S.OPEN:
            return PRESENT if chat.get("joined_a") == "1" and chat.get("joined_b") == "1" else ENTERING
        if st == S.INVITE:
            return ENTERING
        return LEFT if chat.get("reason") in LEFT_REASONS else DISCONNECTED

    async def render(self, viewer: str, chat_id: str, chat: dict[str, str]) -> dict[str, Any]:
        users = await self._users(viewer, chat)
        cid = chat_id_value(chat_id)
        created = local_time(chat.get("created"), self.utc_offset_h)
        return {"chatId": cid, "roomId": cid, "status": self._status(chat), "createrId": int(chat["a"]),
                "title": f"{chat['a']},{chat['b']}", "initTopic": self._topic(chat), "visible": 1,
                "pushAddr": "", "streamAddr": "", "archiveFile": None, "createTime": created,
                "startTime": local_time(chat.get("opened") or chat.get("created"), self.utc_offset_h),
                "users": users, "user": users}

    async def join(self, uid: str, chat_id: str) -> dict[str, Any]:
        """join-chat: enter the chat's room; answers the chat with the video credential, and both users get
        chat-user-status."""
        got = await S.MARK(self.store, [S.chat_key(chat_id)], [uid, "joined", "1"])
        if not got:
            raise Refused(NO_SUCH_CHAT, f"chat {chat_id}")
        await self.deadlines.set(timer(BEAT_TIMER, chat_id, uid),
                                 self.now_ms() + int(self.settings.heartbeat_timeout_s * 1000))
        chat = await self.chat(chat_id)
        answer = await self.render(uid, chat_id, chat)
        answer.update(self.rtc.video_fields(chat_id, uid))
        await self._status_push(chat_id, chat, PRESENT)
        return {"chat": answer}

    async def _status_push(self, chat_id: str, chat: dict[str, str], status: int, *,
                           only: str | None = None) -> None:
        for uid in ((only,) if only else (chat["a"], chat["b"])):
            users = await self._users(uid, chat)
            await self._push(uid, action("chat-user-status", "对聊用户状态", chatId=chat_id_value(chat_id),
                                         status=status, users=users, user=users))

    async def get(self, uid: str, chat_id: str) -> dict[str, Any]:
        """get-chat (v1.4.1): the chat, ended ones included, for its two users (732 for anyone else)."""
        chat = await self._member_chat(uid, chat_id, status=None)
        return {"chat": await self.render(uid, chat_id, chat)}

    async def heart_beat(self, uid: str, chat_id: str) -> dict[str, Any]:
        chat = await self._member_chat(uid, chat_id)
        slot = "a" if chat["a"] == uid else "b"
        limit = self.settings.pause_max_s if chat.get(f"paused_{slot}") == "1" else self.settings.heartbeat_timeout_s
        await self.deadlines.set(timer(BEAT_TIMER, chat_id, uid), self.now_ms() + int(limit * 1000))
        return {"nextTimeout": self.settings.heartbeat_s}

    async def change_topic(self, uid: str, chat_id: str) -> None:
        """change-topic: the next topic of the catalog, pushed to both (chat-topic)."""
        await self._member_chat(uid, chat_id)
        n = int(await self.store.hincrby(S.chat_key(chat_id), "topic", 1))
        text = self.topics[n % len(self.topics)]
        chat = await self.chat(chat_id)
        for who in (chat["a"], chat["b"]):
            await self._push(who, action("chat-topic", "约聊话题消息", text=text, chatId=chat_id_value(chat_id)))

    async def pause(self, uid: str, chat_id: str, paused: bool) -> None:
        """pause-chat / continue-chat: the other gets pause-chat / goon-chat; a paused user's heart-beat
        timer waits `pause_max_s`."""
        got = await S.MARK(self.store, [S.chat_key(chat_id)], [uid, "paused", "1" if paused else "0"])
        if not got:
            raise Refused(NO_SUCH_CHAT, f"chat {chat_id}")
        limit = self.settings.pause_max_s if paused else self.settings.heartbeat_timeout_s
        await self.deadlines.set(timer(BEAT_TIMER, chat_id, uid), self.now_ms() + int(limit * 1000))
        chat = await self.chat(chat_id)
        if paused:
            msg = action("pause-chat", "暂停直播", text="对方离开一下", chatId=chat_id_value(chat_id))
        else:
            msg = action("goon-chat", "暂停直播", text="对方回来了", chatId=chat_id_value(chat_id))
        await self._push(self.other(chat, uid), msg)

    async def stop(self, uid: str, chat_id: str) -> None:
        """stop-chat: the chat ends for both (732 when it is not open or not yours)."""
        await self._member_chat(uid, chat_id)
        if not await self.end(chat_id, "stop", by=uid):
            raise Refused(NO_SUCH_CHAT, f"chat {chat_id}")

    async def end(self, chat_id: str, reason: str, *, by: str | None = None) -> bool:
        """End an open chat (stop-chat, a missed heart-beat or join): both users are free, their timers
        go, and the other user (both, when nobody asked) gets chat-user-status."""
        done = int(await S.CLOSE(self.store, [S.chat_key(chat_id), self.deadlines.key],
                                 [chat_id, S.USER_PREFIX, S.OPEN, S.ENDED, reason, self.now_ms(), S.CHAT_KEEP_MS,
                                  ""]))
        if done != 1:
            return False
        chat = await self.chat(chat_id)
        status = LEFT if reason in LEFT_REASONS else DISCONNECTED
        for uid in (chat["a"], chat["b"]):
            if uid != by:
                await self._status_push(chat_id, chat, status, only=uid)
        return True

    async def partner_in_open_chat(self, uid: str, chat_id: str) -> str:
        """The other user of an open chat `uid` is in (732 otherwise): whom a chat gift goes to."""
        return self.other(await self._member_chat(uid, chat_id), uid)

    # -- the timers --------------------------------------------------------------------------

    async def fire(self, member: str) -> None:
        kind, _, rest = member.partition("|")
        if kind == MATCH_TIMER:
            await self.match_expired(rest)
        elif kind == INVITE_TIMER:
            await self.invite_expired(rest)
        elif kind == BEAT_TIMER:
            chat_id, _, _uid = rest.partition("|")
            await self.end(chat_id, "timeout")

    # -- what others ask ---------------------------------------------------------------------

    async def state_of(self, uid: str) -> str | None:
        """Where `uid` is: None free, "m" matching, "c|<chatId>" in an invitation or chat."""
        return await self.store.get(S.user_key(uid))

    async def call_outcome(self, chat_id: str) -> str | None:
        """For message-list: "call" when an invitation was answered, None otherwise (or unknown)."""
        answered = await self.store.hget(S.chat_key(chat_id), "answered")
        return "call" if answered == "1" else None
