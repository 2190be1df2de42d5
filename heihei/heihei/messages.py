"""
Messaging for seed 001: v2 IM between users, server messages to a user,
conversation lists, unread counts and the read/delete operations, all on the
hub (realm "channel") so that history, inboxes and unread counters change in
the hub's one atomic step per message.

Model (the decisions are in docs/heihei.md):
- A conversation is the hub's pair conversation of two users
  (`u:<a>:<b>`); server messages without a `fromUserId` go to the
  conversation with the system peer `0`.
- The unread count of a conversation is the hub's per-user counter: the
  newest `n` incoming, not hidden messages are the unread ones. The total is
  what `message-unread-count` pushes, `message-list` reports and
  `history-msg` splits by. Every change of it is pushed to the user's
  connections.
- `convs:heihei:<uid>` ZSET peer -> last message ms: the user's conversation
  list (bounded). What `message-del` and `delete-msg` remove leaves only the
  user's view of the conversation (the core's per-user view:
  `Inbox.clear`, `Inbox.hide`); the other side keeps its copy.
- `msgidx:heihei:<msgId>` -> `conv|server id` (kept `msg_index_ttl_s`), so the
  deprecated endpoints that take only a `msgId` find the message.
- msgIds are 64-bit: `ms << 20 | (a cluster-wide counter mod 2^20)`, unique
  and time-ordered.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from heihei.core.hub import Notice
from heihei.core.model import pair_conversation
from heihei.core.policy import Rate, too_long
from heihei.heihei import im
from heihei.heihei.accounts import REALM
from heihei.core.errors import Refused
from heihei.heihei.errors import BAD_PARAMETER, BAD_ROOM, NO_SUCH_USER, NOT_ALLOWED, SENDING_TOO_FAST, bad_parameter
from heihei.heihei.push import link_for
from heihei.heihei.rooms import CHANNEL
from heihei.store.keys import key
from heihei.store.scripts import Script
from heihei.textnum import is_digits

SYSTEM_PEER = "0"
SYSTEM_NAME = "系统消息"
#: how far back the read/delete scripts and history-msg look in one conversation
SCAN_LIMIT = 500
HISTORY_MAX_READ = 100
HISTORY_MAX_UNREAD = 100
HISTORY_CONVERSATIONS = 50
#: the notice kind of an item shown to a user's connections, not stored (`notify`)
ITEM = "item"

TOUCH_CONVERSATION = Script("heihei_touch_conversation", r"""
-- KEYS: 1 the user's conversation zset. ARGV: 1 peer, 2 ms, 3 max conversations
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
return 1
""")

def _convs_key(uid: str) -> str:
    return key("convs", REALM, uid)


def peer_of(conversation: str, uid: str) -> str | None:
    """The other user of a pair conversation `u:<a>:<b>` if `uid` is in it."""
    parts = conversation.split(":")
    if len(parts) != 3 or parts[0] != "u" or uid not in parts[1:]:
        return None
    return parts[2] if parts[1] == uid else parts[1]


class Messaging:
    _log = Logger()

    def __init__(self, *, store, hub, clock, accounts, blocks, pusher, rooms, follows, settings) -> None:
        self.store = store
        self.rooms = rooms
        self.follow_graph = follows
        self.hub = hub
        self.clock = clock
        self.accounts = accounts
        self.blocks = blocks
        self.pusher = pusher
        self.settings = settings
        self.im_rate = Rate(settings.im_rate_per_second, settings.im_rate_burst)
        #: async chatId -> "call" when that invitation was answered, else None (heihei.heihei.chats); None:
        #: a due-chat-notify is listed as "calling" / "post" whatever became of it
        self.call_outcome = None
        #: the live rooms' way for room text (mute check, busy-room lanes): `(sender, room, live id, msg)`;
        #: None: room text is broadcast as it is
        self.live_text = None

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def new_msg_id(self) -> int:
        n = int(await self.store.incr(key("seq", REALM, "msg")))
        return (self.now_ms() << 20) | (n & 0xFFFFF)

    async def follows(self, viewer: str, target: str) -> bool:
        """Does `viewer` follow `target`? (heihei.heihei.follows)"""
        return await self.follow_graph.follows(viewer, target)

    # -- sending -------------------------------------------------------------------------

    async def send_im(self, sender: str, m: im.ClientIm):
        """Validate, store and deliver a v2 IM; returns the hub's SendResult (`.duplicate` for a resend)."""
        if m.to == sender:
            raise im.ImError(BAD_PARAMETER, "msg.toUserId is yourself")
        profiles = await self.accounts.get_many([sender, m.to])
        if m.to not in profiles:
            raise im.ImError(NO_SUCH_USER, f"user {m.to} does not exist")
        if await self.blocks.has_blocked(m.to, sender):
            raise im.ImError(NOT_ALLOWED, "the receiver has blocked you")
        if await self.blocks.has_blocked(sender, m.to):
            raise im.ImError(NOT_ALLOWED, "you have blocked the receiver")
        if not self.hub.rates.allow(("heihei-im", sender), self.im_rate):
            raise im.ImError(SENDING_TOO_FAST, "sending too fast")
        content = dict(m.content)
        if isinstance(content.get("text"), str):
            content["text"] = self.hub.moderation.clean(content["text"])
        now_ms = self.now_ms()
        msg = im.build_msg(to=m.to, sender=sender, msg_type=m.msg_type, content=content, jump=m.jump,
                           msg_id=await self.new_msg_id(), create_time=now_ms // 1000, client_msg_id=m.client_msg_id)
        users_for = {}
        for viewer, side in ((sender, "s"), (m.to, "r")):
            users_for[side] = {uid: im.user_entry(profiles.get(uid), uid,
                                                  uid != viewer and await self.follows(viewer, uid))
                               for uid in (sender, m.to)}
        body = {"t": "im", "msg": msg, "users": users_for}
        await self._touch(sender, m.to, now_ms)
        await self._touch(m.to, sender, now_ms)
        result = await self.hub.send_to_user(CHANNEL, sender, m.to, body, client_id=m.client_msg_id,
                                             echo_to_sender=True)
        if result.duplicate:
            return result
        await self._index(msg["msgId"], result.message)
        await self.push_unread(m.to)
        if m.to in result.offline:
            s = profiles[sender]
            self.pusher.notify(m.to, {
                "title": s.get("displayName") or self.settings.push_title, "text": im.preview(msg),
                "action": "message", "link": link_for("message"), "msgId": msg["msgId"],
                "fromUserName": s.get("displayName", ""), "fromUserId": int(sender), "gender": s.get("gender", ""),
                "data": {"msgType": "IM", "imType": m.msg_type}})
        return result

    async def send_room_text(self, sender: str, room: str, text: str, live_id: str | None) -> None:
        """`msg/send-msg`: a `text` item from a member to everyone in an open room (and, when
        `live_id` is given, only if that live is the one shown there)."""
        if too_long(text, self.settings.max_text_chars):
            raise bad_parameter("text", f"longer than {self.settings.max_text_chars} characters")
        rooms = self.rooms
        info = await rooms.info(room)
        if not info or info.get("status") != "open":
            raise Refused(BAD_ROOM, "room is not open")
        if live_id is not None and info.get("liveId") != live_id:
            raise Refused(BAD_ROOM, "the live is not in this room")
        if not await rooms.is_member(room, sender):
            raise Refused(BAD_ROOM, "you are not in this room")
        if not self.hub.rates.allow(("heihei-room", sender), self.im_rate):
            raise Refused(SENDING_TOO_FAST, "sending too fast")
        profile = await self.accounts.get(sender) or {}
        msg = {"msgType": "text", "fromUserId": int(sender), "fromUserName": profile.get("displayName", ""),
               "gender": profile.get("gender", ""), "coverUrl": profile.get("coverUrl", ""),
               "text": self.hub.moderation.clean(text), "msgId": await self.new_msg_id(),
               "roomId": int(room) if is_digits(room) and len(room) < 19 else room}
        if info.get("liveId") and self.live_text is not None:
            await self.live_text(sender, room, info["liveId"], msg)
            return
        await rooms.broadcast(room, msg, sender=sender)

    async def send_to_user(self, target: str, msg: dict[str, Any]) -> bool:
        """A trusted back end's message to one user (`tosingle`), delivered as is.

        Stored (history, inbox, unread) when `msg.needstore` is true or it is a v2
        IM envelope; otherwise only the user's live connections get it. An
        offline user gets a push for stored messages and ones with
        `getuiAction`. Returns whether it was stored."""
        if not await self.accounts.exists(target):
            raise Refused(NO_SUCH_USER, f"targetUserId {target}")
        now_ms = self.now_ms()
        is_im = msg.get("msgType") == "IM"
        if is_im:
            inner = msg.get("msg")
            if not isinstance(inner, dict):
                raise Refused(BAD_PARAMETER, "msg.msg (an IM envelope needs msg)")
            inner.setdefault("msgId", await self.new_msg_id())
            inner.setdefault("createTime", now_ms // 1000)
            item = {**msg, "timeStamp": now_ms // 1000}
            msg_id = inner["msgId"]
            source = inner
        else:
            item = {"msg": msg, "timeStamp": now_ms // 1000}
            msg_id = msg.get("msgId")
            source = msg
        store = is_im or msg.get("needstore") is True
        sender = str(source.get("fromUserId", ""))
        if not is_digits(sender) or sender == target or len(sender) > 19:
            sender = SYSTEM_PEER
        if store:
            await self._touch(target, sender, now_ms)
            result = await self.hub.send_to_user(CHANNEL, sender, target, {"t": "item", "item": item})
            if isinstance(msg_id, int) and not isinstance(msg_id, bool):
                await self._index(msg_id, result.message)
            await self.push_unread(target)
            offline = target in result.offline
        else:
            await self.notify(target, item)
            offline = not await self.hub.presence.is_online(CHANNEL, target)
        if offline and (store or source.get("getuiAction")):
            self.pusher.notify(target, self._server_push(source, msg_id))
        return store

    def _server_push(self, msg: dict[str, Any], msg_id) -> dict[str, Any]:
        action = msg.get("getuiAction") if isinstance(msg.get("getuiAction"), str) else "message"
        name = msg.get("fromUserName", "") if isinstance(msg.get("fromUserName"), str) else ""
        if isinstance(msg.get("link"), str) and msg["link"].startswith("wmlives_heihei://"):
            link = msg["link"]
        else:
            link = link_for(action, gender_text=self.settings.link_gender_text,
                            id=msg.get("liveId") or msg.get("id") or msg.get("fromUserId", ""),
                            chatId=msg.get("chatId", ""), type=msg.get("type", 0), userId=msg.get("fromUserId", ""),
                            fromUserName=name, gender=msg.get("gender", ""),
                            msgId=msg_id if isinstance(msg_id, int) and not isinstance(msg_id, bool) else "")
        text = im.preview(msg)
        if isinstance(msg.get("text-head"), str) or isinstance(msg.get("text-tail"), str):
            text = f"{msg.get('text-head', '')}{name}{msg.get('text-tail', '')}"
        from_id = msg.get("fromUserId")
        return {"title": msg.get("title") if isinstance(msg.get("title"), str) else self.settings.push_title,
                "text": text, "action": action, "link": link, "msgId": msg_id if isinstance(msg_id, int) else 0,
                "fromUserName": name, "fromUserId": from_id if isinstance(from_id, int) else 0,
                "gender": msg.get("gender", "") if isinstance(msg.get("gender"), str) else "",
                "data": {k: msg[k] for k in ("msgType", "action", "chatId", "liveId", "roomId") if k in msg}}

    async def notify(self, uid: str, item: dict[str, Any]) -> None:
        """Send one item to every live channel connection of a user, on every node; not stored."""
        await self.hub.notify_users(CHANNEL, [uid], Notice(ITEM, {"item": item}))

    async def note_conversation(self, uid: str, peer: str) -> None:
        """Put the conversation with `peer` on top of `uid`'s list (a message `uid` sent outside IM: a
        chat invitation, listed as "post" in `uid`'s message-list)."""
        await self._touch(uid, peer, self.now_ms())

    async def _list_type(self, uid: str, peer: str, msg: dict[str, Any]) -> str:
        """message-list's `data.type`: the last message's msgType; a chat invitation (due-chat-notify) is
        the seed's "calling" (one you did not answer), "post" (yours, not answered) or "call" (answered)."""
        if msg.get("action") != "due-chat-notify":
            return msg.get("msgType", "")
        if self.call_outcome is not None and msg.get("chatId") is not None:
            if await self.call_outcome(str(msg["chatId"])) == "call":
                return "call"
        return "post" if str(msg.get("fromUserId")) == uid else "calling"

    async def _touch(self, uid: str, peer: str, ms: int) -> None:
        await TOUCH_CONVERSATION(self.store, [_convs_key(uid)], [peer, ms, self.settings.max_conversations])

    async def _index(self, msg_id: int, message) -> None:
        await self.store.set(key("msgidx", REALM, msg_id), f"{message.conversation}|{message.id}",
                             expire=self.settings.msg_index_ttl_s)

    # -- unread ------------------------------------------------------------------------

    async def unread_total(self, uid: str) -> int:
        return sum((await self.hub.inbox.unread(CHANNEL, uid)).values())

    @staticmethod
    def unread_item(count: int, now_s: int) -> dict[str, Any]:
        return {"msg": {"msgType": "action", "action": "message-unread-count", "comment": "未读消息数",
                        "count": count}, "timeStamp": now_s}

    async def push_unread(self, uid: str) -> int:
        count = await self.unread_total(uid)
        await self.notify(uid, self.unread_item(count, int(self.clock.seconds())))
        return count

    # -- conversation list ---------------------------------------------------------------

    async def message_list(self, uid: str) -> tuple[list[dict[str, Any]], int]:
        unread = await self.hub.inbox.unread(CHANNEL, uid)
        cleared = await self.hub.inbox.cleared(CHANNEL, uid)
        peers = await self.store.zrevrange(_convs_key(uid), 0, self.settings.message_list_max - 1)
        profiles = await self.accounts.get_many([p for p in peers if p != SYSTEM_PEER])
        items = []
        for peer in peers:
            conv = pair_conversation(uid, peer)
            last = await self.hub.history.latest(CHANNEL, conv, 1)
            if not last or last[0].id <= cleared.get(conv, 0):
                continue
            message = last[0]
            msg = im.msg_of(message.body)
            p = profiles.get(peer, {})
            items.append({
                "fromUserId": int(peer),
                "fromUserName": SYSTEM_NAME if peer == SYSTEM_PEER else p.get("displayName", ""),
                "gender": p.get("gender", ""), "coverUrl": p.get("coverUrl", ""),
                "data": {"count": unread.get(conv, 0), "type": await self._list_type(uid, peer, msg)},
                "birthDay": p.get("birthDay", ""),
                "link": f"wmlives_heihei://duechat?uid={peer}",
                "timeStamp": message.created_ms // 1000,
                "action": "message", "msgType": "action",
                "text": im.preview(msg) or None,
            })
        return items, sum(unread.values())

    async def delete_conversation(self, uid: str, peer: str) -> None:
        """`message-del`: the conversation leaves the user's list and counts as read (their view only)."""
        await self.hub.inbox.clear(CHANNEL, uid, pair_conversation(uid, peer))
        await self.store.zrem(_convs_key(uid), peer)
        await self.push_unread(uid)

    async def read_all(self, uid: str) -> None:
        await self.hub.inbox.mark_read(CHANNEL, uid)
        await self.push_unread(uid)

    async def _locate(self, uid: str, msg_id: int) -> tuple[str, int]:
        found = await self.store.get(key("msgidx", REALM, msg_id))
        if found:
            conv, _, sid = found.rpartition("|")
            if peer_of(conv, uid) is not None and is_digits(sid):
                return conv, int(sid)
        raise Refused(BAD_PARAMETER, "msgId (no such message)")

    async def read_one(self, uid: str, msg_id: int) -> None:
        """Deprecated `read-one-msg`: the message and everything before it in its conversation are read."""
        conv, sid = await self._locate(uid, msg_id)
        await self.hub.inbox.read_up_to(CHANNEL, uid, conv, sid)
        await self.push_unread(uid)

    async def delete_one(self, uid: str, msg_id: int) -> None:
        """Deprecated `delete-msg`: the message disappears from this user's history."""
        conv, sid = await self._locate(uid, msg_id)
        await self.hub.inbox.hide(CHANNEL, uid, conv, sid, self.now_ms())
        await self.push_unread(uid)

    async def history(self, uid: str) -> tuple[list, list, int]:
        """Deprecated `history-msg`: (unread items, read items, unread total), newest first."""
        unread = await self.hub.inbox.unread(CHANNEL, uid)
        cleared = await self.hub.inbox.cleared(CHANNEL, uid)
        peers = await self.store.zrevrange(_convs_key(uid), 0, HISTORY_CONVERSATIONS - 1)
        unread_items, read_items = [], []
        for peer in peers:
            conv = pair_conversation(uid, peer)
            floor = cleared.get(conv, 0)
            recent = await self.hub.history.page(CHANNEL, conv, count=SCAN_LIMIT, newest_first=True)
            incoming = []
            for message in recent:
                if message.id <= floor or message.sender == uid:
                    continue
                if await self.hub.inbox.is_hidden(CHANNEL, uid, conv, message.id):
                    continue
                incoming.append(message)
            n = unread.get(conv, 0)
            unread_items += incoming[:n]
            read_items += incoming[n:]
        unread_items.sort(key=lambda m: m.created_ms, reverse=True)
        read_items.sort(key=lambda m: m.created_ms, reverse=True)

        def items(messages, limit):
            out = []
            for message in messages[:limit]:
                item = im.item_of(message.body, message.created_ms, viewer_is_sender=False)
                if item is not None:
                    out.append(item)
            return out

        return items(unread_items, HISTORY_MAX_UNREAD), items(read_items, HISTORY_MAX_READ), sum(unread.values())
