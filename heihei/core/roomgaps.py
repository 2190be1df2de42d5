"""
Room messages published while this node's bus subscriber was away.

A room has no inboxes: a message reaches a node's room members only through
the bus. When the subscriber connection drops (Redis restarted, a network
blip), whatever other nodes publish until it is subscribed again reaches
nobody here, although the senders were told it was sent and it is in the
room's history. So the node notes when the bus went away, and once it is back
it reads each local room's history from a little before that moment and
delivers what its members have not had.

"What they have had" is a small ring of the ids delivered per room, which also
drops a message that arrives twice (from the bus and from the catch-up). The
ring is bounded: in a room busier than `RECENT_IDS_PER_ROOM` messages over the
gap, the catch-up starts at the oldest id it still remembers. Messages sent
without being stored (id 0) cannot be caught up and are never deduplicated.
"""

from __future__ import annotations

from collections import deque

from heihei.core.model import id_floor_for_ms

#: the catch-up starts this long before the bus was noticed gone (packets in flight, node clock skew)
CATCH_UP_MARGIN_MS = 2000
#: ids remembered per room, to deliver each message once
RECENT_IDS_PER_ROOM = 1024
#: at most this many messages per room are caught up
MAX_CATCH_UP = 1000


class RecentIds:
    """The last `size` ids seen, in arrival order, with constant-time membership."""

    __slots__ = ("size", "_order", "_set")

    def __init__(self, size: int = RECENT_IDS_PER_ROOM) -> None:
        self.size = size
        self._order: deque[int] = deque()
        self._set: set[int] = set()

    def add(self, message_id: int) -> bool:
        """Remember `message_id`; False if it was already there."""
        if message_id in self._set:
            return False
        self._order.append(message_id)
        self._set.add(message_id)
        if len(self._order) > self.size:
            self._set.discard(self._order.popleft())
        return True

    @property
    def full(self) -> bool:
        return len(self._order) >= self.size

    def oldest(self) -> int:
        return min(self._order) if self._order else 0


class RoomGaps:
    """Per node: the ids each room delivered lately, and when the bus went away."""

    def __init__(self) -> None:
        self._recent: dict[tuple[str, str], RecentIds] = {}
        self._lost_at_ms: int | None = None

    def first_time(self, where: tuple[str, str], message_id: int) -> bool:
        """Record a room message about to be delivered here; False if it already was."""
        if not message_id:
            return True
        recent = self._recent.get(where)
        if recent is None:
            recent = self._recent[where] = RecentIds()
        return recent.add(message_id)

    def forget(self, where: tuple[str, str]) -> None:
        """The room has no members here any more."""
        self._recent.pop(where, None)

    def bus_lost(self, now_ms: int) -> None:
        if self._lost_at_ms is None:
            self._lost_at_ms = now_ms

    def bus_back(self) -> int | None:
        """The bus is subscribed again: when the gap began (None if there was none)."""
        lost_at, self._lost_at_ms = self._lost_at_ms, None
        return lost_at

    def catch_up_floor(self, where: tuple[str, str], lost_at_ms: int) -> int:
        """The smallest id to read again for `where`."""
        floor = id_floor_for_ms(max(0, lost_at_ms - CATCH_UP_MARGIN_MS))
        recent = self._recent.get(where)
        if recent is not None and recent.full:
            floor = max(floor, recent.oldest())
        return floor
