"""
Storing a message and sending it on to other nodes, in one Redis call.

Why one call: on this kind of machine a node pays tens of microseconds of CPU
each time it wakes for a Redis reply, on top of the reply's own work; a 1:1
message used to take three calls in a row (store, look up presence, publish),
so three wake-ups and three round trips before the receiver's node even heard
of it. These scripts are the three steps run back to back inside Redis: the
store step of `heihei.core.history`, the alive-node test of
`heihei.core.presence`, and a PUBLISH of the bus packet that
`heihei.core.bus` documents (built with cjson). Each piece of Lua is written
once, in its own module, and composed here.

What stays the same: a repeated client id stops at the store step (nothing is
published); the store step is atomic as before; presence is read after the
message is in the inboxes, so a receiver who logs in meanwhile either sees it
in the inbox or is found online (never neither). What the node still does
itself: delivery to its own connections, from the `where` answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from heihei.core.bus import NODE_CHANNEL_LUA, room_channel
from heihei.core.history import STORE_MESSAGE_LUA, History, Stored
from heihei.core.model import Message
from heihei.core.presence import ALIVE_NODES_LUA, NODES_KEY, user_key
from heihei.store.scripts import Script

_STORE_FIRST = "local function store_message()\n" + STORE_MESSAGE_LUA + "\nend\n"

STORE_AND_ROUTE = Script("store_and_route", _STORE_FIRST + ALIVE_NODES_LUA + NODE_CHANNEL_LUA + r"""
-- KEYS: the store step's (3 + 2n), then the nodes zset, then one presence hash per user.
-- ARGV: the store step's 9, then 10 this node, 11 realm, 12 m users, the m users,
--       then m flags ('1': a receiver, whose inbox entry goes once it is delivered).
-- Returns the store step's answer; when stored, with 4: per user the flat
-- {node, count, ...} of alive nodes, 5: how many packets were published.
local stored = store_message()
if stored[1] == 0 then return stored end
local now = tonumber(ARGV[1])
local base = 3 + 2 * tonumber(ARGV[8])
local nodes_key = KEYS[base + 1]
local me, realm, m = ARGV[10], ARGV[11], tonumber(ARGV[12])
local where, packets, order = {}, {}, {}
for j = 1, m do
  local user, receiver = ARGV[12 + j], ARGV[12 + m + j] == '1'
  local alive = alive_nodes(KEYS[base + 1 + j], nodes_key, now)
  where[j] = alive
  for i = 1, #alive, 2 do
    local node = alive[i]
    if node ~= me then
      local packet = packets[node]
      if not packet then
        packet = {k = 'u', r = realm, us = {}, e = stored[3], o = me}
        packets[node] = packet
        table.insert(order, node)
      end
      table.insert(packet.us, user)
      if receiver then
        packet.ack = packet.ack or {}
        table.insert(packet.ack, user)
      end
    end
  end
end
for _, node in ipairs(order) do
  redis.call('PUBLISH', node_channel(node), cjson.encode(packets[node]))
end
return {1, stored[2], stored[3], where, #order}
""")

STORE_AND_BROADCAST = Script("store_and_broadcast", _STORE_FIRST + r"""
-- KEYS: the store step's. ARGV: the store step's 9, then 10 this node, 11 realm, 12 room,
-- 13 the room's bus channel. Returns the store step's answer.
local stored = store_message()
if stored[1] == 1 then
  redis.call('PUBLISH', ARGV[13], cjson.encode({k = 'r', r = ARGV[11], room = ARGV[12], e = stored[3], o = ARGV[10]}))
end
return stored
""")

NOTIFY_USERS = Script("notify_users", ALIVE_NODES_LUA + NODE_CHANNEL_LUA + r"""
-- KEYS: 1 the nodes zset, then one presence hash per user.
-- ARGV: 1 now ms, 2 this node, 3 realm, 4 the notice (JSON), then the users.
-- Publishes one packet per other alive node holding any of the users; returns how many.
-- The notice is spliced in as sent, never decoded: cjson would round large integers.
local now, me = tonumber(ARGV[1]), ARGV[2]
local users, order = {}, {}
for j = 2, #KEYS do
  local alive = alive_nodes(KEYS[j], KEYS[1], now)
  for i = 1, #alive, 2 do
    local node = alive[i]
    if node ~= me then
      if not users[node] then
        users[node] = {}
        table.insert(order, node)
      end
      table.insert(users[node], ARGV[3 + j])
    end
  end
end
local head = '{"k":"nu","r":' .. cjson.encode(ARGV[3]) .. ',"o":' .. cjson.encode(me) .. ',"n":' .. ARGV[4] .. ',"us":'
for _, node in ipairs(order) do
  redis.call('PUBLISH', node_channel(node), head .. cjson.encode(users[node]) .. '}')
end
return #order
""")


@dataclass
class Routed:
    stored: Stored
    #: user -> the alive nodes they are connected on (empty: offline); empty for a duplicate
    where: dict[str, list[str]] = field(default_factory=dict)
    #: bus packets published (one per other node with receivers)
    published: int = 0


class Router:
    def __init__(self, node_id: str, store, history: History) -> None:
        self.node_id = node_id
        self.store = store
        self.history = history

    async def to_users(self, message: Message, users: list[str], receivers: list[str]) -> Routed:
        """Store `message` with an inbox entry for each of `receivers`, and publish it to every
        other node where one of `users` (receivers and anyone else who gets a copy) is connected."""
        keys, args = self.history.store_call(message, receivers)
        receiver_set = set(receivers)
        keys += [NODES_KEY] + [user_key(message.realm, u) for u in users]
        args += [self.node_id, message.realm, len(users), *users, *("1" if u in receiver_set else "0" for u in users)]
        reply = await STORE_AND_ROUTE(self.store, keys, args)
        stored = self.history.stored(message, reply)
        if stored.duplicate:
            return Routed(stored)
        where = {u: list(row[0::2]) for u, row in zip(users, reply[3])}
        return Routed(stored, where, int(reply[4]))

    async def notify_users(self, realm: str, users: list[str], notice: dict, now_ms: int) -> int:
        """Publish a notice to every other node where one of `users` is connected (one call)."""
        return int(await NOTIFY_USERS(self.store, [NODES_KEY] + [user_key(realm, u) for u in users],
                                      [now_ms, self.node_id, realm, orjson.dumps(notice).decode("utf-8"), *users]))

    async def to_room(self, message: Message, room: str) -> Stored:
        """Store a room message and publish it to the nodes with members in `room`."""
        keys, args = self.history.store_call(message)
        args += [self.node_id, message.realm, room, room_channel(message.realm, room)]
        return self.history.stored(message, await STORE_AND_BROADCAST(self.store, keys, args))
