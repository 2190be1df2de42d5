"""
How a live and the people around it are shown in seed 001's answers and items.

Pure functions of stored fields (no I/O): `LiveInfo` as the shipped Android
client parses it (`LiveInfo.java`, docs in ../shared/heihei-app.md) with the
seed's own spellings next to it, the three-target `share`, `liveOptions`, and
the user entries of the lists.

Where the seed's examples disagree with each other or with the client, both
spellings are sent: `totalTickets` / `livetotalticket` / `liveTotalTicket`,
`userId`/`userName` next to list-live-by-user's `creatorId`/`creatorName`/
`creatorCover`/`onlineUser`, `address` next to `liveCity`. `pushAddr` and
`qiniuObj` are credentials: only the anchor's own answers carry them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

#: the seed's statuses
TO_START, PLAYING, STOPPED, BANNED, DELETED = 0, 1, 2, 3, 4


def _int(value: Any, default: int = 0) -> int:
    text = str(value) if value is not None else ""
    return int(text) if text.lstrip("-").isdigit() else default


def local_time(ms: int | str | None, utc_offset_h: float) -> str | None:
    """`yyyy-MM-dd HH:mm:ss` at the configured offset (the client parses it in the phone's zone)."""
    if ms in (None, ""):
        return None
    zone = datetime.timezone(datetime.timedelta(hours=utc_offset_h))
    return datetime.datetime.fromtimestamp(_int(ms) / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")


def id_value(live_id: str) -> int | str:
    """Ids as JSON numbers when they fit a Java long (they always do here)."""
    return int(live_id) if live_id.isdigit() and len(live_id) < 19 else live_id


@dataclass(frozen=True)
class Addresses:
    """What the media signer gives for one live ("" where not configured)."""

    stream: str = ""
    hls: str = ""
    push: str = ""
    qiniu_obj: dict[str, Any] | None = None


@dataclass(frozen=True)
class Counts:
    online: int = 0
    total: int = 0
    seats: int = 0
    locked: int = 0


def live_info(live: dict[str, str], anchor: dict[str, str] | None, *, counts: Counts, addresses: Addresses,
              share_addr: str, lookback_addr: str, message_addr: str, for_anchor: bool,
              utc_offset_h: float) -> dict[str, Any]:
    anchor = anchor or {}
    live_id = live.get("liveId", "")
    status = _int(live.get("status"))
    start, end = live.get("startTime") or "", live.get("endTime") or ""
    length = (_int(end) - _int(start)) // 1000 if start and end else None
    tickets = _int(live.get("totalTickets"))
    name = anchor.get("displayName", "")
    cover = anchor.get("coverUrl", "")
    capacity = counts.seats - counts.locked if counts.seats else 0
    info = {
        "liveId": id_value(live_id), "roomId": id_value(live_id), "title": live.get("title", ""),
        "status": status, "visible": _int(live.get("visible"), 1), "paused": live.get("paused") == "1",
        "userId": _int(live.get("userId")), "userName": name, "gender": anchor.get("gender", "Unspecified"),
        "birthDay": anchor.get("birthDay", ""), "coverUrl": cover, "honours": [],
        "creatorId": _int(live.get("userId")), "creatorName": name, "creatorCover": cover,
        "liveCity": live.get("city", ""), "address": live.get("city", ""),
        "streamAddr": addresses.stream, "hlsAddr": addresses.hls,
        "pushAddr": addresses.push if for_anchor else "",
        "shareAddr": share_addr, "lookbackAddr": lookback_addr, "messageAddr": message_addr,
        "onlineUsers": counts.online, "onlineUser": counts.online, "totalUsers": counts.total,
        "totalTickets": tickets, "livetotalticket": tickets, "liveTotalTicket": tickets,
        "roomUserCount": capacity, "roomNowUserCount": counts.online + 1,
        "createTime": local_time(live.get("createTime"), utc_offset_h),
        "startTime": local_time(start, utc_offset_h), "endTime": local_time(end, utc_offset_h),
        "length": length, "deviceType": None, "isrecomm": 0,
    }
    if for_anchor and addresses.qiniu_obj is not None and status in (TO_START, PLAYING):
        info["qiniuObj"] = addresses.qiniu_obj
    return info


def share(*, title: str, anchor_name: str, url: str, cover_url: str, status: int) -> dict[str, Any]:
    """`share` with all three targets (the client crashes if one is missing)."""
    content = f"{anchor_name} 正在直播" if status in (TO_START, PLAYING) else f"{anchor_name} 的直播回放"
    target = {"title": title, "content": content, "url": url, "coverUrl": cover_url}
    return {"weibo": dict(target), "wechat": dict(target), "friend": dict(target)}


def live_options(settings) -> dict[str, Any]:
    """create-live's `liveOptions` (v1.5): the client's anti-idle prompt."""
    return {"inefficientTime": settings.inefficient_time_s, "countDownTime": settings.count_down_time_s,
            "alertTitle": settings.alert_title, "alertContent": settings.alert_content,
            "helpLink": settings.help_link}


def viewer_entry(profile: dict[str, str], join_ms: int, is_followed: bool) -> dict[str, Any]:
    """A user of list-live-users (joinTime in seconds as the seed shows; joinTimeMs for exact paging)."""
    return {"id": _int(profile.get("id")), "name": profile.get("displayName", ""),
            "displayName": profile.get("displayName", ""), "isFollowed": is_followed,
            "coverUrl": profile.get("coverUrl", ""), "gender": profile.get("gender", "Unspecified"),
            "birthDay": profile.get("birthDay", ""), "joinTime": join_ms // 1000, "joinTimeMs": join_ms}


def user_entry(profile: dict[str, str], is_followed: bool, **extra: Any) -> dict[str, Any]:
    """A user as list-replay-users, invite-user-list, getmgruser and get-live's `userInfo` show one."""
    out = {"id": _int(profile.get("id")), "displayName": profile.get("displayName", ""),
           "description": profile.get("description", ""), "coverUrl": profile.get("coverUrl", ""),
           "user_type": profile.get("userType", "Normal"), "user_status": "Published",
           "address": profile.get("address", ""), "region": profile.get("region", ""),
           "gender": profile.get("gender", "Unspecified"), "birthDay": profile.get("birthDay", ""),
           "level": _int(profile.get("level")), "heiNum": _int(profile.get("heiNum")),
           "honours": [], "isFollowed": is_followed, "experience": _int(profile.get("experience")),
           "roomCount": _int(profile.get("roomCount")), "modifyCount": _int(profile.get("modifyCount")),
           "lastModified": _int(profile.get("lastModified")) // 1000}
    out.update(extra)
    return out


def counts_msg(live_id: str, counts: Counts) -> dict[str, Any]:
    """The room's online count item (the seed's list-live-users `message`, without `users`: only the
    numbers changed), with msgType/action so a client can dispatch it."""
    return {"msgType": "action", "action": "live-users", "comment": "观看人数", "liveId": id_value(live_id),
            "roomId": id_value(live_id), "onlineUsers": counts.online, "totalUsers": counts.total,
            "totalCount": counts.online + 1, "roomSeatCount": counts.seats, "roomLockedCount": counts.locked}
