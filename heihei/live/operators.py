"""
Operator tools for live activities, in one place for both faces:
the admin HTTP API (`heihei.web.admin`) and the manhole, where this object is
`operators["live"]`:

    >>> operators["live"].put_activity("42", title="Launch", startTime=1700000000, endTime=1700003600)
    >>> operators["live"].mute("42", "oX1a...", duration_s=600)
    >>> operators["live"].messages("42", 20)
    >>> operators["live"].remove_message("42", "1740000000000000")

Coroutines: the manhole runs them and prints their result.
"""

from __future__ import annotations

from typing import Any

from heihei.core import errors
from heihei.core.errors import Refused
from heihei.core.model import room_conversation
from heihei.live.activities import REALM, Activity, valid_id
from heihei.live.mutes import MAX_USER_CHARS
from heihei.live.service import LiveService

#: the most messages one listing returns
MAX_LISTING = 1000
#: the longest mute an operator gives (ten years)
MAX_MUTE_S = 10 * 365 * 86400


class NoSuchActivity(Refused):
    def __init__(self, activity_id: str) -> None:
        super().__init__(errors.NOT_FOUND, "no such activity")
        self.activity_id = activity_id


class NoSuchMessage(Refused):
    def __init__(self, message_id: str) -> None:
        super().__init__(errors.NOT_FOUND, "no such message")
        self.message_id = message_id


class InvalidRequest(Refused):
    """Operator input that cannot be right (bad user id, count, duration ...)."""

    def __init__(self, detail: str) -> None:
        super().__init__(errors.BAD_REQUEST, detail)


class LiveOperators:
    def __init__(self, service: LiveService) -> None:
        self.service = service

    # -- activities --------------------------------------------------------------

    async def put_activity(self, activity_id: str, fields: dict[str, Any] | None = None,
                           **more: Any) -> dict[str, Any]:
        """Create or replace an activity (seed field names, times in Unix seconds)."""
        activity = Activity.from_fields(str(activity_id), {**(fields or {}), **more})
        created = await self.service.activities.put(activity)
        return {**activity.fields(), "created": created}

    async def activity(self, activity_id: str) -> dict[str, Any]:
        """The activity with its state (pending/open/ended) and online total."""
        activity = await self._existing(activity_id)
        total = await self.service.hub.presence.room_total(REALM, activity.id)
        return {**activity.fields(), "state": activity.state(self.service.now_s()), "total": total}

    async def activities(self) -> list[dict[str, Any]]:
        out = []
        for activity_id in await self.service.activities.ids():
            activity = await self.service.activities.get(activity_id)
            if activity is not None:
                out.append({**activity.fields(), "state": activity.state(self.service.now_s())})
        return out

    async def remove_activity(self, activity_id: str) -> None:
        """Remove it with its chat and mutes; open rooms are told (-1005) and closed."""
        if not await self.service.remove_activity(str(activity_id)):
            raise NoSuchActivity(activity_id)

    # -- muting ------------------------------------------------------------------------

    async def mute(self, activity_id: str, user: str, duration_s: float | None = None) -> dict[str, Any]:
        """Refuse the user's messages in the activity, for `duration_s` or until `unmute`."""
        activity = await self._existing(activity_id)
        _check_user(user)
        if duration_s is not None and (isinstance(duration_s, bool) or not isinstance(duration_s, (int, float))
                                       or not 0 < duration_s <= MAX_MUTE_S):
            raise InvalidRequest("duration_s must be a positive number of seconds (at most ten years)")
        until_ms = await self.service.mutes.mute(activity.id, user, duration_s)
        return {"activityId": activity.id, "user": user, "until": _seconds(until_ms)}

    async def unmute(self, activity_id: str, user: str) -> bool:
        activity = await self._existing(activity_id)
        _check_user(user)
        return await self.service.mutes.unmute(activity.id, user)

    async def muted(self, activity_id: str) -> dict[str, int | None]:
        """Muted users -> end of the mute in Unix seconds (None: until unmuted)."""
        activity = await self._existing(activity_id)
        return {user: _seconds(until) for user, until in (await self.service.mutes.list(activity.id)).items()}

    # -- history -----------------------------------------------------------------------

    async def messages(self, activity_id: str, count: int = 50) -> list[dict[str, Any]]:
        """The newest `count` messages, oldest first, with the ids `remove_message` takes."""
        activity = await self._existing(activity_id)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_LISTING:
            raise InvalidRequest(f"count must be an integer from 1 to {MAX_LISTING}")
        found = await self.service.hub.history.latest(REALM, room_conversation(activity.id), count)
        return [{"id": str(m.id), "user": m.sender, **m.body} for m in found]

    async def remove_message(self, activity_id: str, message_id: str | int) -> dict[str, Any]:
        """Take a message out of the history (pages that join later do not see it)."""
        activity = await self._existing(activity_id)
        text = str(message_id)
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise NoSuchMessage(text)
        removed = await self.service.hub.history.remove(REALM, room_conversation(activity.id), int(text))
        if removed is None:
            raise NoSuchMessage(text)
        return {"id": str(removed.id), "user": removed.sender, **removed.body}

    # -- helpers --------------------------------------------------------------------------

    async def _existing(self, activity_id: str) -> Activity:
        activity_id = str(activity_id)
        if not valid_id(activity_id):
            raise NoSuchActivity(activity_id)
        activity = await self.service.activities.get(activity_id)
        if activity is None:
            raise NoSuchActivity(activity_id)
        return activity


def _check_user(user: object) -> None:
    if not isinstance(user, str) or not user or len(user) > MAX_USER_CHARS:
        raise InvalidRequest(f"user must be a non-empty string of at most {MAX_USER_CHARS} characters")


def _seconds(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000
