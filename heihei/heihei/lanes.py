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
  together with the chat items waiting on this node (in arrival order).
- **chat** (text, barrage): the first `chat_budget_per_s` of each second are
  delivered in full; beyond that, every `chat_sample_every`-th, up to the
  budget again. The count is one Redis counter per room and second, so the
  budget is the room's across the cluster. A sampled-out item still reaches
  its sender's own connections (the sender always sees its own). Admitted
  chat waits at most `lane_flush_s` on this node, so a chat storm leaves in a
  few frames per second instead of one frame per item.
- **like**: coalesced per node into one `like` item per `like_interval_s`
  with the number of likes (`count`, an extension) and the last liker's
  fields; the shipped client shows one like animation per item.

Flushes happen on a grid of the clock (multiples of `lane_flush_s` and of
`like_interval_s`), the same on every node, so the batches several nodes make
for one room in the same interval reach each viewer's node together.

Online counts (the fourth lane) are not items of the room's senders: the
live domain marks a room changed and pushes exact counts at a bounded rate
(heihei.heihei.lives, `push_counts`).

Timers run on the injected clock; `stop()` flushes what waits and cancels
them. State is in memory (a little per room until the room closes: `forget`) and
holds at most one flush interval of items:
a node that dies loses at most that much chat and one interval of likes,
never a gift (those are sent before the call that carried them answers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

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
    timer: Any = None


class Lanes:
    _log = Logger()

    def __init__(self, *, broadcast_items: Callable[..., Awaitable[Any]], notify_user: Callable[..., Awaitable[Any]],
                 store, clock, budget_per_s: int, sample_every: int, flush_s: float, like_interval_s: float) -> None:
        self.broadcast_items = broadcast_items
        self.notify_user = notify_user
        self.store = store
        self.clock = clock
        self.budget_per_s = budget_per_s
        self.sample_every = sample_every
        self.flush_s = flush_s
        self.like_interval_s = like_interval_s
        self._rooms: dict[str, _Room] = {}
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
        state = self._rooms.setdefault(room, _Room())
        state.pending.append(item)
        self.stats[WAITING] += 1
        self._schedule(room, state, self._until_next(self.flush_s))
        return WAITING

    def like(self, room: str, msg: dict[str, Any], count: int = 1) -> None:
        """Count a like; the room gets one `like` item per interval."""
        state = self._rooms.setdefault(room, _Room())
        state.likes += count
        state.like_msg = msg
        self.stats[COALESCED] += count
        self._schedule(room, state, self._like_wait(state))

    # -- flushing -------------------------------------------------------------------------

    def _until_next(self, step: float) -> float:
        """Seconds to the next multiple of `step` on the clock (never 0). Every node flushes on the
        same grid, so a room's batches from several nodes reach a viewer's node together and leave
        in one write to each connection (heihei.net's one write per connection per reactor turn)."""
        now = self.clock.seconds()
        return (math.floor(now / step) + 1) * step - now

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

    def _take(self, room: str, state: _Room) -> list[dict[str, Any]]:
        """What waits here: the chat, then a like item if its interval has passed."""
        items, state.pending = state.pending, []
        now = self.clock.seconds()
        if state.likes and self._like_slot(now + 1e-9) > self._like_slot(state.last_like_s):
            msg = dict(state.like_msg or {"msgType": "like"})
            msg["count"] = state.likes
            items.append(self._item(msg))
            state.likes, state.like_msg, state.last_like_s = 0, None, now
        return items

    async def flush(self, room: str) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        if state.timer is not None and state.timer.active():
            state.timer.cancel()
        state.timer = None
        items = self._take(room, state)
        if state.likes:  # likes of the current interval: their own flush later
            self._schedule(room, state, self._like_wait(state))
        if items:
            await self._broadcast(room, items, "0")

    async def _send_now(self, room: str, items: list[dict[str, Any]], sender: str) -> None:
        state = self._rooms.get(room)
        if state is not None and state.pending:
            items = state.pending + items
            state.pending = []
        await self._broadcast(room, items, sender)

    async def _broadcast(self, room: str, items: list[dict[str, Any]], sender: str) -> None:
        self.stats[SENT] += len(items)
        await self.broadcast_items(room, items, sender=sender)

    def forget(self, room: str) -> None:
        """The room is closed: drop what waits for it."""
        state = self._rooms.pop(room, None)
        if state is not None and state.timer is not None and state.timer.active():
            state.timer.cancel()

    async def stop(self) -> None:
        """At node stop: send what waits, cancel the timers."""
        for room in list(self._rooms):
            try:
                state = self._rooms[room]
                state.last_like_s = float("-inf")
                await self.flush(room)
            except Exception:
                self._log.failure("live room {room}: final lane flush failed", room=room)
            self.forget(room)
        if self._flushing:
            await defer.DeferredList(list(self._flushing), consumeErrors=True)
