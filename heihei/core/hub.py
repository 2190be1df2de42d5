"""
The messaging hub: one call delivers a message to a user, a group or a room,
wherever in the cluster the receivers are connected.

The way of a message (see docs/architecture.md):
1. One Redis call (`heihei.core.routing`) stores it and queues it in the
   inbox of every receiver (atomically; a repeated client id stops here),
   finds the nodes where the receivers are connected (`Presence`'s alive
   test), and publishes one bus packet to each other node.
2. Local receivers get the frame as soon as that call answers.
3. The node holding a receiver's connection renders the frame once per
   variant for all its local connections and removes the inbox entry once the
   frame was written. A receiver connected nowhere keeps it in the inbox until
   `deliver_pending` at the next login.

Protocols register a `Renderer` per realm: the only wire-format knowledge the
hub uses, to turn a stored message into a frame for a connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from heihei.core import errors
from heihei.core.acks import InboxAcks
from heihei.core.bus import Bus
from heihei.core.errors import Refused
from heihei.core.groupfeed import GROUP_ADDED, GroupFeed
from heihei.core.grouplog import NO_SUCH_GROUP, GroupLog, GroupRetention
from heihei.core.groups import Groups
from heihei.core.history import History, Inbox, Retention
from heihei.core.moderation import Moderation
from heihei.core.model import Message, group_conversation, pair_conversation, room_conversation
from heihei.core.policy import RateLimiter
from heihei.core.presence import Presence
from heihei.core.roomgaps import MAX_CATCH_UP, RoomGaps
from heihei.core.routing import Router
from heihei.incidents import report


class IClient(Protocol):
    """What the domain sees of a connection, whatever its wire format."""

    realm: str
    user: str | None
    peer: str

    def send_frame(self, frame: bytes, on_delivered: Callable[[], None] | None = None) -> bool: ...

    send_queue_max_bytes: int
    connection_open: bool

    def when_closed(self) -> defer.Deferred: ...

    def prepare(self, payload: bytes) -> bytes: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...


class Renderer(Protocol):
    """A realm's way of turning a stored message into a WebSocket payload."""

    def variant(self, message: Message, client: IClient) -> Hashable:
        """Connections with the same variant get the same bytes (e.g. sender vs others)."""

    def render(self, message: Message, variant: Hashable) -> bytes | None:
        """The payload for that variant; None means: do not send to it."""

    # optional, so a room is grouped without a call per receiver:
    # - `renders_alike(message) -> bool`: True when every receiver gets the same
    #   bytes for this message (its variant is then asked of one receiver only);
    # - `by_sender = (own, others)` says `variant` is `own` for the sender's
    #   connections and `others` for the rest (set operations on the presence map)


class PlainRenderer:
    """Everyone gets `body["frame"]` as is (tests and simple realms)."""

    def variant(self, message, client):
        return None

    @staticmethod
    def renders_alike(message) -> bool:
        return True

    def render(self, message, variant):
        frame = message.body.get("frame", "")
        return frame.encode("utf-8") if isinstance(frame, str) else frame


@dataclass
class SendResult:
    message: Message
    duplicate: bool = False
    online: list[str] = field(default_factory=list)  # receivers connected somewhere
    offline: list[str] = field(default_factory=list)  # receivers whose copy waits in the inbox


#: a room message whose store answers while others for the same room are still being stored
#: waits for them, at most this long, so a burst goes out in one flush (each member gets all
#: of it in one send; heihei/net/sendpath.py)
ROOM_BATCH_MAX_WAIT_S = 0.002
#: a login replays the inbox in chunks no smaller than this
MIN_REPLAY_CHUNK_BYTES = 16 * 1024
#: a client that does not confirm a replayed chunk within this keeps the rest for next time
REPLAY_CONFIRM_TIMEOUT_S = 60.0

@dataclass(frozen=True)
class Notice:
    """Something to tell connections that is not a stored message: a new online total, a member
    who joined a group, a recalled message, an item to show. `kind` and `data` are the realm's
    own (its `on_notice` renders them); `skip` is a session id that does not get it (the
    connection that caused it). Crosses nodes as JSON, so `data` holds JSON values only."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None

    def packed(self) -> dict[str, Any]:
        return {"kind": self.kind, "data": self.data, "skip": self.skip}

    @classmethod
    def unpacked(cls, value: dict[str, Any]) -> "Notice":
        return cls(value["kind"], value.get("data") or {}, value.get("skip"))


#: a realm's handler of notices: (the notice, its local receivers) -> None
NoticeHandler = Callable[[Notice, set], None]
PresenceHook = Callable[[str, str], None]


class Hub:
    _log = Logger()

    def __init__(self, node_id: str, store, *, clock, retention: Retention | None = None, metrics=None,
                 presence_ttl_s: float = 30.0, presence_refresh_s: float = 10.0,
                 group_retention: GroupRetention | None = None) -> None:
        self.node_id = node_id
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.presence = Presence(node_id, store, clock, ttl_s=presence_ttl_s, refresh_interval_s=presence_refresh_s)
        self.history = History(store, clock, retention or Retention())
        self.inbox = Inbox(store)
        self.groups = Groups(store)
        self.rates = RateLimiter(clock)
        self.moderation = Moderation()
        self.bus = Bus(node_id, store, self._on_packet, metrics)
        self.router = Router(node_id, store, self.history)
        self.renderers: dict[str, Renderer] = {}
        self.notice_handlers: dict[str, NoticeHandler] = {}
        #: called with (realm, user) on a user's first connection / last disconnection, cluster-wide
        self.on_online: list[PresenceHook] = []
        self.on_offline: list[PresenceHook] = []
        #: connections that asked for `connect(replay=True)`: live messages wait here
        #: (message, on_delivered) until `deliver_pending` has sent the stored ones
        self._held: dict[IClient, list[tuple[Message, Callable[[], None] | None]]] = {}
        #: (realm, room) -> room messages being stored; and those stored, waiting for the rest
        self._room_storing: dict[tuple[str, str], int] = {}
        self._room_batches: dict[tuple[str, str], tuple[list[Message], Any]] = {}
        #: rooms reading their history again after the bus was away: bus messages wait meanwhile
        self._room_catching: set[tuple[str, str]] = set()
        self.room_gaps = RoomGaps()
        self.acks = InboxAcks(self.inbox, clock)
        #: realms whose groups keep one log per group and a cursor per member (`use_group_log`)
        self.group_log = GroupLog(store, self.history, group_retention)
        self.group_feed = GroupFeed(self, self.group_log, clock)
        self.groups.on_added.append(self.group_feed.added)

    def register_realm(self, realm: str, renderer: Renderer, on_notice: NoticeHandler | None = None) -> None:
        self.renderers[realm] = renderer
        if on_notice is not None:
            self.notice_handlers[realm] = on_notice

    def use_group_log(self, realm: str, *, echo_to_sender: bool = False, pull: bool = False) -> None:
        """The realm's group messages are stored once in the group's log and read by every member
        from their cursor (heihei.core.grouplog, heihei.core.groupfeed), not copied to inboxes.
        With `pull`, its clients are not sent what they missed at login: they pull it
        (heihei.core.grouppull)."""
        self.group_feed.use(realm, echo_to_sender=echo_to_sender, pull=pull)

    async def start(self) -> None:
        self.bus.start()
        self.store.on_resubscribed.append(self._catch_up_all)
        self.store.on_bus_lost.append(self._bus_lost)
        await self.presence.start()

    async def stop(self) -> None:
        if self._catch_up_all in self.store.on_resubscribed:
            self.store.on_resubscribed.remove(self._catch_up_all)
        if self._bus_lost in self.store.on_bus_lost:
            self.store.on_bus_lost.remove(self._bus_lost)
        self.bus.stop()
        self.group_feed.stop()
        await self.acks.flush()
        await self.group_feed.flush()
        await self.presence.stop()

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- connections ---------------------------------------------------------------

    async def connect(self, client: IClient, *, replay: bool = False) -> bool:
        """`client.user` is now connected here; True if it is their first connection anywhere.

        `replay=True` promises a `deliver_pending(client)` right after: until it
        has sent the stored messages, live ones for this connection are held
        back, so a message arriving during login neither overtakes the stored
        ones nor arrives twice (it may be in the inbox and sent live)."""
        if replay:
            self._held.setdefault(client, [])
        first, _ = await self.presence.add(client.realm, client.user, client)
        if replay and client.realm in self.group_feed.realms and client.connection_open:
            await self.group_feed.attach(client)  # live group messages held until deliver_pending
        if first:
            self._fire(self.on_online, client.realm, client.user)
        return first

    async def disconnect(self, client: IClient) -> bool:
        """Forget a closed connection (and its rooms); True if the user is now offline everywhere."""
        self._held.pop(client, None)
        self.group_feed.detach(client)
        for realm, room in self.presence.rooms_of(client):
            await self.leave_room(client, room)
        return await self.forget_user(client)

    async def forget_user(self, client: IClient) -> bool:
        """The connection no longer counts as its user's (it stays in its rooms); True if that
        was the user's last connection anywhere."""
        if client.user is None:
            return False
        last, _ = await self.presence.remove(client.realm, client.user, client)
        if last:
            self._fire(self.on_offline, client.realm, client.user)
        return last

    async def join_room(self, client: IClient, room: str) -> int:
        """Add a connection to a room; returns the room's total across the cluster."""
        # subscribed before the Redis round trip, so nothing sent meanwhile is missed
        _, total = await self.presence.join_room(client.realm, room, client,
                                                 on_first=lambda: self.bus.watch_room(client.realm, room))
        return total

    async def leave_room(self, client: IClient, room: str) -> int:
        _, total = await self.presence.leave_room(client.realm, room, client,
                                                  on_last=lambda: self.bus.unwatch_room(client.realm, room))
        return total

    def _fire(self, hooks: list[PresenceHook], realm: str, user: str) -> None:
        for hook in hooks:
            try:
                hook(realm, user)
            except Exception:
                self._log.failure("presence hook failed for {realm}/{user}", realm=realm, user=user)

    # -- sending ---------------------------------------------------------------------

    def _new(self, realm, conversation, sender, body, kind, target, client_id) -> Message:
        return Message(realm=realm, conversation=conversation, sender=str(sender), body=body, kind=kind,
                       target=str(target), created_ms=self.now_ms(), client_id=client_id)

    async def send_to_user(self, realm: str, sender: str, to: str, body: dict[str, Any], *,
                           client_id: str | None = None, echo_to_sender: bool = False,
                           exclude: IClient | None = None) -> SendResult:
        """Store a 1:1 message and deliver it to every connection of `to` (and, if asked,
        the sender's other connections)."""
        message = self._new(realm, pair_conversation(sender, to), sender, body, "user", to, client_id)
        receivers = [str(to)] if str(to) != str(sender) else []
        return await self._store_and_route(message, receivers, [str(sender)] if echo_to_sender else [], exclude)

    async def send_to_group(self, realm: str, sender: str, group: str, body: dict[str, Any], *,
                            client_id: str | None = None, echo_to_sender: bool = False,
                            exclude: IClient | None = None) -> SendResult:
        """Store a group message and deliver it to every member but the sender.

        The members come from the realm's persistent groups; a sender who is not
        one is refused (`no-such-group` when the group does not exist, else
        `not-a-member`)."""
        sender = str(sender)
        if realm in self.group_feed.realms:
            return await self._store_in_group_log(realm, sender, group, body, client_id, exclude=exclude)
        members = await self.groups.members(realm, group)
        if sender not in members:
            if not members and not await self.groups.exists(realm, group):
                raise Refused(errors.NO_SUCH_GROUP, f"no such group {group}")
            raise Refused(errors.NOT_A_MEMBER, f"not a member of group {group}")
        message = self._new(realm, group_conversation(group), sender, body, "group", group, client_id)
        receivers = [m for m in members if m != sender]
        return await self._store_and_route(message, receivers, [sender] if echo_to_sender else [], exclude)

    async def _store_in_group_log(self, realm: str, sender: str, group: str, body: dict[str, Any],
                                  client_id: str | None, *, exclude: IClient | None = None) -> SendResult:
        """Store once in the group's log and publish on its channel; every node with members online
        delivers it from there (this one too), so it comes in order with removals. `exclude` (the
        sending connection, when the sender's others get the message) is left out."""
        message = self._new(realm, group_conversation(group), sender, body, "group", group, client_id)
        token = self.group_feed.skip_token(exclude) if exclude is not None and self.group_feed.realms[realm] \
            else None
        try:
            stored = await self.group_log.store_message(message, self.groups.group_key(realm, group),
                                                        self.groups.members_key(realm, group), skip_token=token)
        except Exception:
            if token is not None:
                self.group_feed.forget_skip_token(token)
            raise
        if token is not None and (isinstance(stored, int) or stored.duplicate):
            self.group_feed.forget_skip_token(token)
        if stored == NO_SUCH_GROUP:
            raise Refused(errors.NO_SUCH_GROUP, f"no such group {group}")
        if isinstance(stored, int):
            raise Refused(errors.NOT_A_MEMBER, f"not a member of group {group}")
        if not stored.duplicate:
            self._count_published(1)
        return SendResult(stored.message, duplicate=stored.duplicate)

    async def send_to_room(self, realm: str, sender: str, room: str, body: dict[str, Any], *,
                           client_id: str | None = None, store: bool = True) -> SendResult:
        """Broadcast to everyone in a room on every node (rooms keep history, no inboxes)."""
        message = self._new(realm, room_conversation(room), sender, body, "room", room, client_id)
        where = (realm, room)
        if not store:
            message = message.with_stored(0, "0|" + message.payload_json().decode("utf-8"))
            self._deliver_to_room(where, message, wait=where in self._room_batches)
            await self.bus.to_room(realm, room, {"k": "r", "r": realm, "room": room, "e": message.entry})
            return SendResult(message)
        self._room_storing[where] = self._room_storing.get(where, 0) + 1
        stored = None
        try:
            stored = await self.router.to_room(message, room)  # other nodes: published by the same call
        finally:
            left = self._room_storing.pop(where) - 1
            if left:
                self._room_storing[where] = left
            if stored is not None and not stored.duplicate:
                self._deliver_to_room(where, stored.message, wait=left > 0)
            elif not left and where in self._room_batches:
                self._release_room(where)  # the others were waiting for this one
        if stored.duplicate:
            return SendResult(stored.message, duplicate=True)
        self._count_published(1)
        return SendResult(stored.message)

    def _deliver_to_room(self, where: tuple[str, str], message: Message, wait: bool) -> None:
        """Deliver a room message here now, or with the room's messages still being stored (`wait`)."""
        batch = self._room_batches.get(where)
        if batch is None and not wait:
            self._deliver_room_message(where, message)
            return
        if batch is None:
            timer = self.clock.callLater(ROOM_BATCH_MAX_WAIT_S, self._release_room, where)
            batch = self._room_batches[where] = ([], timer)
        batch[0].append(message)
        if not wait:
            self._release_room(where)

    def _release_room(self, where: tuple[str, str]) -> None:
        messages, timer = self._room_batches.pop(where, ((), None))
        if timer is not None and timer.active():
            timer.cancel()
        for message in messages:
            self._deliver_room_message(where, message)

    def _deliver_room_message(self, where: tuple[str, str], message: Message) -> None:
        members = self.presence.local_room(*where)
        if not members:
            self.room_gaps.forget(where)
        elif self.room_gaps.first_time(where, message.id):
            self._deliver_local(message, members)

    # -- notices ---------------------------------------------------------------------------

    async def notify_room(self, realm: str, room: str, notice: Notice) -> None:
        """Tell every connection in `room`, on every node, about `notice` (not stored)."""
        self._notice_here(realm, notice, self.presence.local_room(realm, room))
        await self.bus.to_room(realm, room, {"k": "n", "r": realm, "room": room, "n": notice.packed()})

    async def notify_users(self, realm: str, users: Iterable[str], notice: Notice) -> None:
        """Tell every connection of `users`, on every node, about `notice` (not stored).

        One Redis call finds the nodes where they are connected and publishes
        there; this node's connections get it from the presence map. A user
        whose connection is registering right now may miss it: notices are
        what is live, the state itself is read again at connect."""
        users = list(dict.fromkeys(str(u) for u in users))
        if not users:
            return
        here = set()
        for user in users:
            here |= self.presence.local(realm, user)
        self._notice_here(realm, notice, here)
        await self.router.notify_users(realm, users, notice.packed(), self.now_ms())

    def _notice_here(self, realm: str, notice: Notice, clients: set) -> None:
        handler = self.notice_handlers.get(realm)
        if handler is None or not clients:
            return
        if notice.skip is not None:
            clients = {c for c in clients if getattr(getattr(c, "session", None), "id", None) != notice.skip}
        else:
            clients = set(clients)
        if clients:
            try:
                handler(notice, clients)
            except Exception:
                self._log.failure("{realm} notice {kind} failed", realm=realm, kind=notice.kind)

    async def _store_and_route(self, message: Message, receivers: list[str], extra: list[str],
                               exclude: IClient | None) -> SendResult:
        everyone = list(dict.fromkeys(receivers + extra))
        routed = await self.router.to_users(message, everyone, receivers)
        message = routed.stored.message
        if routed.stored.duplicate:
            return SendResult(message, duplicate=True)
        self._count_published(routed.published)
        where = routed.where
        result = SendResult(message)
        for user in receivers:
            (result.online if where.get(user) else result.offline).append(user)
        # this node's users: straight to their connections (also those whose
        # presence mirror is not written yet)
        here = self.presence.users[message.realm]
        local_users = [u for u in everyone if self.node_id in where.get(u, ()) or u in here]
        self._deliver_to_users(message, local_users, ack=set(receivers), exclude=exclude)
        return result

    def _count_published(self, packets: int) -> None:
        if self.metrics is not None and packets:
            self.metrics.bus_hops_by_direction["out"].inc(packets)

    # -- local delivery ---------------------------------------------------------------

    def _on_packet(self, packet: dict[str, Any]) -> None:
        kind, realm = packet.get("k"), packet.get("r")
        if realm not in self.renderers:
            return
        if kind == "u":
            message = Message.from_entry(realm, packet["e"])
            self._deliver_to_users(message, packet["us"], ack=set(packet.get("ack", ())))
        elif kind == "r":
            where = (realm, packet["room"])
            self._deliver_to_room(where, Message.from_entry(realm, packet["e"]), wait=where in self._room_catching)
        elif kind == "n":
            self._notice_here(realm, Notice.unpacked(packet["n"]), self.presence.local_room(realm, packet["room"]))
        elif kind == "nu" and (packet.get("n") or {}).get("kind") == GROUP_ADDED:
            group = str(packet["n"]["data"]["group"])
            defer.Deferred.fromCoroutine(self.group_feed.added(realm, group, [str(u) for u in packet["us"]],
                                                               tell_others=False)).addErrback(
                report, self._log, "attaching connections to a group failed")
        elif kind == "nu":
            here = set()
            for user in packet["us"]:
                here |= self.presence.local(realm, user)
            self._notice_here(realm, Notice.unpacked(packet["n"]), here)

    def _deliver_to_users(self, message: Message, users: Iterable[str], *, ack: set[str],
                          exclude: IClient | None = None) -> None:
        for user in users:
            clients = [c for c in self.presence.local(message.realm, user) if c is not exclude]
            on_delivered = self._acker(message, user) if user in ack and message.entry else None
            self._deliver_local(message, clients, on_delivered=on_delivered)

    def _acker(self, message: Message, user: str) -> Callable[[], None]:
        """Remove the inbox entry once any of the user's connections confirmed receiving it."""
        done = []

        def written() -> None:
            if done:
                return
            done.append(True)
            self.acks.add(message.realm, user, message.entry)

        return written

    def _deliver_local(self, message: Message, clients: Iterable[IClient],
                       on_delivered: Callable[[], None] | None = None) -> int:
        """Render once per variant, prepare each frame once, write it to every client.

        This is the fan-out's hot path (a room of N costs N trips through the
        inner loop), so the per-receiver work is set operations and the
        protocol's `send_frame_to_many`; bench/README.md has the figures."""
        renderer = self.renderers.get(message.realm)
        if renderer is None:
            return 0
        targets = set(clients)  # a copy: a send may change who is in the room
        if self._held:
            for client in targets & self._held.keys():  # logging in: after its stored messages
                self._held[client].append((message, on_delivered))
            targets.difference_update(self._held.keys())
        if not targets:
            return 0
        return self._write(renderer, message, self._variant_groups(renderer, message, targets), on_delivered)

    def send_to_clients(self, message: Message, clients: set) -> int:
        """Render once per variant, prepare once, write to each of `clients` through the batched
        broadcast path (no per-frame confirmation: the caller confirms cumulatively)."""
        renderer = self.renderers.get(message.realm)
        if renderer is None:
            return 0
        return self._write(renderer, message, self._variant_groups(renderer, message, clients), None)

    def _write(self, renderer: Renderer, message: Message, variants, on_delivered) -> int:
        """Each variant rendered and prepared once, written to its receivers; the number written.
        A message the renderer calls urgent overtakes the broadcasts queued on this node
        (heihei.net.sendpath)."""
        sent = 0
        urgent = getattr(renderer, "urgent", None)
        urgent = urgent is not None and urgent(message)
        for variant, group in variants:
            payload = renderer.render(message, variant)
            if payload is None or not group:
                continue
            some = next(iter(group))
            frame = some.prepare(payload)
            send_many = getattr(some, "send_frame_to_many", None)
            if send_many is not None:
                sent += send_many(frame, group, on_delivered, urgent)
            else:
                sent += sum(1 for client in group if client.send_frame(frame, on_delivered))
        if self.metrics is not None and sent:
            self.metrics.deliveries_by_realm[message.realm].inc(sent)
        return sent

    def _variant_groups(self, renderer: Renderer, message: Message, clients: set) -> list[tuple[Hashable, Any]]:
        """Receivers grouped by the variant they get."""
        alike = getattr(renderer, "renders_alike", None)
        if alike is not None and clients and alike(message):
            return [(renderer.variant(message, next(iter(clients))), clients)]  # no call per receiver
        by_sender = getattr(renderer, "by_sender", None)
        if by_sender is not None:
            # the sender's connections here are in the presence map under their user
            own = clients & self.presence.local(message.realm, message.sender)
            return [(by_sender[0], own), (by_sender[1], clients - own if own else clients)]
        groups: dict[Hashable, list] = {}
        for client in clients:
            groups.setdefault(renderer.variant(message, client), []).append(client)
        return list(groups.items())

    def _bus_lost(self) -> None:
        self.room_gaps.bus_lost(self.now_ms())

    def _catch_up_all(self) -> None:
        """The bus is back after Redis went away: messages published meanwhile reached nobody. They
        are in the inboxes, so every connection that keeps one gets it again; rooms read their
        history from shortly before the gap (heihei.core.roomgaps)."""
        sessions = [c.session for users in self.presence.users.values() for conns in users.values() for c in conns
                    if getattr(c, "session", None) is not None]
        lost_at = self.room_gaps.bus_back()
        rooms = [where for where, members in self.presence.rooms.items() if members and where[0] in self.renderers]
        if lost_at is None:
            rooms = []
        self._log.info("the bus is back: {n} connections catch up on their inboxes, {r} rooms on their history",
                       n=len(sessions), r=len(rooms))
        for session in sessions:
            defer.Deferred.fromCoroutine(session.catch_up()).addErrback(
                lambda f: report(f, self._log, "catching up after the bus came back failed"))
        self.group_feed.catch_up_all(lost_at)
        for where in rooms:
            defer.Deferred.fromCoroutine(self._catch_up_room(where, lost_at)).addErrback(
                lambda f: report(f, self._log, "catching a room up after the bus came back failed"))

    async def _catch_up_room(self, where: tuple[str, str], lost_at_ms: int) -> int:
        """Deliver the room messages stored since shortly before the gap that this node has not
        delivered, in order; live room traffic waits meanwhile."""
        self._room_storing[where] = self._room_storing.get(where, 0) + 1  # own sends wait too
        self._room_catching.add(where)
        delivered = 0
        try:
            missed = await self.history.since_id(where[0], room_conversation(where[1]),
                                                 self.room_gaps.catch_up_floor(where, lost_at_ms), MAX_CATCH_UP)
            for message in missed:
                if self.room_gaps.first_time(where, message.id):
                    self._deliver_local(message, self.presence.local_room(*where))
                    delivered += 1
        finally:
            self._room_catching.discard(where)
            left = self._room_storing.pop(where) - 1
            if left:
                self._room_storing[where] = left
            elif where in self._room_batches:
                self._release_room(where)
        if delivered:
            self._log.info("room {room} of {realm}: {n} messages caught up after the bus gap",
                           room=where[1], realm=where[0], n=delivered)
        return delivered

    async def catch_up(self, client: IClient) -> int:
        """`deliver_pending` again for a connection that is already logged in (live messages held)."""
        self._held.setdefault(client, [])
        return await self.deliver_pending(client)

    def release_held(self, client: IClient) -> int:
        """Send the live messages held for a connection since `connect(replay=True)`, without a replay."""
        held = self._held.pop(client, ())
        for message, on_delivered in held:
            self._deliver_local(message, [client], on_delivered=on_delivered)
        return len(held)

    async def deliver_pending(self, client: IClient) -> int:
        """Send the user's inbox to this (new) connection, oldest first.

        Entries leave the inbox only when the connection confirms receipt, so a
        connection that drops halfway leaves the rest (and the unconfirmed
        ones) for the next login. Returns how many frames were sent."""
        pending_ids: set[int] = set()
        try:
            sent = await self._send_pending(client, pending_ids)
        finally:
            # live messages held since connect(replay=True), minus those just sent from the inbox
            for message, on_delivered in self._held.pop(client, ()):
                if message.id not in pending_ids:
                    self._deliver_local(message, [client], on_delivered=on_delivered)
        if client.connection_open and client in self.group_feed.conns:
            # then each group's log after the member's cursor (only groups still held: a login or
            # a group just joined; after a bus gap the groups catch up on their own)
            sent += await self.group_feed.replay(client)
        return sent

    async def _send_pending(self, client: IClient, pending_ids: set[int]) -> int:
        """Send in chunks of at most half the connection's queue bound, each one
        only after the client confirmed the previous: a large inbox must neither
        overflow the bounded queue (which would cut the user off at every login)
        nor sit in memory all at once."""
        realm, user = client.realm, client.user
        pending = await self.inbox.pending(realm, user, limit=self.history.retention.inbox_max)
        pending_ids.update(m.id for m in pending)
        renderer = self.renderers[realm]
        chunk_limit = max(MIN_REPLAY_CHUNK_BYTES, client.send_queue_max_bytes // 2)
        progress = {"confirmed": -1, "wait_for": None, "waiter": None}

        def confirm(index: int, entry: str) -> None:
            self.acks.add(realm, user, entry)  # removed with the others of the batch
            progress["confirmed"] = index
            waiter = progress["waiter"]
            if waiter is not None and index >= progress["wait_for"] and not waiter.called:
                waiter.callback(True)

        def closed(_):
            waiter = progress["waiter"]
            if waiter is not None and not waiter.called:
                waiter.callback(False)

        client.when_closed().addCallback(closed)

        async def confirmed_up_to(index: int) -> bool:
            if progress["confirmed"] >= index:
                return True
            waiter = defer.Deferred()
            progress["waiter"], progress["wait_for"] = waiter, index
            timer = self.clock.callLater(REPLAY_CONFIRM_TIMEOUT_S, lambda: waiter.called or waiter.callback(False))
            try:
                return await waiter
            finally:
                progress["waiter"] = None
                if timer.active():
                    timer.cancel()

        unsendable: list[str] = []
        sent = chunk_bytes = 0
        for message in pending:
            payload = renderer.render(message, renderer.variant(message, client))
            if payload is None:
                unsendable.append(message.entry)
                continue
            frame = client.prepare(payload)
            if chunk_bytes and chunk_bytes + len(frame) > chunk_limit:
                if not await confirmed_up_to(sent - 1) or not client.connection_open:
                    break  # gone or silent: the rest stays in the inbox
                chunk_bytes = 0
            if not client.send_frame(frame, lambda i=sent, e=message.entry: confirm(i, e)):
                break
            sent += 1
            chunk_bytes += len(frame)
        if unsendable:  # nothing this realm can show: do not keep them forever
            await self.inbox.ack(realm, user, unsendable)
        return sent
