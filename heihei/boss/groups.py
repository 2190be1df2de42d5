"""
Boss groups: what the group HTTP API does, over the hub's persistent groups.

A group is `hub.groups` (realm "boss") with the fields `creator`, `name`,
`notice` and `snap` (the file name of its picture; the URL is made per request,
see web.py). Ids are the hub's increasing integers. The creator is always a
member. The picture is redrawn whenever the membership changes (and on
`refreshgrp`), from the avatars of the first nine members in id order.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger

from heihei.boss.ids import ID_RE
from heihei.boss.media import MAX_PICTURE_TILES
from heihei.boss.profiles import Profile, Profiles
from heihei.core import errors
from heihei.core.errors import Refused
from heihei.core.groups import NoSuchGroup, natural_order

REALM = "boss"
#: member ids one `creategrp` / `addmembers` / `delmembers` call may carry; a larger group (up to
#: `max_group_members`) is built in several calls
MAX_MEMBERS_PER_CALL = 500
MAX_NAME_CHARS = 64
MAX_NOTICE_CHARS = 1024


@dataclass(frozen=True)
class GroupInfo:
    groupid: str
    creator: str
    name: str
    notice: str
    snap: str  # picture file name ("" while none was drawn)
    members: list[str]


def parse_ids(text: str | None, what: str, max_count: int) -> list[str]:
    """`"1,2, 3,"` -> ["1", "2", "3"] (trimmed, trailing comma allowed as the original did, deduplicated)."""
    if not text or not text.strip():
        raise Refused(errors.BAD_REQUEST, f"missing {what}")
    ids = [part.strip() for part in text.strip().rstrip(",").split(",")]
    for value in ids:
        if not ID_RE.fullmatch(value):
            raise Refused(errors.BAD_REQUEST, f"bad id in {what}")
    ids = list(dict.fromkeys(ids))
    if len(ids) > max_count:
        raise Refused(errors.FULL, f"more than {max_count} {what}")
    return ids


class GroupService:
    _log = Logger()

    def __init__(self, hub, profiles: Profiles, media_store, *, max_members: int) -> None:
        self.hub = hub
        self.groups = hub.groups
        self.profiles = profiles
        self.media = media_store
        self.max_members = max_members
        self._picture_locks: dict[str, defer.DeferredLock] = {}

    async def info(self, group: str) -> GroupInfo:
        try:
            fields = await self.groups.info(REALM, group)
        except NoSuchGroup:
            raise Refused(errors.NO_SUCH_GROUP, "no such group") from None
        members = await self.groups.members(REALM, group)
        return GroupInfo(group, fields.get("creator", ""), fields.get("name", ""), fields.get("notice", ""),
                         fields.get("snap", ""), members)

    async def exists(self, group: str) -> bool:
        return await self.groups.exists(REALM, group)

    async def is_member(self, group: str, user: str) -> bool:
        return await self.groups.is_member(REALM, group, user)

    async def summary(self, group: str) -> GroupInfo:
        """The group's fields without its member list (which may be 100,000 long)."""
        try:
            fields = await self.groups.info(REALM, group)
        except NoSuchGroup:
            raise Refused(errors.NO_SUCH_GROUP, "no such group") from None
        return GroupInfo(group, fields.get("creator", ""), fields.get("name", ""), fields.get("notice", ""),
                         fields.get("snap", ""), [])

    async def create(self, creator: str, members: list[str], name: str) -> GroupInfo:
        _check_text(name, "name", MAX_NAME_CHARS, required=True)
        members = list(dict.fromkeys([creator, *members]))
        if len(members) > self.max_members:
            raise Refused(errors.FULL, f"more than {self.max_members} members")
        group = await self.groups.create(REALM, {"creator": creator, "name": name, "notice": "", "snap": ""},
                                         members)
        await self._redraw_quietly(group)
        return await self.info(group)

    async def add_members(self, group: str, members: list[str]) -> None:
        """Add members; the group's size is checked without reading its member list, and the
        picture is redrawn only when the new members change its first nine."""
        if not await self.groups.exists(REALM, group):
            raise Refused(errors.NO_SUCH_GROUP, "no such group")
        if await self.groups.count_with(REALM, group, members) > self.max_members:
            raise Refused(errors.FULL, f"more than {self.max_members} members")
        try:
            changed = await self.groups.add_members(REALM, group, members)
        except NoSuchGroup:
            raise Refused(errors.NO_SUCH_GROUP, "no such group") from None
        if changed and await self._tiles_change(group, members, added=True):
            await self._redraw_quietly(group)

    async def remove_members(self, group: str, members: list[str]) -> None:
        try:
            changed = await self.groups.remove_members(REALM, group, members)
        except NoSuchGroup:
            raise Refused(errors.NO_SUCH_GROUP, "no such group") from None
        if changed and await self._tiles_change(group, members, added=False):
            await self._redraw_quietly(group)

    async def _tiles_change(self, group: str, members: list[str], *, added: bool) -> bool:
        """Would the picture's tiles (the first nine members in id order) change?"""
        try:
            fields = await self.groups.info(REALM, group)
        except NoSuchGroup:
            return False
        if "tiles" not in fields:
            return True  # drawn before tiles were recorded
        tiles = [t for t in fields["tiles"].split(",") if t]
        if not added:
            return any(m in tiles for m in members)
        if len(tiles) < MAX_PICTURE_TILES:
            return True
        last = natural_order(tiles[-1])
        return any(natural_order(m) < last for m in members)

    async def edit(self, group: str, name: str | None, notice: str | None) -> None:
        fields = {}
        if name:  # an empty name is "not changed", as in the original
            _check_text(name, "name", MAX_NAME_CHARS, required=True)
            fields["name"] = name
        if notice:  # likewise; a notice of spaces clears it
            _check_text(notice, "notice", MAX_NOTICE_CHARS, required=False)
            fields["notice"] = notice if notice.strip() else ""
        if not fields:
            raise Refused(errors.BAD_REQUEST, "nothing to change: give name or notice")
        try:
            await self.groups.update(REALM, group, fields)
        except NoSuchGroup:
            raise Refused(errors.NO_SUCH_GROUP, "no such group") from None

    async def groups_of(self, user: str) -> list[GroupInfo]:
        infos = []
        for group in await self.groups.groups_of(REALM, user):
            try:
                infos.append(await self.info(group))
            except Refused:  # removed meanwhile
                continue
        return infos

    async def profiles_of(self, users: list[str]) -> dict[str, Profile]:
        return await self.profiles.lookup(users)

    async def redraw(self, group: str) -> str:
        """Draw the group's picture again (one at a time per group); returns its file name."""
        lock = self._picture_locks.setdefault(group, defer.DeferredLock())
        try:
            return await lock.run(lambda: defer.Deferred.fromCoroutine(self._redraw(group)))
        finally:
            if not lock.locked and not lock.waiting:
                self._picture_locks.pop(group, None)

    async def _redraw_quietly(self, group: str) -> None:
        """The membership change stands even if the picture cannot be drawn (it is logged)."""
        try:
            await self.redraw(group)
        except Refused:
            pass  # the group went away meanwhile
        except Exception:
            self._log.failure("drawing the picture of boss group {group} failed", group=group)

    async def _redraw(self, group: str) -> str:
        current = await self.info(group)
        shown = current.members[:MAX_PICTURE_TILES]
        profiles = await self.profiles.lookup(shown) if shown else {}
        downloads = [self.profiles.download(profiles[u].snap) if profiles[u].snap else _none() for u in shown]
        avatars = list(await defer.gatherResults([defer.ensureDeferred(d) for d in downloads]))
        name = await self.media.draw_group_picture(group, avatars, current.snap)
        await self.groups.update(REALM, group, {"snap": name, "tiles": ",".join(shown)})
        return name


async def _none() -> None:
    return None


def _check_text(value: str | None, what: str, max_chars: int, *, required: bool) -> None:
    if required and not (value or "").strip():
        raise Refused(errors.BAD_REQUEST, f"missing {what}")
    if value is not None and len(value) > max_chars:
        raise Refused(errors.TOO_LONG, f"{what} longer than {max_chars} characters")
