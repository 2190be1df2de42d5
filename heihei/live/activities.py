"""
Live activities: what `Open` shows and what decides whether `Message` is allowed.

Operators create them through the admin API or the manhole; pages only read
them. The field names are the seed's (camelCase), so the admin API, the stored
form and the `Open` answer use one vocabulary. Times are Unix seconds.

Layout (keys from `heihei.store.keys`):
- `live:activity:<id>` STRING, the activity as JSON
- `live:activities` SET of every activity id (for listings)
- a removed activity also loses its chat history (the core's
  `conversation_keys`) and its mute list, in the same atomic step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from heihei.core.errors import BAD_REQUEST, Refused
from heihei.core.history import conversation_keys
from heihei.core.model import room_conversation
from heihei.store.keys import key
from heihei.store.scripts import Script

REALM = "live"
#: what an activity id may look like; anything else is simply "no such activity"
ACTIVITY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: text fields with their longest accepted length in characters
TEXT_FIELDS = {"title": 200, "details": 20000, "shareTitle": 200, "shareDigest": 1000, "sharePic": 2048,
               "liveStreamingPath": 2048}
TIME_FIELDS = ("startTime", "endTime")
REQUIRED = ("title", "startTime", "endTime")
#: the largest 10-digit Unix time (year 2286)
MAX_UNIX_S = 9_999_999_999

PENDING, OPEN, ENDED = "pending", "open", "ended"

PUT_ACTIVITY = Script("live_put_activity", r"""
-- KEYS: 1 activity, 2 index set. ARGV: 1 id, 2 JSON. Returns 1 if it is new.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1 - existed
""")

DELETE_ACTIVITY = Script("live_delete_activity", r"""
-- KEYS: 1 activity, 2 index set, then every other key of the activity (history, mutes ...).
-- ARGV: 1 id. Returns 1 if the activity existed.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('DEL', KEYS[1])
return existed
""")


class InvalidActivity(Refused):
    """The fields do not describe an activity; the detail says which and why."""

    def __init__(self, detail: str) -> None:
        super().__init__(BAD_REQUEST, detail)


def valid_id(activity_id: object) -> bool:
    return isinstance(activity_id, str) and bool(ACTIVITY_ID.match(activity_id))


def activity_state(start_s: int, end_s: int, now_s: float) -> str:
    """Before `startTime` pending, from `startTime` until (not including) `endTime` open, then ended."""
    if now_s < start_s:
        return PENDING
    if now_s >= end_s:
        return ENDED
    return OPEN


@dataclass(frozen=True)
class Activity:
    id: str
    title: str
    start_s: int
    end_s: int
    details: str = ""
    share_title: str = ""
    share_digest: str = ""
    share_pic: str = ""
    live_streaming_path: str = ""

    def state(self, now_s: float) -> str:
        return activity_state(self.start_s, self.end_s, now_s)

    def fields(self) -> dict[str, Any]:
        """The seed's field names, times as integer Unix seconds."""
        return {"activityId": self.id, "title": self.title, "details": self.details,
                "shareTitle": self.share_title, "shareDigest": self.share_digest,
                "startTime": self.start_s, "endTime": self.end_s, "sharePic": self.share_pic,
                "liveStreamingPath": self.live_streaming_path}

    @classmethod
    def from_fields(cls, activity_id: str, fields: dict[str, Any]) -> "Activity":
        """Validate operator input (seed field names); raises `InvalidActivity`."""
        if not valid_id(activity_id):
            raise InvalidActivity("activityId must be 1-64 letters, digits, '_' or '-'")
        if not isinstance(fields, dict):
            raise InvalidActivity("the activity must be a JSON object")
        unknown = set(fields) - set(TEXT_FIELDS) - set(TIME_FIELDS) - {"activityId"}
        if unknown:
            raise InvalidActivity(f"unknown fields: {', '.join(sorted(unknown))}")
        if "activityId" in fields and str(fields["activityId"]) != activity_id:
            raise InvalidActivity("activityId in the body differs from the one in the path")
        missing = [f for f in REQUIRED if f not in fields]
        if missing:
            raise InvalidActivity(f"missing fields: {', '.join(missing)}")
        texts = {}
        for name, limit in TEXT_FIELDS.items():
            value = fields.get(name, "")
            if not isinstance(value, str):
                raise InvalidActivity(f"{name} must be a string")
            if len(value) > limit:
                raise InvalidActivity(f"{name} is longer than {limit} characters")
            texts[name] = value
        times = {name: _unix_seconds(name, fields[name]) for name in TIME_FIELDS}
        if times["endTime"] <= times["startTime"]:
            raise InvalidActivity("endTime must be after startTime")
        return cls(id=activity_id, title=texts["title"], details=texts["details"], share_title=texts["shareTitle"],
                   share_digest=texts["shareDigest"], share_pic=texts["sharePic"],
                   live_streaming_path=texts["liveStreamingPath"], start_s=times["startTime"],
                   end_s=times["endTime"])

    def to_json(self) -> bytes:
        return orjson.dumps(self.fields())

    @classmethod
    def from_json(cls, data: str | bytes) -> "Activity":
        d = orjson.loads(data)
        return cls(id=d["activityId"], title=d["title"], details=d["details"], share_title=d["shareTitle"],
                   share_digest=d["shareDigest"], share_pic=d["sharePic"],
                   live_streaming_path=d["liveStreamingPath"], start_s=int(d["startTime"]),
                   end_s=int(d["endTime"]))


def _unix_seconds(name: str, value: object) -> int:
    """An integer (or a string of digits, as the seed prints them) of at most 10 digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidActivity(f"{name} must be Unix seconds (an integer)")
    if not 0 <= value <= MAX_UNIX_S:
        raise InvalidActivity(f"{name} must be Unix seconds between 0 and {MAX_UNIX_S}")
    return value


def activity_key(activity_id: str) -> str:
    return key("live", "activity", activity_id)


INDEX_KEY = key("live", "activities")


def mutes_key(activity_id: str) -> str:
    return key("live", "mutes", activity_id)


class Activities:
    """Activities in Redis, shared by every node."""

    def __init__(self, store) -> None:
        self.store = store

    async def get(self, activity_id: str) -> Activity | None:
        """None for an unknown id (and, without asking Redis, for one that cannot exist)."""
        if not valid_id(activity_id):
            return None
        data = await self.store.get(activity_key(activity_id))
        return Activity.from_json(data) if data else None

    async def put(self, activity: Activity) -> bool:
        """Create or replace; True if it was created."""
        created = await PUT_ACTIVITY(self.store, [activity_key(activity.id), INDEX_KEY],
                                     [activity.id, activity.to_json().decode("utf-8")])
        return int(created) == 1

    async def delete(self, activity_id: str) -> bool:
        """Remove the activity with its history and mute list; True if it existed."""
        if not valid_id(activity_id):
            return False
        conversation = room_conversation(activity_id)
        keys = [activity_key(activity_id), INDEX_KEY, *conversation_keys(REALM, conversation),
                mutes_key(activity_id)]
        return int(await DELETE_ACTIVITY(self.store, keys, [activity_id])) == 1

    async def ids(self) -> list[str]:
        return sorted(await self.store.smembers(INDEX_KEY))
