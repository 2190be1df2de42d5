"""
Busy live rooms: lanes by priority in front of the room broadcast.

A live room is a broadcast, not a mailbox: nothing is kept per viewer. Every
item for a room goes through `Lanes.send` (or `like`) on the node that got
it, and leaves through the hub's room path (`Rooms.broadcast_items`: one
stored room message, one prepared frame for every member connection on every
node) as a JSON array of items, so several items cost one write per member.

The lanes, per room:
- **priority** (gift, system, toast, action — moderation, stop-live, invites,
  and anything unknown): never dropped, never held back. It leaves at once,
  together with the chat items waiting on this node (in arrival order), and
  on every node its frame goes out ahead of the room's frames still queued
  there (chat batches, likes, counts: `priority=True`, the send path's urgent
  broadcasts, heihei.net.sendpath), so a gift never waits behind chat. The
  chat that rides along may so overtake the room's previous chat batch on a
  node still writing it (at most about two `lane_flush_s` of chat, reordered
  by a fraction of a second): a decision, measured — sending that chat in a
  frame of its own costs every viewer a frame more per gift, and at 10,000
  viewers doubled the chat's p99 (1.1-2.2 s) and the gifts' (362-684 ms).
- **chat** (text, barrage): the first `chat_budget_per_s` of each second are
  delivered in full; beyond that, every `chat_sample_every`-th, up to the
  budget again. The count is one Redis counter per room and second, so the
  budget is the room's across the cluster. A sampled-out item still reaches
  its sender's own connections (the sender always sees its own). Admitted
  chat waits at most `lane_flush_s` on this node, so a chat storm leaves in a
  few frames per second instead of one frame per item — or one flush more in
  a room whose gifts flow: then it rides the next gift's frame
  (`_rides_next_priority`, and so may a due like item).
- **like**: coalesced per node into one `like` item per `like_interval_s`
  with the number of likes (`count`, an extension) and the last liker's
  fields; the shipped client shows one like animation per item.

With several nodes, one of them batches a room's chat and likes: its **lane
leader** (a Redis key per room, `SET NX` with a lease the leader renews while
the room is busy). Another node forwards each admitted chat item to the
leader's channel at once, and its likes as one count per interval; the leader
puts them in its next batch. So a room gets one chat batch per flush, not one
per node. A forward that reaches nobody (the leader is gone: PUBLISH answers
0) is batched where it is, and that node may become the leader. Gifts and
system items never take that detour: they leave from the node that got them.

Flushes happen on a grid of the clock (multiples of `lane_flush_s` and of
`like_interval_s`), the same on every node, so what several nodes still send
for one room in the same interval reaches each viewer's node together.

Online counts (the fourth lane) are not items of the room's senders: the
live domain marks a room changed and pushes exact counts at a bounded rate
(heihei.heihei.lives, `push_counts`).

Timers run on the injected clock; `stop()` flushes what waits and cancels
them. State is in memory (a little per room until the room closes: `forget`) and
holds at most two flush intervals of chat (one while the room's gifts do not flow):
a node that dies loses at most that much chat and one interval of likes,
never a gift (those are sent before the call that carried them answers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import orjson
from twisted.internet import defer
from twisted.logger import Logger

from heihei.store.keys import key
from heihei.store.scripts import Script

PRIORITY = "priority"
CHAT = "chat"
LIKE = "like"
CHAT_TYPES = frozenset(("text", "barrage"))

# what became of an item (returned by `send`; counted in `stats`)
SENT = "sent"
WAITING = "waiting"
SAMPLED_OUT = "sampled-out"
COALESCED = "coalesced"

#: rooms kept before the first prune of idle ones
PRUNE_FLOOR = 256

#: how long a room's lane leader keeps the room without renewing (it renews at every flush)
LEADER_LEASE_S = 3.0

ELECT = Script("heihei_lane_leader", r"""
-- KEYS: 1 the room's leader key. ARGV: 1 this node, 2 lease ms. Returns the leader (this node if none).
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return cur
""")

COUNT_IN_WINDOW = Script("heihei_lane_budget", r"""
-- KEYS: 1 the room's counter for this second. ARGV: 1 ttl ms. Returns the count including this item.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
""")


def lane_of(msg: dict[str, Any]) -> str:
    kind = msg.get("msgType")
    if kind in CHAT_TYPES:
        return CHAT
    if kind == "like":
        return LIKE
    return PRIORITY


def admitted(count: int, budget: int, sample_every: int) -> bool:
    """Whether the `count`-th chat item of a room's second is delivered (pure: the lane rule)."""
    if count <= budget:
        return True
    beyond = count - budget
    return sample_every > 0 and beyond % sample_every == 0 and beyond // sample_every <= budget


@dataclass
class _Room:
    pending: list[dict[str, Any]] = field(default_factory=list)
    likes: int = 0
    like_msg: dict[str, Any] | None = None
    last_like_s: float = float("-inf")
    #: when the oldest chat item in `pending` arrived here
    waiting_since: float = float("inf")
    #: when this node last sent the room a priority frame
    last_priority_s: float = float("-inf")
    timer: Any = None


class Lanes:
    _log = Logger()

    def __init__(self, *, broadcast_items: Callable[..., Awaitable[Any]], notify_user: Callable[..., Awaitable[Any]],
                 store, clock, budget_per_s: int, sample_every: int, flush_s: float, like_interval_s: float,
                 node_id: str | None = None) -> None:
        self.broadcast_items = broadcast_items
        self.notify_user = notify_user
        self.store = store
        self.clock = clock
        #: this node, for the lane leader; None: no leader (one node, or tests): batch here
        self.node_id = node_id
        #: room -> (leader, until when it is believed, s)
        self._leaders: dict[str, tuple[str, float]] = {}
        self.budget_per_s = budget_per_s
        self.sample_every = sample_every
        self.flush_s = flush_s
        self.like_interval_s = like_interval_s
        self._rooms: dict[str, _Room] = {}
        #: the map's size at which idle rooms are forgotten (`_prune_idle`)
        self._prune_at = PRUNE_FLOOR
        self._flushing: set[defer.Deferred] = set()
        self.stats = {SENT: 0, WAITING: 0, SAMPLED_OUT: 0, COALESCED: 0}

    def _item(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"msg": msg, "timeStamp": int(self.clock.seconds())}

    # -- entry points -----------------------------------------------------------------

    async def send(self, room: str, msg: dict[str, Any], *, sender: str = "0") -> str:
        """One item for the room, through its lane; returns what became of it."""
        lane = lane_of(msg)
        if lane == LIKE:
            self.like(room, msg)
            return COALESCED
        item = self._item(msg)
        if lane == PRIORITY:
            await self._send_now(room, [item], sender)
            return SENT
        count = int(await COUNT_IN_WINDOW(self.store, [self._window_key(room)], [2000]))
        if not admitted(count, self.budget_per_s, self.sample_every):
            self.stats[SAMPLED_OUT] += 1
            if sender != "0":
                await self.notify_user(sender, item)  # the sender always sees its own
            return SAMPLED_OUT
        if await self._forward(room, {"room": room, "item": item}):
            self.stats[WAITING] += 1
            return WAITING
        self._hold(room, item)
        return WAITING

    def _state(self, room: str) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            if len(self._rooms) >= self._prune_at:
                self._prune_idle()
            state = self._rooms[room] = _Room()
        return state

    def _prune_idle(self) -> None:
        """Forget rooms with nothing waiting whose last frames are older than their intervals (rooms
        that ended on another node, or went quiet): their state says nothing any more. Amortized: run
        when the map doubled since the last prune."""
        now = self.clock.seconds()
        for room in [room for room, state in self._rooms.items()
                     if not state.pending and not state.likes and (state.timer is None or not state.timer.active())
                     and now - state.last_priority_s >= self.flush_s
                     and now - state.last_like_s >= self.like_interval_s]:
            del self._rooms[room]
        self._leaders = {room: known for room, known in self._leaders.items() if known[1] > now}
        self._prune_at = max(PRUNE_FLOOR, 2 * len(self._rooms))

    def _hold(self, room: str, item: dict[str, Any]) -> None:
        state = self._state(room)
        if not state.pending:
            state.waiting_since = self.clock.seconds()
        state.pending.append(item)
        self.stats[WAITING] += 1
        self._schedule(room, state, self._until_next(self.flush_s))

    # -- the lane leader ------------------------------------------------------------------

    def channel_of(self, node: str) -> str:
        return key("lanes", node)

    async def leader(self, room: str) -> str | None:
        """The node that batches the room's chat and likes (elected, or this one, on first use)."""
        if self.node_id is None:
            return None
        now = self.clock.seconds()
        known = self._leaders.get(room)
        if known is not None and known[1] > now:
            return known[0]
        leader = await ELECT(self.store, [key("lanelead", "heihei", room)],
                             [self.node_id, int(LEADER_LEASE_S * 1000)])
        self._leaders[room] = (leader, now + LEADER_LEASE_S / 3)
        return leader

    async def _forward(self, room: str, packet: dict[str, Any]) -> bool:
        """Hand a chat item or a like count to the room's leader; False: batch it here."""
        leader = await self.leader(room)
        if leader is None or leader == self.node_id:
            return False
        if int(await self.store.publish(self.channel_of(leader), orjson.dumps(packet))):
            return True
        self._leaders.pop(room, None)  # nobody listens there any more: this node takes the room over
        await self.store.delete(key("lanelead", "heihei", room))
        return False

    def received(self, channel, message) -> None:
        """A packet another node forwarded to this one as the room's leader."""
        try:
            packet = orjson.loads(message)
            room = str(packet["room"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._log.warn("lanes: a bad forwarded packet on {channel}", channel=channel)
            return
        if "item" in packet:
            self._hold(room, packet["item"])
        elif "likes" in packet:
            self.like(room, packet.get("msg") or {"msgType": "like"}, int(packet["likes"]), forwarded=True)

    # -- likes ------------------------------------------------------------------------------

    def like(self, room: str, msg: dict[str, Any], count: int = 1, *, forwarded: bool = False) -> None:
        """Count a like; the room gets one `like` item per interval."""
        state = self._state(room)
        state.likes += count
        state.like_msg = msg
        if not forwarded:
            self.stats[COALESCED] += count
        self._schedule(room, state, self._like_wait(state))

    # -- flushing -------------------------------------------------------------------------

    def _until_next(self, step: float) -> float:
        """Seconds to the next multiple of `step` on the clock (never 0). Every node flushes on the
        same grid, so a room's batches from several nodes reach a viewer's node together and leave
        in one write to each connection (heihei.net's one write per connection per reactor turn)."""
        now = self.clock.seconds()
        n = math.floor(now / step) + 1
        while n * step <= now:  # floor may round down at a grid point: the next one, not this one
            n += 1
        return n * step - now

    def _like_slot(self, t: float) -> int:
        return math.floor(t / self.like_interval_s) if t != float("-inf") else -1

    def _like_wait(self, state: _Room) -> float:
        """When the room's likes may leave: in a like interval (on the grid) after the last like item."""
        if self._like_slot(self.clock.seconds()) > self._like_slot(state.last_like_s):
            return self._until_next(self.flush_s)
        return self._until_next(self.like_interval_s)

    def _window_key(self, room: str) -> str:
        return key("lanebudget", "heihei", room, int(self.clock.seconds()))

    def _schedule(self, room: str, state: _Room, delay: float) -> None:
        """Flush the room after `delay`, or sooner if it is due sooner already (chat waits at most
        `flush_s` even while the room's likes wait for their interval)."""
        delay = max(0.0, delay)
        if state.timer is not None and state.timer.active():
            if state.timer.getTime() <= self.clock.seconds() + delay:
                return
            state.timer.cancel()
        state.timer = self.clock.callLater(delay, self._flush_later, room)

    def _flush_later(self, room: str) -> None:
        d = defer.Deferred.fromCoroutine(self.flush(room))
        self._flushing.add(d)
        d.addErrback(lambda f: self._log.failure("live room {room}: lane flush failed", failure=f, room=room))
        d.addBoth(lambda _: self._flushing.discard(d))

    def _take(self, room: str, state: _Room, like_too: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """What waits here: the chat, and the like item if its interval has passed."""
        items, state.pending = state.pending, []
        state.waiting_since = float("inf")
        now = self.clock.seconds()
        like = None
        if like_too and self._like_due(state, now):
            like = dict(state.like_msg or {"msgType": "like"})
            like["count"] = state.likes
            # the slot the due check saw (`now` a hair before a boundary counts as the next slot)
            state.likes, state.like_msg, state.last_like_s = 0, None, now + 1e-9
        return items, like

    def _like_due(self, state: _Room, now: float) -> bool:
        return bool(state.likes) and self._like_slot(now + 1e-9) > self._like_slot(state.last_like_s)

    def _rides_next_priority(self, state: _Room) -> bool:
        """Whether what waits is left for the room's next priority frame to carry, one flush more.

        Why: in a room whose gifts flow (a priority frame from this node within the last `flush_s`),
        a flush of its own costs every viewer a frame (at 10,000 viewers, ~80 ms of the node) that
        the next gift carries for nothing. So chat and a due like item wait, but only while the
        oldest of them has waited less than `flush_s`: at most two flushes in all, and a quiet
        room's chat still leaves at the first."""
        now = self.clock.seconds()
        if now - state.last_priority_s >= self.flush_s:
            return False
        waiting = [state.waiting_since] if state.pending else []
        if self._like_due(state, now) and state.last_like_s != float("-inf"):
            waiting.append((self._like_slot(state.last_like_s) + 1) * self.like_interval_s)
        return bool(waiting) and now - min(waiting) < self.flush_s

    async def flush(self, room: str, *, final: bool = False) -> None:
        """Send what waits for the room (a timer's flush; `final`: at stop, whatever the rules)."""
        state = self._rooms.get(room)
        if state is None:
            return
        if state.timer is not None and state.timer.active():
            state.timer.cancel()
        state.timer = None
        if not final and self._rides_next_priority(state):
            self._schedule(room, state, self._until_next(self.flush_s))
            return
        items, like = self._take(room, state)
        if state.likes:  # likes of the current interval: their own flush later
            self._schedule(room, state, self._like_wait(state))
        if like is not None:
            count = like.pop("count")
            if await self._forward(room, {"room": room, "likes": count, "msg": like}):
                like = None
            else:
                like["count"] = count
                items.append(self._item(like))
        if items:
            await self._broadcast(room, items, "0")

    async def _send_now(self, room: str, items: list[dict[str, Any]], sender: str) -> None:
        """A priority frame, carrying the chat waiting here and the like item if it is due (when
        this node batches the room's likes; else the leader's flush sends them)."""
        state = self._state(room)
        state.last_priority_s = self.clock.seconds()
        riding, like = self._take(room, state, like_too=self._batches_here(room))
        if like is not None:
            riding.append(self._item(like))
        await self._broadcast(room, riding + items, sender, priority=True)

    def _batches_here(self, room: str) -> bool:
        """This node batches the room's likes: no leaders, or it is the leader it learned less than
        a third of a lease ago (so the lease still holds; a stale belief would send a second like
        item in the interval, beside the real leader's)."""
        if self.node_id is None:
            return True
        known = self._leaders.get(room)
        return known is not None and known[0] == self.node_id and known[1] > self.clock.seconds()

    async def _broadcast(self, room: str, items: list[dict[str, Any]], sender: str, priority: bool = False) -> None:
        self.stats[SENT] += len(items)
        await self.broadcast_items(room, items, sender=sender, priority=priority)

    def forget(self, room: str) -> None:
        """The room is closed: drop what waits for it."""
        self._leaders.pop(room, None)
        state = self._rooms.pop(room, None)
        if state is not None and state.timer is not None and state.timer.active():
            state.timer.cancel()

    async def stop(self) -> None:
        """At node stop: send what waits, cancel the timers."""
        for room in list(self._rooms):
            state = self._rooms.get(room)
            if state is None:
                continue  # forgotten as idle while an earlier room's final flush was under way
            try:
                state.last_like_s = float("-inf")
                await self.flush(room, final=True)
            except Exception:
                self._log.failure("live room {room}: final lane flush failed", room=room)
            self.forget(room)
        if self._flushing:
            await defer.DeferredList(list(self._flushing), consumeErrors=True)
