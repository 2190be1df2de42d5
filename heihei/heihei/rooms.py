"""
Rooms of seed 001: live rooms (`liveId` -> `roomId`) and 1:1 chats (`chatId`
-> `roomId`), with members, and their broadcast over the push channel.

A room is opened by a trusted back end (`open-room.action`,
`start-live-broadcast.action`) or by the later live/chat modules, and has
*members* (users). Every push-channel connection of a member is in the
room's hub room (`room:<roomId>`, realm "channel") on whatever node it is, so
`broadcast` reaches each member's every device once, across the cluster.
Membership changes reach the nodes that hold a member's connections through
notices to the member's connections (`Hub.notify_users`, kinds
`join-room` / `leave-room` with `{"room": id}`); a closed room's
connections get `close-room`. The channel adapter applies them.

Redis:
- `hroom:heihei:<roomId>` HASH {roomId, status open|closed, liveId, chatId,
  broadcasting 0|1, opened}
- `liveroom:heihei:<liveId>`, `chatroom:heihei:<chatId>` -> roomId
- `hroomm:heihei:<roomId>` SET of member ids; `uroom:heihei:<uid>` SET of the
  user's rooms (joined by every new channel connection)
"""

from __future__ import annotations

import re
from typing import Any

from heihei.core.hub import Notice
from heihei.heihei.accounts import REALM
from heihei.store.keys import key
from heihei.store.scripts import Script

#: the hub realm of the push channel (the WebSocket factory's realm; its stored data is keyed so)
CHANNEL = "channel"
#: notices telling a member's connections to join or leave a room's broadcast
NOTICE_JOIN = "join-room"
NOTICE_LEAVE = "leave-room"
NOTICE_CLOSE = "close-room"
ROOM_ID = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
MAX_MEMBERS = 100_000
MAX_ROOMS_PER_USER = 1000

OPEN_ROOM = Script("heihei_open_room", r"""
-- KEYS: 1 room hash, 2 live index (or dummy), 3 chat index (or dummy)
-- ARGV: 1 room id, 2 live id or '', 3 chat id or '', 4 now ms, 5 '1' to mark broadcasting
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then
  redis.call('HSET', KEYS[1], 'roomId', ARGV[1], 'status', 'open', 'opened', ARGV[4], 'broadcasting', '0')
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'liveId', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'chatId', ARGV[3])
  redis.call('SET', KEYS[3], ARGV[1])
end
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'broadcasting', '1') end
return 1
""")

CLOSE_ROOM = Script("heihei_close_room", r"""
-- KEYS: 1 room hash, 2 member set, 3 live index (or dummy), 4 chat index (or dummy)
-- ARGV: 1 room id, 2 user-rooms key prefix. Returns the members it had.
local members = redis.call('SMEMBERS', KEYS[2])
for i = 1, #members do redis.call('SREM', ARGV[2] .. members[i], ARGV[1]) end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'status', 'closed', 'broadcasting', '0')
end
return members
""")

STOP_BROADCAST = Script("heihei_stop_broadcast", r"""
-- KEYS: 1 room hash, 2 live index. ARGV: 1 room id. Returns 0 if the live is not in that room.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'broadcasting', '0')
return 1
""")

ADD_MEMBER = Script("heihei_add_member", r"""
-- KEYS: 1 room hash, 2 member set, 3 user's rooms. ARGV: 1 room id, 2 user, 3 max members, 4 max rooms.
-- Returns 1 added (or already), 0 room not open, -1 room full, -2 user in too many rooms.
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 1 end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[4]) then return -2 end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
""")


class RoomError(Exception):
    """`reason` is one of: closed, full, too-many-rooms."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hub_room(room_id: str) -> str:
    """The hub room holding the channel connections of a room's members."""
    return f"room:{room_id}"


def _room_key(room_id: str) -> str:
    return key("hroom", REALM, room_id)


def _index(kind: str, value: str | None) -> str:
    return key(kind, REALM, value) if value else key(kind, REALM, "-")


class Rooms:
    def __init__(self, store, hub, clock) -> None:
        self.store = store
        self.hub = hub
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- lifecycle ------------------------------------------------------------------

    async def open(self, room_id: str, *, live_id: str | None = None, chat_id: str | None = None,
                   broadcasting: bool = False) -> None:
        await OPEN_ROOM(self.store, [_room_key(room_id), _index("liveroom", live_id), _index("chatroom", chat_id)],
                        [room_id, live_id or "", chat_id or "", self.now_ms(), "1" if broadcasting else "0"])

    async def close(self, room_id: str) -> list[str]:
        """Close a room: members are dropped (their connections leave it); returns who they were."""
        info = await self.info(room_id)
        members = await CLOSE_ROOM(self.store, [_room_key(room_id), key("hroomm", REALM, room_id),
                                                _index("liveroom", (info or {}).get("liveId")),
                                                _index("chatroom", (info or {}).get("chatId"))],
                                   [room_id, key("uroom", REALM) + ":"])
        await self.hub.notify_room(CHANNEL, hub_room(room_id), Notice(NOTICE_CLOSE, {"room": room_id}))
        return list(members or [])

    async def start_broadcast(self, live_id: str, room_id: str) -> None:
        await self.open(room_id, live_id=live_id, broadcasting=True)

    async def stop_broadcast(self, live_id: str, room_id: str) -> bool:
        """The live stops being shown in the room (`toLive` to it is refused); the room stays open."""
        stopped = await STOP_BROADCAST(self.store, [_room_key(room_id), _index("liveroom", live_id)], [room_id])
        return int(stopped) == 1

    # -- queries ----------------------------------------------------------------------

    async def info(self, room_id: str) -> dict[str, str] | None:
        return (await self.store.hgetall(_room_key(room_id))) or None

    async def is_open(self, room_id: str) -> bool:
        return await self.store.hget(_room_key(room_id), "status") == "open"

    async def room_of_live(self, live_id: str) -> str | None:
        return await self.store.get(_index("liveroom", str(live_id)))

    async def room_of_chat(self, chat_id: str) -> str | None:
        return await self.store.get(_index("chatroom", str(chat_id)))

    async def members(self, room_id: str) -> list[str]:
        return sorted(await self.store.smembers(key("hroomm", REALM, room_id)), key=lambda m: (len(m), m))

    async def is_member(self, room_id: str, uid: str) -> bool:
        return bool(await self.store.sismember(key("hroomm", REALM, room_id), uid))

    async def rooms_of(self, uid: str) -> list[str]:
        return list(await self.store.smembers(key("uroom", REALM, uid)))

    # -- members ---------------------------------------------------------------------

    async def add_member(self, room_id: str, uid: str) -> None:
        """Make `uid` a member; their channel connections on every node join the broadcast."""
        result = int(await ADD_MEMBER(self.store, [_room_key(room_id), key("hroomm", REALM, room_id),
                                                   key("uroom", REALM, uid)],
                                      [room_id, uid, MAX_MEMBERS, MAX_ROOMS_PER_USER]))
        if result != 1:
            raise RoomError({0: "closed", -1: "full", -2: "too-many-rooms"}[result])
        await self.hub.notify_users(CHANNEL, [uid], Notice(NOTICE_JOIN, {"room": room_id}))

    async def remove_member(self, room_id: str, uid: str) -> None:
        await self.store.srem(key("hroomm", REALM, room_id), uid)
        await self.store.srem(key("uroom", REALM, uid), room_id)
        await self.hub.notify_users(CHANNEL, [uid], Notice(NOTICE_LEAVE, {"room": room_id}))

    # -- broadcast -------------------------------------------------------------------

    async def broadcast(self, room_id: str, msg: dict[str, Any], *, sender: str = "0", store: bool = True):
        """Send one client item `{"msg": msg, "timeStamp"}` to every member connection of the room."""
        body = {"t": "item", "item": {"msg": msg, "timeStamp": int(self.clock.seconds())}}
        return await self.hub.send_to_room(CHANNEL, sender, hub_room(room_id), body, store=store)

    async def broadcast_items(self, room_id: str, items: list[dict[str, Any]], *, sender: str = "0",
                              store: bool = True, priority: bool = False):
        """Several client items `{"msg", "timeStamp"}` in one frame (one JSON array) to every member
        connection of the room: one stored room message, one write per connection (the live lanes).
        `priority`: the frame goes out ahead of the room's frames still queued on each node
        (ChannelRenderer.urgent)."""
        body = {"t": "items", "items": items}
        if priority:
            body["p"] = 1
        return await self.hub.send_to_room(CHANNEL, sender, hub_room(room_id), body, store=store)
