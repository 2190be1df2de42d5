"""
The domain's message and conversation names, shared by every realm.

A message body is opaque to the core: each protocol puts what its wire format
needs in `body` and renders frames from it. The core only orders, stores,
routes and counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: server ids are milliseconds * ID_SCALE plus a counter, so they order a
#: conversation, encode time, and stay exact in a double (Redis scores, Lua)
ID_SCALE = 1024


def pair_conversation(a: str, b: str) -> str:
    """The 1:1 conversation of two users, the same whichever side sends."""
    first, second = sorted((str(a), str(b)))
    return f"u:{first}:{second}"


def group_conversation(group: str) -> str:
    return f"g:{group}"


def room_conversation(room: str) -> str:
    return f"r:{room}"


def id_floor_for_ms(ms: int) -> int:
    """The smallest server id a message created at `ms` can have."""
    return int(ms) * ID_SCALE


def created_ms_of(server_id: int) -> int:
    return int(server_id) // ID_SCALE


@dataclass(frozen=True)
class Message:
    realm: str
    conversation: str
    sender: str
    body: dict[str, Any]
    kind: str = "user"  # user | group | room
    target: str = ""  # user id, group id or room id the sender addressed
    created_ms: int = 0
    client_id: str | None = None
    id: int = 0  # server id, assigned when stored
    #: the stored form (`"<id>|<json>"`): the inbox's key for this message
    entry: str = field(default="", compare=False, repr=False)

    def payload_json(self) -> bytes:
        """What is stored (without id, which the store script prefixes)."""
        return orjson.dumps({"c": self.conversation, "s": self.sender, "b": self.body, "k": self.kind,
                             "g": self.target, "t": self.created_ms, "ci": self.client_id})

    @classmethod
    def from_entry(cls, realm: str, entry: str | bytes) -> "Message":
        if isinstance(entry, bytes):
            entry = entry.decode("utf-8")
        id_text, _, payload = entry.partition("|")
        d = orjson.loads(payload)
        return cls(realm=realm, conversation=d["c"], sender=d["s"], body=d["b"], kind=d["k"], target=d["g"],
                   created_ms=d["t"], client_id=d.get("ci"), id=int(id_text), entry=entry)

    def with_stored(self, server_id: int, entry: str) -> "Message":
        return Message(realm=self.realm, conversation=self.conversation, sender=self.sender, body=self.body,
                       kind=self.kind, target=self.target, created_ms=self.created_ms, client_id=self.client_id,
                       id=server_id, entry=entry)
