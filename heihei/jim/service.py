"""
`Jim`: the customer-service operations behind both surfaces (the `--jim`
WebSocket and `/im/vanke/*`). Inputs arrive already parsed and validated by
the wire layer; answers are domain values (user records, `Message`s,
counters) that the wire layer formats.

Messages go through the hub: it stores them (history + the receivers' inboxes
+ unread counters, one atomic step) and delivers them wherever the receivers
are connected. Offline messages are the hub inbox; this realm does not push
it at login (J-IM clients pull it with cmd 19), and live delivery removes an
entry once the receiver's connection confirmed it. Unread counts are the
hub's counters: every stored message counts until the chat is opened
(`chatInfo` op 2, or op 1 with `isConcurrent`), the receiver replies, or the
message is pulled with cmd 19 type 0.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from heihei.config import JimSettings
from heihei.core import errors
from heihei.core.errors import Refused
from heihei.core.groups import NoSuchGroup
from heihei.core.hub import Hub, Notice, SendResult
from heihei.core.model import Message, group_conversation, pair_conversation
from heihei.core.policy import Rate
from heihei.jim.assign import choose_agent
from heihei.jim.store import REALM, VISITOR, JimStore
from heihei.outbound.jim_auth import AuthHook

#: "recent contacts" (pullType 3, lastedContactsNum) are those of the last two days
RECENT_MS = 2 * 24 * 3600 * 1000
#: messages per friend in cmd 17 type 2
DETAIL_MESSAGES = 10
#: friends listed by cmd 17 type 1 and type 2 (the most recent first)
MAX_LISTED_FRIENDS = 1000
MAX_DETAIL_FRIENDS = 200
#: online members listed per group by cmd 17 type 0
MAX_LISTED_MEMBERS = 500
#: message locations for recall are kept this long when no window or history age bounds them
MESSAGE_LOCATION_TTL_S = 30 * 24 * 3600
FRIENDS_GROUP = "friends"
#: notices (heihei.core.hub.Notice kinds) the wire shows as cmd 9, 10 and 16
GROUP_JOINED = "group-joined"
GROUP_LEFT = "group-left"
RECALLED = "recalled"
#: no customer-service agent is registered
NO_AGENT = "no-agent"
#: a notice to a user's connections: the token with this digest is now someone else's
TOKEN_REBOUND = "token-rebound"


def token_digest(token: str) -> str:
    """What a notice carries instead of a token (tokens never cross the bus or reach a log)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def group_room(group: str) -> str:
    """The hub room of a group's connections (cmd 9/10/16 notices reach it)."""
    return f"g:{group}"


def groups_of_rooms(rooms: list[str]) -> list[str]:
    return [room[2:] for room in rooms if room.startswith("g:")]


class JimError(Refused):
    """A request the domain refuses; `detail` is safe to show to the client."""

    REASON = errors.BAD_REQUEST

    def __init__(self, detail: str) -> None:
        super().__init__(self.REASON, detail)


class NotAllowed(JimError):
    REASON = errors.FORBIDDEN


class TooFast(JimError):
    REASON = errors.TOO_FAST


class NoAgent(JimError):
    REASON = NO_AGENT


@dataclass(frozen=True)
class Recalled:
    id: str
    sender: str
    kind: str  # "user" | "group"
    target: str  # the receiver or the group
    chat_type: int


def chat_body(*, chat_type: int, msg_type: int, content: str, create_time: int, extras: Any) -> dict[str, Any]:
    """What a chat message stores in the hub (the wire layer renders it back)."""
    body: dict[str, Any] = {"chatType": chat_type, "msgType": msg_type, "content": content,
                            "createTime": create_time, "id": uuid.uuid4().hex}
    if extras is not None:
        body["extras"] = extras
    return body


class Jim:
    _log = Logger()

    def __init__(self, hub: Hub, store, settings: JimSettings, *, clock, auth_hook: AuthHook | None = None) -> None:
        self.hub = hub
        self.db = JimStore(store)
        self.settings = settings
        self.clock = clock
        #: `[jim] auth_url`'s hook (heihei.outbound.jim_auth), or None
        self.auth_hook = auth_hook
        self.chat_rate = Rate(settings.chat_rate_per_s, settings.chat_burst)

    def now_ms(self) -> int:
        return self.hub.now_ms()

    # -- users and authentication ------------------------------------------------------

    async def register(self, user: str, user_type: int | None, fields: dict[str, str],
                       token: str | None) -> int:
        """Create or update a user and bind `token` to them; returns the registered type."""
        registered = await self.db.register(user, user_type, fields)
        if token:
            previous = await self.db.bind_token(token, user, self.settings.token_ttl_s)
            if previous is not None and previous != user:
                # connections opened with that token were the other user's: they end, on every node
                await self.hub.notify_users(REALM, [previous], Notice(TOKEN_REBOUND, {"token": token_digest(token)}))
        return registered

    async def tokens_valid(self, pairs) -> list[bool]:
        """For each (token, user) a connection logged in with: is the token still that user's?"""
        pairs = list(pairs)
        users = await self.db.token_users([t for t, _ in pairs])
        return [found == user for found, (_, user) in zip(users, pairs)]

    async def user_of_token(self, token: str) -> str | None:
        return await self.db.token_user(token)

    async def user_of_password(self, username: str, password: str) -> str | None:
        """J-IM's `?username=&password=`: the hook decides, or (explicitly insecure) nobody does."""
        if self.auth_hook is not None:
            identity = await self.auth_hook.check(username, password)
            if identity is None:
                return None
            fields = {k: v for k, v in (("nick", identity.nick), ("avatar", identity.avatar)) if v}
            await self.db.ensure_user(identity.user)
            await self.db.set_fields(identity.user, fields)
            return identity.user
        if self.settings.insecure_login:
            return username
        return None

    async def user(self, user: str) -> dict[str, str]:
        return await self.db.user(user) or {"id": user}

    async def users(self, users: list[str]) -> dict[str, dict[str, str]]:
        found = await self.db.users(users)
        return {u: found.get(u) or {"id": u} for u in users}

    async def is_online(self, user: str) -> bool:
        return await self.hub.presence.is_online(REALM, user)

    async def login(self, user: str) -> list[str]:
        """A connection of `user` opened: make sure they have a record, join the default
        groups, and return every group they belong to (the connection joins them all)."""
        await self.db.ensure_user(user)
        for group in self.settings.default_groups:
            await self.join_group(user, group, create=True)
        return await self.hub.groups.groups_of(REALM, user)

    async def announce(self, group: str, kind: str, user: str, record: dict[str, str], *,
                       skip: str | None = None) -> None:
        """Tell the group's connections that `user` joined or left it (not stored)."""
        await self.hub.notify_room(REALM, group_room(group),
                                   Notice(kind, {"group": group, "user": user, "nick": record.get("nick") or user},
                                          skip=skip))

    # -- groups ----------------------------------------------------------------------------

    async def join_group(self, user: str, group: str, *, create: bool = False) -> bool:
        """Make `user` a member. Returns False if the group does not exist and may not be created."""
        try:
            await self.hub.groups.add_members(REALM, group, [user])
            return True
        except NoSuchGroup:
            if not create:
                return False
        await self.hub.groups.create(REALM, {"name": group}, [user], group_id=group)
        return True

    async def may_join(self, user: str, group: str) -> bool | None:
        """cmd 7: True = joined (or already a member), False = not allowed, None = no such group."""
        if await self.hub.groups.is_member(REALM, group, user):
            return True
        if group in self.settings.default_groups or self.settings.open_groups:
            return await self.join_group(user, group, create=True)
        if not await self.hub.groups.exists(REALM, group):
            return None
        return False

    async def groups_with_online_members(self, user: str) -> list[tuple[str, str, list[str]]]:
        """(group id, name, online members) of every group of `user`, for cmd 17 type 0."""
        out = []
        for group in await self.hub.groups.groups_of(REALM, user):
            try:
                info = await self.hub.groups.info(REALM, group)
            except NoSuchGroup:
                continue
            members = await self.hub.groups.members(REALM, group)
            online: list[str] = []
            for i in range(0, len(members), MAX_LISTED_MEMBERS):
                online += await self.hub.presence.online_among(REALM, members[i:i + MAX_LISTED_MEMBERS])
                if len(online) >= MAX_LISTED_MEMBERS:
                    break
            out.append((group, info.get("name") or group, online[:MAX_LISTED_MEMBERS]))
        return out

    async def online_friends(self, user: str) -> list[str]:
        partners = [p for p, _ in await self.db.contacts(user, MAX_LISTED_FRIENDS)]
        return await self.hub.presence.online_among(REALM, partners) if partners else []

    # -- sending -----------------------------------------------------------------------------

    def _check_rate(self, user: str) -> None:
        if not self.hub.rates.allow((REALM, "chat", user), self.chat_rate):
            raise TooFast(f"more than {self.settings.chat_burst} messages in a burst")

    def _clean(self, body: dict[str, Any]) -> dict[str, Any]:
        body["content"] = self.hub.moderation.clean(body["content"])
        return body

    def _location_ttl_s(self) -> float:
        if self.settings.recall_window_s > 0:
            return self.settings.recall_window_s + 60
        age = self.hub.history.retention.max_age_s
        return age if age > 0 else MESSAGE_LOCATION_TTL_S

    async def send_private(self, sender: str, to: str, body: dict[str, Any], *, client_id: str | None,
                           exclude=None) -> SendResult:
        self._check_rate(sender)
        result = await self.hub.send_to_user(REALM, sender, to, self._clean(body), client_id=client_id,
                                             exclude=exclude)
        if not result.duplicate:
            m = result.message
            await self.db.private_sent(sender, to, self.now_ms())
            await self.hub.inbox.mark_read(REALM, sender, m.conversation)  # a reply reads the chat
            await self.db.remember_message(m.body["id"], {"c": m.conversation, "s": m.id, "f": sender, "k": "user",
                                                          "t": to, "ct": m.body["chatType"], "ms": m.created_ms},
                                           self._location_ttl_s(), sender, client_id)
        return result

    async def send_group(self, sender: str, group: str, body: dict[str, Any], *, client_id: str | None,
                         exclude=None) -> SendResult:
        self._check_rate(sender)
        try:
            result = await self.hub.send_to_group(REALM, sender, group, self._clean(body), client_id=client_id,
                                                  echo_to_sender=True, exclude=exclude)
        except Refused as e:
            if e.reason == errors.NO_SUCH_GROUP:
                raise NotAllowed(f"no group {group}") from None
            raise NotAllowed(f"not a member of group {group}") from None
        if not result.duplicate:
            m = result.message
            await self.db.remember_message(m.body["id"], {"c": m.conversation, "s": m.id, "f": sender, "k": "group",
                                                          "t": group, "ct": m.body["chatType"], "ms": m.created_ms},
                                           self._location_ttl_s(), sender, client_id)
        return result

    async def recall(self, user: str, msg_id: str, *, skip: str | None = None) -> Recalled:
        """cmd 15: the sender takes a message back from history and from every inbox still holding
        it; the receivers' connections and the sender's others (all but `skip`) are told."""
        where = await self.db.locate(msg_id)
        if where is None:
            own = await self.db.message_of_client_id(user, msg_id)
            where = await self.db.locate(own) if own else None
            msg_id = own or msg_id
        if where is None:
            raise JimError(f"no message {msg_id} (unknown, already recalled or too old)")
        if where["f"] != user:
            raise NotAllowed("only the sender may recall a message")
        window_ms = self.settings.recall_window_s * 1000
        if window_ms > 0 and self.now_ms() - int(where["ms"]) > window_ms:
            raise NotAllowed(f"messages can be recalled within {self.settings.recall_window_s:g} s")
        if where["k"] == "group":
            receivers = [m for m in await self.hub.groups.members(REALM, where["t"]) if m != user]
        else:
            receivers = [where["t"]]
        await self.hub.history.recall(REALM, where["c"], int(where["s"]), receivers)
        await self.db.forget_message(msg_id)
        recalled = Recalled(id=msg_id, sender=user, kind=where["k"], target=where["t"], chat_type=int(where["ct"]))
        notice = Notice(RECALLED, {"id": recalled.id, "from": user, "kind": recalled.kind, "target": recalled.target,
                                   "chatType": recalled.chat_type}, skip=skip)
        if recalled.kind == "group":
            await self.hub.notify_room(REALM, group_room(recalled.target), notice)
        else:  # the receiver, and the sender's other devices
            await self.hub.notify_users(REALM, [recalled.target, user], notice)
        return recalled

    # -- reading messages ---------------------------------------------------------------------

    def page_size(self, count: int | None) -> int:
        cap = max(1, self.settings.max_page_size)
        return cap if count is None else max(0, min(count, cap))

    async def offline(self, user: str, *, partner: str | None = None, group: str | None = None,
                      begin_ms: int | None = None, end_ms: int | None = None, offset: int = 0,
                      count: int | None = None, skip: frozenset[str] = frozenset(),
                      live_floors: dict[str, int] | None = None) -> list[Message]:
        """The user's waiting messages (optionally of one partner or group), oldest first; `skip`
        holds entries already handed out and not yet confirmed (they are not returned twice).

        Private messages wait in the hub inbox (as do group messages stored before groups moved
        to their logs); group messages are the group log's entries that reached none of the
        user's clients (heihei.core.grouppull); `live_floors` is the asking connection's (newer
        group messages were pushed to it). Nothing changes here: what was handed out leaves the
        inbox, or counts as received, with `pulled` once the client has provably received it."""
        if partner is not None:
            conversation = pair_conversation(user, partner)
        elif group is not None:
            conversation = group_conversation(group)
        else:
            conversation = None
        size = self.page_size(count)
        limit = self.hub.history.retention.inbox_max or 10000
        waiting = await self.hub.inbox.pending(REALM, user, limit=limit)
        if partner is None:
            groups = [group] if group is not None else await self.hub.groups.groups_of(REALM, user)
            from_logs = await self.hub.group_feed.pull.waiting(
                REALM, user, groups, live_floors=live_floors or {}, begin_ms=begin_ms, end_ms=end_ms,
                limit=min(offset + size + len(skip), limit))
            if from_logs:
                inboxed = {m.entry for m in waiting}
                waiting = sorted(waiting + [m for m in from_logs if m.entry not in inboxed], key=lambda m: m.id)
        selected = [m for m in waiting
                    if (conversation is None or m.conversation == conversation)
                    and (begin_ms is None or m.created_ms >= begin_ms)
                    and (end_ms is None or m.created_ms <= end_ms)
                    and m.entry not in skip]
        return selected[offset:offset + size]

    async def pulled(self, user: str, messages: list[Message]) -> None:
        """cmd 19 type 0's messages reached the client: they leave the inbox and are read, and
        group messages count as received (the member's cursor moves over what is contiguous)."""
        if messages:
            await self.hub.inbox.ack(REALM, user, [m.entry for m in messages])
            await self.hub.inbox.unread_minus(REALM, user, Counter(m.conversation for m in messages))
            await self.hub.group_feed.pull.mark_pulled(REALM, user, messages)

    async def history(self, user: str, *, partner: str | None = None, group: str | None = None,
                      begin_ms: int | None = None, end_ms: int | None = None, offset: int = 0,
                      count: int | None = None) -> list[Message]:
        if group is not None:
            if not await self.hub.groups.is_member(REALM, group, user):
                raise NotAllowed(f"not a member of group {group}")
            conversation = group_conversation(group)
        else:
            conversation = pair_conversation(user, partner)
        size = self.page_size(count)
        if size == 0:
            return []
        return await self.hub.history.page(REALM, conversation, begin_ms=begin_ms, end_ms=end_ms, offset=offset,
                                           count=size)

    # -- chat lists ---------------------------------------------------------------------------

    async def friends(self, user: str) -> list[str]:
        """cmd 17 type 1: everyone the user talked with or was paired with, most recent first."""
        return [p for p, _ in await self.db.contacts(user, MAX_LISTED_FRIENDS)]

    async def friend_details(self, user: str, pull_type: int, search: str) -> list[tuple[str, list[Message], int]]:
        """cmd 17 type 2: (friend, last messages oldest first, unread) filtered by pullType/searchKey."""
        contacts = await self.db.contacts(user, MAX_LISTED_FRIENDS)
        if pull_type == 2:
            waiting = await self.db.waiting_for_reply(user)
            contacts = [(p, t) for p, t in contacts if p in waiting]
        elif pull_type == 3:
            since = self.now_ms() - RECENT_MS
            contacts = [(p, t) for p, t in contacts if t >= since]
        partners = [p for p, _ in contacts]
        if search:
            records = await self.db.users(partners)
            needle = search.casefold()
            partners = [p for p in partners
                        if needle in p.casefold() or needle in records.get(p, {}).get("nick", "").casefold()]
        partners = partners[:MAX_DETAIL_FRIENDS]
        unread = await self.hub.inbox.unread(REALM, user)
        latest = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(self.hub.history.latest(REALM, pair_conversation(user, p), DETAIL_MESSAGES))
             for p in partners], consumeErrors=True)
        return [(p, msgs, unread.get(pair_conversation(user, p), 0)) for p, msgs in zip(partners, latest)]

    async def chat_info(self, to: str, frm: str, op: int, new_member: bool, concurrent: bool) -> dict[str, int]:
        """`/im/vanke/chatInfo`: update `to`'s chat list for `from` and read its counters.

        Messages are counted when stored, so op 1 never counts twice: it adds
        `from` to the list if new, and marks the chat read if it is the one on
        screen. op 2 (the chat was opened) marks it read."""
        conversation = pair_conversation(to, frm)
        now = self.now_ms()
        if op == 1 and new_member:
            await self.db.add_contact(to, frm, now)
        if op == 2 or (op == 1 and concurrent):
            await self.hub.inbox.mark_read(REALM, to, conversation)
        everyone, recent, waiting = await self.db.counters(to, now - RECENT_MS)
        unread = (await self.hub.inbox.unread(REALM, to)).get(conversation, 0)
        return {"pendingReplyNum": waiting, "lastedContactsNum": recent, "allContactsNum": everyone,
                "unReadNum": unread}

    # -- agents ---------------------------------------------------------------------------------

    async def receiver_for(self, user: str, user_type: int, receiver: str | None) -> str:
        """`getReceiver`: the given partner, or for a visitor without one, an agent (see assign.py)."""
        now = self.now_ms()
        previous = await self.db.assigned(user) if user_type == VISITOR else None
        if receiver:
            if user_type == VISITOR and await self.db.is_agent(receiver):
                await self.db.assign(user, receiver, previous, now)
            else:
                await self.db.add_contact(user, receiver, now)
                await self.db.add_contact(receiver, user, now)
            return receiver
        if user_type != VISITOR:
            raise JimError("receiverId is required unless the sender is a visitor (type 0)")
        if previous and previous != user and await self.db.is_agent(previous):
            agent = previous
        else:
            agents = [a for a in await self.db.agents() if a != user]
            online = await self.hub.presence.online_among(REALM, agents) if agents else []
            oldest = now - int(self.settings.open_conversation_s * 1000)
            agent = choose_agent(agents, online, await self.db.open_counts(agents, oldest))
            if agent is None:
                raise NoAgent("no customer-service agent is registered")
        await self.db.assign(user, agent, previous, now)
        return agent


class JimService(Service):
    """The realm's start-up warnings, for settings that leave it open (or closed to all)."""

    _log = Logger()

    def __init__(self, settings: JimSettings, *, demo: bool = False) -> None:
        self.settings = settings
        #: the demo profile opened the logins and said so in its one warning: these are details then
        self.open_door = self._log.info if demo else self._log.warn

    def startService(self) -> None:
        super().startService()
        s = self.settings
        if s.insecure_login and not s.auth_url:
            self.open_door("[jim] insecure_login is on: ?username= is accepted with any password")
        if not s.api_key:
            if s.insecure_api:
                self.open_door("[jim] insecure_api is on: /im/vanke/* answers anyone (no api_key)")
            else:
                self._log.warn("[jim] api_key is empty: /im/vanke/* refuses every call until it is set")
