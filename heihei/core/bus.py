"""
Cross-node delivery over Redis pub/sub.

Each node listens on its own channel (`bus:node:<id>`) for messages to users
connected there, and on `bus:room:<realm>:<room>` while it has local members
in that room, so one PUBLISH reaches exactly the nodes that need a room
message, and each of them builds the frame once for all its members. A node
ignores its own packets: it has already delivered locally.

Packets are small JSON objects: `o` origin node, `k` kind (`u` users, `r`
room, `ev` room event), `r` realm, and the kind's fields (`u`: `us` the
users to deliver to, `ack` those whose inbox entry goes once delivered, `e`
the stored entry; `r`: `room`, `e`; `ev`: `room`, `ev`). Room events are
published from here (orjson); messages are published by the script that
stores them (`heihei.core.routing`, cjson), so a message costs its node one
Redis call.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson
from twisted.logger import Logger

from heihei.store.keys import key

PacketHandler = Callable[[dict[str, Any]], None]


def node_channel(node_id: str) -> str:
    return key("bus", "node", node_id)


def room_channel(realm: str, room: str) -> str:
    return key("bus", "room", realm, room)


#: `node_channel(node)` in Lua, for the scripts that publish from inside Redis: the same name as
#: `node_channel` (`heihei.store.keys.escape` is percent-encoding of all but `A-Za-z0-9_.~-`)
NODE_CHANNEL_LUA = r"""
local function node_channel(node)
  local escaped = string.gsub(node, '[^%w_.~-]', function(c) return string.format('%%%02X', string.byte(c)) end)
  return 'PREFIX' .. escaped
end
""".replace("PREFIX", node_channel(""))


class Bus:
    _log = Logger()

    def __init__(self, node_id: str, store, on_packet: PacketHandler, metrics=None) -> None:
        self.node_id = node_id
        self.store = store
        self.on_packet = on_packet
        self.metrics = metrics

    def start(self) -> None:
        self.store.subscribe(node_channel(self.node_id), self._received)

    def stop(self) -> None:
        self.store.unsubscribe(node_channel(self.node_id), self._received)

    def watch_room(self, realm: str, room: str) -> None:
        self.store.subscribe(room_channel(realm, room), self._received)

    def unwatch_room(self, realm: str, room: str) -> None:
        self.store.unsubscribe(room_channel(realm, room), self._received)

    async def to_room(self, realm: str, room: str, packet: dict[str, Any]) -> None:
        await self._publish(room_channel(realm, room), packet)

    async def _publish(self, channel: str, packet: dict[str, Any]) -> None:
        packet["o"] = self.node_id
        await self.store.publish(channel, orjson.dumps(packet).decode("utf-8"))
        if self.metrics is not None:
            self.metrics.bus_hops_by_direction["out"].inc()

    def _received(self, channel: str, data) -> None:
        try:
            packet = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._log.error("undecodable bus packet on {channel}", channel=channel)
            return
        if packet.get("o") == self.node_id:
            return
        if self.metrics is not None:
            self.metrics.bus_hops_by_direction["in"].inc()
        self.on_packet(packet)
