"""
A replay's chat (`messageAddr`): a zip of files, each a JSON array of strings,
each string one channel item `{"msg": ..., "timeStamp": ...}`, as the
shipped client's OfflineMsgController reads it.

The client shows an item when the player's position plus the live's
`createTime` (read to the second) reaches the item's `timeStamp`. The
recording starts when the stream first arrived, not at createTime, and a
stream that dropped and came back within the grace period is one recording
with the gap cut out (nginx-rtmp `record_append`, NMS resuming the same
file). So each item's time is mapped onto the recording: position = the
length of the publish segments before it plus its offset in its own segment
(an item said during a gap shows when the stream came back), and
`timeStamp` = createTime + position. Built from the room's history (the hub
keeps every room batch), at most `replay_max_items` items, on request, and
cached per node: an ended live's chat does not change.
"""

from __future__ import annotations

import io
import zipfile
from collections import OrderedDict

import orjson

from heihei.core.model import room_conversation
from heihei.heihei import im
from heihei.heihei.livecore import LiveCore, segments_key
from heihei.heihei.rooms import CHANNEL, hub_room

ITEMS_PER_FILE = 1000
CACHE_SIZE = 16
PAGE = 500


def parse_segments(raw: list[str]) -> list[tuple[int, int | None]]:
    out = []
    for text in raw:
        start, _, end = text.partition("|")
        if start.isdigit():
            out.append((int(start), int(end) if end.isdigit() else None))
    return out


def position_ms(t_ms: int, segments: list[tuple[int, int | None]]) -> int:
    """Where in the recording the moment `t_ms` falls (pure)."""
    done = 0
    for start, end in segments:
        if t_ms < start:
            return done
        if end is None or t_ms <= end:
            return done + (t_ms - start)
        done += end - start
    return done


def replay_stamp(t_ms: int, segments: list[tuple[int, int | None]], create_ms: int) -> int:
    """The `timeStamp` (s) that makes the client show an item said at `t_ms` at the right moment."""
    if not segments:
        return t_ms // 1000
    return create_ms // 1000 + position_ms(t_ms, segments) // 1000


def build_zip(live_id: str, items: list[dict]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n in range(0, max(len(items), 1), ITEMS_PER_FILE):
            chunk = [orjson.dumps(item).decode("utf-8") for item in items[n:n + ITEMS_PER_FILE]]
            z.writestr(f"message_{live_id}_{n // ITEMS_PER_FILE}.txt", orjson.dumps(chunk))
    return out.getvalue()


class ReplayChat:
    def __init__(self, core: LiveCore) -> None:
        self.core = core
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    async def items(self, live: dict[str, str]) -> list[dict]:
        core = self.core
        live_id = live["liveId"]
        segments = parse_segments(list(await core.store.lrange(segments_key(live_id), 0, -1)))
        create_ms = int(live.get("createTime") or 0)
        conversation = room_conversation(hub_room(live_id))
        out: list[dict] = []
        offset = 0
        limit = core.settings.replay_max_items
        while len(out) < limit:
            page = await core.hub.history.page(CHANNEL, conversation, offset=offset, count=PAGE)
            if not page:
                break
            offset += len(page)
            for message in page:
                for item in im.items_of(message.body, message.created_ms, False):
                    msg = item.get("msg")
                    if not isinstance(msg, dict):
                        continue
                    # the batch's store time: at most lane_flush_s after the item arrived
                    out.append({"msg": msg, "timeStamp": replay_stamp(message.created_ms, segments, create_ms)})
        return out[:limit]

    async def zip_of(self, live_id: str, sign: str) -> bytes | None:
        """The zip for a signed messageAddr of an ended live; None when the sign or the live is wrong."""
        core = self.core
        if sign != core.sign("replay", live_id):
            return None
        cached = self._cache.get(live_id)
        if cached is not None:
            self._cache.move_to_end(live_id)
            return cached
        live = await core.get(live_id)
        if live is None or live.get("status") != "2":
            return None
        data = build_zip(live_id, await self.items(live))
        self._cache[live_id] = data
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return data
