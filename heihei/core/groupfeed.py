"""
Group messages to the connections on this node: live from the group's channel, replayed from the
member's cursor at login, confirmed cumulatively (heihei.core.grouplog has the Redis side).

How a group message reaches a connection:

- **live**: a logged-in connection of a member is *attached* to each of its groups; the node
  listens on the channel of every group with an attached connection. A message arrives there
  once per node, is parsed once, rendered and prepared once and written to every attached
  connection through the batched broadcast path (`send_frame_to_many` without a per-frame
  callback, heihei.net.sendpath). Senders' own connections are left out (boss), as before.
- **confirmation**: every CONFIRM_BATCH_S (groups with many connections here) or CONFIRM_SMALL_S
  (the others), each connection that was sent group messages since the last round is asked for
  one cumulative confirmation (`confirm_written`: a WebSocket ping behind the frames; a
  connection never has more than one such request waiting for its ping). Its pong
  moves the member's cursors to what had been written before it; cursor writes of all
  connections leave together, one Redis call per CURSOR_BATCH_S (`GroupLog.advance`).
- **login (the seam)**: the connection is attached with its live messages *held*, the node's
  subscription to the channel is confirmed by Redis, then the log is read after the member's
  cursor and sent in order (in chunks: a chunk waits for the confirmation of the one before, so
  a large backlog neither overflows the bounded send queue nor sits in memory); then the held
  messages newer than the last one replayed go out, and the connection keeps a *floor* until a
  live message newer than it arrives. So nothing is missed (subscribed before the read) and
  nothing comes twice (every later message has a larger id: the channel carries a group's
  messages in store order).
- **removal**: the membership script announces it on the group's channel, after every message
  stored before it and before any stored after it; the node detaches the member's connections
  when it reads it, so a removed member is sent nothing stored after the removal. An added
  member's open connections are attached (and replay from the cursor the membership script gave
  them: the group's last message at the adding).
- **the bus away** (Redis restarted): each group reads its log after the last message this node
  delivered and sends what it missed, in order, while live ones wait.
- **realms whose clients pull** (J-IM, `use(realm, pull=True)`, heihei.core.grouppull): nothing is
  replayed at login; the connection takes the log's head as its *live floor* (older messages wait
  for a pull), and its confirmations are recorded as the range (floor, newest confirmed], so the
  cursor only moves over what is contiguous. A sending connection can be left out of its own
  message (`skip_token`), which the other nodes never see.

At-least-once: frames written but not confirmed when a node dies come again at the next login
(the cursor did not move); nothing accepted is lost.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.internet import defer
from twisted.logger import Logger

from heihei.core.grouplog import GroupLog, group_channel, last_id_key
from heihei.core.grouppull import GroupPull
from heihei.core.model import Message, id_floor_for_ms
from heihei.incidents import report

#: a connection sent group messages is asked for a confirmation at most this often. Each round
#: costs every such connection a ping, a pong and a cursor write (about as much as a delivery),
#: so a busy group pays it once a second, not per message; what it costs instead: a node that
#: dies sends up to this much of each group again at the members' next logins (bench/README.md)
CONFIRM_BATCH_S = 2.0
#: groups with fewer connections on this node than LARGE_GROUP_CONNS are confirmed sooner: their
#: rounds are cheap, and a member who reconnects gets less a second time
CONFIRM_SMALL_S = 0.05
LARGE_GROUP_CONNS = 200
#: a round asks this many connections at a time, every CONFIRM_SLICE_S, so 5,000 pongs (and the
#: cursor writes they cause) do not all land in one iteration of the reactor and hold up delivery
CONFIRM_SLICE = 250
CONFIRM_SLICE_S = 0.01
#: confirmed cursors wait at most this long to be written (one Redis call for all)
CURSOR_BATCH_S = 0.1
#: log entries read per call while replaying or catching up
PAGE = 500
#: a replay chunk is at most this share of the connection's send queue bound, and at least MIN
MIN_REPLAY_CHUNK_BYTES = 16 * 1024
#: a client that does not confirm a replayed chunk within this keeps the rest for next time
REPLAY_CONFIRM_TIMEOUT_S = 60.0
#: live messages held per connection and group during its replay; beyond, they are read from the log
MAX_HELD = 2000
#: the notice that tells a node a user was added to a group (its connections attach)
GROUP_ADDED = "hh-group-added"
#: after a bus gap, a group that had no live message yet reads its log from this long before the gap
CATCH_UP_SLACK_MS = 5000
#: a sending connection left out of its own group message is forgotten after this (the message
#: normally comes back from the channel within milliseconds)
SKIP_TOKEN_S = 30.0


class _Here:
    """One group's attached connections on this node."""

    __slots__ = ("conns", "held", "floors", "last_id", "catching", "queued", "overflowed")

    def __init__(self) -> None:
        self.conns: set = set()
        #: connections replaying: live messages wait here
        self.held: dict[Any, list[Message]] = {}
        #: connections that replayed up to a server id and have not had a newer live message yet
        self.floors: dict[Any, int] = {}
        #: the newest message delivered live here
        self.last_id = 0
        #: catching up after a bus gap: live messages wait in `queued` (with the connection they skip)
        self.catching = False
        self.queued: list[tuple[Message, Any]] = []
        #: connections whose held list overflowed (their replay reads further)
        self.overflowed: set = set()


class _Conn:
    """What a connection was sent and asked to confirm."""

    __slots__ = ("asked", "confirmed", "waiters", "groups", "live_floors")

    def __init__(self) -> None:
        #: group -> newest id written and asked to be confirmed
        self.asked: dict[str, int] = {}
        #: group -> newest id confirmed
        self.confirmed: dict[str, int] = {}
        #: (group, id, Deferred) waiting for a confirmation covering id
        self.waiters: list[tuple[str, int, defer.Deferred]] = []
        #: the groups this connection is attached to
        self.groups: set[str] = set()
        #: realms whose clients pull: group -> the log's head when the connection went live there
        self.live_floors: dict[str, int] = {}


class GroupFeed:
    _log = Logger()

    def __init__(self, hub, log: GroupLog, clock) -> None:
        self.hub = hub
        self.log = log
        self.clock = clock
        #: realm -> do senders' other connections get their own group messages
        self.realms: dict[str, bool] = {}
        self.here: dict[tuple[str, str], _Here] = {}
        self.conns: dict[Any, _Conn] = {}
        #: (realm, group) -> newest id sent since the last round; small groups apart (CONFIRM_SMALL_S)
        self._dirty: dict[tuple[str, str], int] = {}
        self._dirty_small: dict[tuple[str, str], int] = {}
        self._confirm_timer = None
        self._small_timer = None
        #: connections of the current round not asked yet (an ordered set), and the slice timer
        self._to_ask: dict[Any, None] = {}
        self._slice_timer = None
        #: realm -> user -> group -> id confirmed, not written yet
        self._cursors: dict[str, dict[str, dict[str, int]]] = {}
        self._cursor_timer = None
        self._handler = self._received
        #: realms whose clients pull what they missed (heihei.core.grouppull)
        self.pulls: set[str] = set()
        self.pull = GroupPull(log)
        #: realm -> user -> group -> live floor -> newest confirmed, not written yet
        self._seen: dict[str, dict[str, dict[str, dict[int, int]]]] = {}
        #: token -> (a sending connection its group message is not sent to, when) (`skip_token`)
        self._skip: dict[str, tuple[Any, float]] = {}
        self._skip_seq = 0

    def use(self, realm: str, *, echo_to_sender: bool = False, pull: bool = False) -> None:
        self.realms[realm] = echo_to_sender
        if pull:
            self.pulls.add(realm)

    def skip_token(self, conn) -> str:
        """A token for the store step: the group message it publishes is not sent to `conn`."""
        now = self.clock.seconds()
        skip = self._skip
        while skip:  # tokens whose message never came back (oldest first): no timer per token
            oldest = next(iter(skip))
            if skip[oldest][1] > now - SKIP_TOKEN_S:
                break
            del skip[oldest]
        self._skip_seq += 1
        token = f"{id(self):x}.{self._skip_seq}"
        skip[token] = (conn, now)
        return token

    def forget_skip_token(self, token: str) -> None:
        """The store step published nothing (a duplicate, a refusal)."""
        self._skip.pop(token, None)

    def live_floors(self, conn) -> dict[str, int]:
        """Group -> the log's head when this connection went live there (pull realms)."""
        state = self.conns.get(conn)
        return dict(state.live_floors) if state is not None else {}

    # -- attaching ----------------------------------------------------------------------------

    async def attach(self, conn, groups: list[str] | None = None) -> list[str]:
        """Attach a logged-in connection to its groups (or `groups`), live messages held until
        `replay`; returns once the node listens on their channels."""
        realm, user = conn.realm, conn.user
        if groups is None:
            groups = await self.hub.groups.groups_of(realm, user)
        if not groups or not conn.connection_open:
            return []  # (no state for a user in no group: an idle connection is most of a node's memory)
        state = self.conns.setdefault(conn, _Conn())
        waits = []
        for group in groups:
            if group in state.groups:
                continue
            where = (realm, group)
            h = self.here.get(where)
            if h is None:
                h = self.here[where] = _Here()
                waits.append(self.hub.store.subscribe(group_channel(realm, group), self._handler))
            h.conns.add(conn)
            h.held[conn] = []
            state.groups.add(group)
        if waits:
            await defer.gatherResults(waits, consumeErrors=True)
        return groups

    def detach(self, conn) -> None:
        """The connection is gone: it leaves every group here."""
        state = self.conns.pop(conn, None)
        if state is None:
            return
        for group in list(state.groups):
            self._leave(conn, state, conn.realm, group)
        for _, _, d in state.waiters:
            if not d.called:
                d.callback(False)
        state.waiters = []

    def _leave(self, conn, state: _Conn, realm: str, group: str) -> None:
        state.groups.discard(group)
        state.asked.pop(group, None)
        state.live_floors.pop(group, None)
        where = (realm, group)
        h = self.here.get(where)
        if h is None:
            return
        h.conns.discard(conn)
        h.held.pop(conn, None)
        h.floors.pop(conn, None)
        h.overflowed.discard(conn)
        if not h.conns:
            del self.here[where]
            self._dirty.pop(where, None)
            self._dirty_small.pop(where, None)
            self.hub.store.unsubscribe(group_channel(realm, group), self._handler)

    # -- replay (login, added to a group) -----------------------------------------------------------

    async def replay(self, conn) -> int:
        """Send each group the connection is held in its messages after the member's cursor, then
        release its live ones; returns how many frames were sent."""
        state = self.conns.get(conn)
        if state is None:
            return 0
        sent = 0
        for group in sorted(state.groups):
            h = self.here.get((conn.realm, group))
            if h is None or conn not in h.held:
                continue
            if conn.realm in self.pulls:
                sent += await self._go_live(conn, state, group, h)
            else:
                sent += await self._replay_group(conn, state, group, h)
            if not conn.connection_open:
                break
        return sent

    async def _replay_group(self, conn, state: _Conn, group: str, h: _Here) -> int:
        realm, user = conn.realm, conn.user
        echo = self.realms.get(realm, False)
        renderer = self.hub.renderers[realm]
        chunk_limit = max(MIN_REPLAY_CHUNK_BYTES, conn.send_queue_max_bytes // 2)
        sent = chunk = 0
        floor = await self.log.start_cursor(realm, user, group, self.hub.groups.members_key(realm, group))
        if floor is None or conn not in h.held:  # not a member (any more), or gone meanwhile
            if conn in self.conns:
                self._leave(conn, state, realm, group)
            return 0
        while True:
            page = await self.log.after(realm, group, floor, PAGE)
            if conn not in h.held or not conn.connection_open:
                return sent
            for message in page:
                floor = message.id
                if message.sender == user and not echo:
                    continue
                payload = renderer.render(message, renderer.variant(message, conn))
                if payload is None:
                    continue
                frame = conn.prepare(payload)
                if chunk and chunk + len(frame) > chunk_limit:
                    if not await self._confirmed(conn, state, group, message.id - 1):
                        return sent
                    if conn not in h.held or not conn.connection_open:
                        return sent
                    chunk = 0
                if not conn.send_frame(frame):
                    return sent
                sent += 1
                chunk += len(frame)
            self._ask(conn, state, group, floor)
            if len(page) == PAGE:
                continue
            if conn in h.overflowed:  # live messages were dropped from the held list: read on
                h.overflowed.discard(conn)
                h.held[conn] = []
                continue
            break
        held = h.held.pop(conn, [])
        for message in held:
            if message.id <= floor:
                continue
            floor = message.id
            if message.sender == user and not echo:
                continue
            payload = renderer.render(message, renderer.variant(message, conn))
            if payload is not None and conn.send_frame(conn.prepare(payload)):
                sent += 1
        h.floors[conn] = floor
        self._ask(conn, state, group, floor)
        self._request(conn, state)
        return sent

    async def fix_live_floors(self, conn) -> None:
        """A pull realm's connection: read each held group's live floor now (a login answer sent
        after this promises that every later message is pushed); `replay` releases them."""
        state = self.conns.get(conn)
        if state is None or conn.realm not in self.pulls:
            return
        for group in sorted(state.groups):
            h = self.here.get((conn.realm, group))
            if h is not None and conn in h.held and group not in state.live_floors:
                await self._live_floor(conn, state, group, h)
            if not conn.connection_open:
                return

    async def _live_floor(self, conn, state: _Conn, group: str, h: _Here) -> int | None:
        """The log's head, read after the node listens on the channel (None: not a member)."""
        realm = conn.realm
        if await self.log.start_cursor(realm, conn.user, group, self.hub.groups.members_key(realm, group)) is None \
                or conn not in h.held:
            if conn in self.conns and group in state.groups:
                self._leave(conn, state, realm, group)
            return None
        head = int(await self.hub.store.get(last_id_key(realm, group)) or 0)
        if conn in h.held:
            state.live_floors[group] = head
        return head

    async def _go_live(self, conn, state: _Conn, group: str, h: _Here) -> int:
        """A pull realm's connection: no replay. Its live floor is the log's head, read after the
        node listens on the channel: older messages wait for a pull, newer ones are pushed (the
        held ones now), so what it confirms is contiguous from the floor."""
        realm = conn.realm
        head = state.live_floors.get(group)
        if head is None:
            head = await self._live_floor(conn, state, group, h)
            if head is None:
                return 0
        if conn not in h.held or not conn.connection_open:
            return 0
        held = h.held.pop(conn, [])
        if conn in h.overflowed:  # live messages were dropped from the held list: they wait for a pull
            h.overflowed.discard(conn)
            if held:
                head = max(head, held[0].id - 1)
        state.live_floors[group] = head
        renderer = self.hub.renderers[realm]
        sent = 0
        floor = head
        for message in held:
            if message.id <= floor:
                continue
            floor = message.id
            payload = renderer.render(message, renderer.variant(message, conn))
            if payload is not None and conn.send_frame(conn.prepare(payload)):
                sent += 1
        h.floors[conn] = floor
        if floor > head:
            self._ask(conn, state, group, floor)
            self._request(conn, state)
        return sent

    async def _confirmed(self, conn, state: _Conn, group: str, upto: int) -> bool:
        """Wait until the client confirmed everything up to `upto` in `group` (False: gone or silent)."""
        if state.confirmed.get(group, 0) >= upto:
            return True
        self._ask(conn, state, group, upto)
        d = defer.Deferred()
        state.waiters.append((group, upto, d))
        if not self._request(conn, state):
            return False
        timer = self.clock.callLater(REPLAY_CONFIRM_TIMEOUT_S, lambda: d.called or d.callback(False))
        try:
            return await d
        finally:
            if timer.active():
                timer.cancel()

    # -- confirmation -------------------------------------------------------------------------------

    @staticmethod
    def _ask(conn, state: _Conn, group: str, upto: int) -> None:
        if state.asked.get(group, 0) < upto:
            state.asked[group] = upto

    def _request(self, conn, state: _Conn) -> bool:
        """One cumulative confirmation of everything asked so far."""
        snapshot = dict(state.asked)
        return conn.confirm_written(lambda: self._on_confirmed(conn, state, snapshot))

    def _on_confirmed(self, conn, state: _Conn, snapshot: dict[str, int]) -> None:
        realm, user = conn.realm, conn.user
        newer = {}
        for group, upto in snapshot.items():
            if state.confirmed.get(group, 0) < upto and group in state.groups:
                state.confirmed[group] = upto
                newer[group] = upto
        if newer and realm in self.pulls:
            mine_seen = self._seen.setdefault(realm, {}).setdefault(user, {})
            for group, upto in newer.items():
                floor = state.live_floors.get(group)
                if floor is not None and upto > floor:
                    ranges = mine_seen.setdefault(group, {})
                    if ranges.get(floor, 0) < upto:
                        ranges[floor] = upto
            if self._cursor_timer is None:
                self._cursor_timer = self.clock.callLater(CURSOR_BATCH_S, self._write_cursors_later)
        elif newer:
            mine = self._cursors.setdefault(realm, {}).setdefault(user, {})
            for group, upto in newer.items():
                if mine.get(group, 0) < upto:
                    mine[group] = upto
            if self._cursor_timer is None:
                self._cursor_timer = self.clock.callLater(CURSOR_BATCH_S, self._write_cursors_later)
        if state.waiters:
            left = []
            for group, upto, d in state.waiters:
                if snapshot.get(group, 0) >= upto:
                    if not d.called:
                        d.callback(True)
                else:
                    left.append((group, upto, d))
            state.waiters = left

    def _confirm_round(self) -> None:
        """Ask every connection that was sent group messages since the last round to confirm."""
        self._confirm_timer = None
        dirty, self._dirty = self._dirty, {}
        self._ask_round(dirty)

    def _confirm_small_round(self) -> None:
        self._small_timer = None
        dirty, self._dirty_small = self._dirty_small, {}
        self._ask_round(dirty)

    def _ask_round(self, dirty: dict[tuple[str, str], int]) -> None:
        to_ask = set()
        for (realm, group), upto in dirty.items():
            h = self.here.get((realm, group))
            if h is None:
                continue
            conns = h.conns if not h.held else h.conns - h.held.keys()
            for conn in conns:
                state = self.conns.get(conn)
                if state is not None:
                    if state.asked.get(group, 0) < upto:
                        state.asked[group] = upto
                    to_ask.add(conn)
        for conn in to_ask:
            self._to_ask[conn] = None
        if self._slice_timer is None:
            self._ask_some()

    def _ask_some(self) -> None:
        self._slice_timer = None
        to_ask = self._to_ask
        for _ in range(min(CONFIRM_SLICE, len(to_ask))):
            conn = next(iter(to_ask))
            del to_ask[conn]
            state = self.conns.get(conn)
            if state is not None:
                self._request(conn, state)
        if to_ask:
            self._slice_timer = self.clock.callLater(CONFIRM_SLICE_S, self._ask_some)

    def _write_cursors_later(self) -> None:
        self._cursor_timer = None
        defer.Deferred.fromCoroutine(self.flush()).addErrback(
            lambda f: report(f, self._log, "writing group cursors failed"))

    async def flush(self) -> None:
        """Write every confirmed cursor now (one Redis call per realm)."""
        if self._cursor_timer is not None and self._cursor_timer.active():
            self._cursor_timer.cancel()
        self._cursor_timer = None
        pending, self._cursors = self._cursors, {}
        seen, self._seen = self._seen, {}
        for realm, by_user in pending.items():
            await self.log.advance(realm, by_user)
        for realm, by_user in seen.items():
            await self.pull.mark(realm, {user: {group: list(ranges.items()) for group, ranges in groups.items()}
                                         for user, groups in by_user.items()})

    def stop(self) -> None:
        for timer in (self._confirm_timer, self._small_timer, self._slice_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._confirm_timer = self._small_timer = self._slice_timer = None
        self._to_ask.clear()

    # -- live ---------------------------------------------------------------------------------------

    def _received(self, channel: str, data) -> None:
        try:
            packet = orjson.loads(data)
            kind, realm, group = packet["k"], packet["r"], packet["g"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._log.error("undecodable group packet on {channel}", channel=channel)
            return
        try:
            if kind == "g":
                skip = self._skip.pop(packet["x"], (None,))[0] if "x" in packet else None
                self.live(realm, group, Message.from_entry(realm, packet["e"]), skip=skip)
            elif kind == "gm":
                self.removed(realm, group, [str(u) for u in packet.get("rm") or ()])
        except Exception:
            self._log.failure("group packet on {channel} failed", channel=channel)

    def live(self, realm: str, group: str, message: Message, *, skip=None) -> None:
        h = self.here.get((realm, group))
        if h is None:
            return
        if h.catching:
            h.queued.append((message, skip))
            return
        if message.id <= h.last_id:
            return  # caught up already
        h.last_id = message.id
        self._fan_out(realm, group, h, message, skip=skip)

    def _fan_out(self, realm: str, group: str, h: _Here, message: Message, *, skip=None) -> int:
        targets = h.conns
        if skip is not None and skip in targets:
            targets = targets - {skip}
        if h.held:
            for conn, held in h.held.items():
                if conn is skip:
                    continue
                if len(held) >= MAX_HELD:
                    held.clear()
                    h.overflowed.add(conn)
                held.append(message)
            targets = targets - h.held.keys()
        if h.floors:
            behind = [conn for conn, floor in h.floors.items() if message.id <= floor]
            for conn in [c for c in h.floors if c not in behind]:
                del h.floors[conn]
            if behind:
                targets = targets - set(behind)
        if not self.realms.get(realm, False):
            own = self.hub.presence.local(realm, message.sender)
            if own and not targets.isdisjoint(own):
                targets = targets - own
        if not targets:
            return 0
        sent = self.hub.send_to_clients(message, targets)
        if len(h.conns) >= LARGE_GROUP_CONNS:
            self._dirty[(realm, group)] = message.id
            if self._confirm_timer is None:
                self._confirm_timer = self.clock.callLater(CONFIRM_BATCH_S, self._confirm_round)
        else:
            self._dirty_small[(realm, group)] = message.id
            if self._small_timer is None:
                self._small_timer = self.clock.callLater(CONFIRM_SMALL_S, self._confirm_small_round)
        return sent

    # -- membership ---------------------------------------------------------------------------------

    def removed(self, realm: str, group: str, users: list[str]) -> None:
        """Members left the group: their connections here get nothing more of it."""
        if (realm, group) not in self.here:
            return
        for user in users:
            for conn in list(self.hub.presence.local(realm, user)):
                state = self.conns.get(conn)
                if state is not None and group in state.groups:
                    self._leave(conn, state, realm, group)

    async def added(self, realm: str, group: str, users: list[str], *, tell_others: bool = True) -> None:
        """Members joined the group: attach their open connections here (and tell the other nodes)."""
        if realm not in self.realms:
            return
        for user in users:
            for conn in list(self.hub.presence.local(realm, user)):
                if conn.connection_open:  # logged in (presence), attached or in no group yet
                    defer.Deferred.fromCoroutine(self._attach_and_replay(conn, group)).addErrback(
                        report, self._log, "attaching a connection to its new group failed")
        if tell_others:
            await self.hub.router.notify_users(realm, users, {"kind": GROUP_ADDED, "data": {"group": group},
                                                              "skip": None}, self.hub.now_ms())

    async def _attach_and_replay(self, conn, group: str) -> None:
        await self.attach(conn, [group])
        if conn.connection_open:
            await self.replay(conn)

    # -- the bus was away -----------------------------------------------------------------------

    def catch_up_all(self, lost_at_ms: int | None) -> None:
        for (realm, group), h in list(self.here.items()):
            defer.Deferred.fromCoroutine(self._catch_up(realm, group, h, lost_at_ms)).addErrback(
                report, self._log, "catching a group up after the bus came back failed")

    async def _catch_up(self, realm: str, group: str, h: _Here, lost_at_ms: int | None) -> int:
        if h.catching:
            return 0
        h.catching = True
        delivered = 0
        try:
            floor = h.last_id
            if not floor:
                start = lost_at_ms if lost_at_ms is not None else self.hub.now_ms()
                floor = min([id_floor_for_ms(start - CATCH_UP_SLACK_MS), *h.floors.values()])
            while True:
                page = await self.log.after(realm, group, floor, PAGE)
                for message in page:
                    floor = message.id
                    if message.id > h.last_id:
                        h.last_id = message.id
                        delivered += self._fan_out(realm, group, h, message)
                if len(page) < PAGE or self.here.get((realm, group)) is not h:
                    break
        finally:
            h.catching = False
            queued, h.queued = h.queued, []
            for message, skip in queued:
                self.live(realm, group, message, skip=skip)
        return delivered

