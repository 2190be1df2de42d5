"""
How a stored profile is shown in the answers of seed 001 (field names and
types as in the seed's examples). Counters that belong to later modules
(followers, points, gold, lives ...) are read from the profile hash where those
modules keep them, 0 until they do.
"""

from __future__ import annotations

from typing import Any
from heihei.textnum import is_int_text

COUNTERS = ("followerCount", "followingCount", "point", "goldCount", "postCount", "liveCount", "experience",
            "allEarnPoint", "roomCount")


def _int(value: Any, default: int = 0) -> int:
    text = str(value) if value is not None else ""
    return int(text) if is_int_text(text) else default


def sign_in_info(p: dict[str, str]) -> dict[str, Any]:
    """`userInfo` of the sign-in answers (lastModified in ms, as the seed shows there)."""
    return {"id": _int(p.get("id")), "heiNum": _int(p.get("heiNum")), "lastModified": _int(p.get("lastModified")),
            "displayName": p.get("displayName", ""), "coverUrl": p.get("coverUrl", ""),
            "region": p.get("region", ""), "gender": p.get("gender", "Unspecified"),
            "birthDay": p.get("birthDay", ""), "level": _int(p.get("level")),
            "userType": p.get("userType", "Normal"), "address": p.get("address", ""),
            "description": p.get("description", "")}


def user_status(p: dict[str, str]) -> str:
    """The seed's `user_status`: "Published", or "Banned" for an account an operator banned."""
    return "Banned" if p.get("banned") == "1" else "Published"


def user_result(p: dict[str, str], *, is_self: bool, is_followed: bool = False,
                is_blocked: bool = False, counts: tuple[int, int] | None = None) -> dict[str, Any]:
    """`result` of `/api/user/info` (lastModified in seconds, as the seed shows there); `counts`
    = (followers, following) from the follow graph."""
    out: dict[str, Any] = {name: _int(p.get(name)) for name in COUNTERS}
    if counts is not None:
        out["followerCount"], out["followingCount"] = counts
    out.update({
        "id": _int(p.get("id")), "heiNum": _int(p.get("heiNum")), "displayName": p.get("displayName", ""),
        "coverUrl": p.get("coverUrl", ""), "description": p.get("description", ""),
        "address": p.get("address", ""), "region": p.get("region", ""),
        "gender": p.get("gender", "Unspecified"), "birthDay": p.get("birthDay", ""),
        "level": _int(p.get("level")), "user_type": p.get("userType", "Normal"),
        "user_status": user_status(p), "honours": [], "isFollowed": is_followed, "isBlocked": is_blocked,
        "lastModified": _int(p.get("lastModified")) // 1000,
    })
    if is_self:
        out["attribute"] = {"push_enable": p.get("push_enable", "1")}
        out["modifyCount"] = _int(p.get("modifyCount"))
    return out


def list_entry(p: dict[str, str]) -> dict[str, Any]:
    """A user in a list (blocked users)."""
    return {"id": _int(p.get("id")), "lastModified": _int(p.get("lastModified")),
            "displayName": p.get("displayName", ""), "coverUrl": p.get("coverUrl", ""),
            "region": p.get("region", ""), "gender": p.get("gender", "Unspecified"),
            "level": _int(p.get("level")), "birthDay": p.get("birthDay", ""), "attribute": {},
            "description": p.get("description", "")}


def list_user(p: dict[str, str], *, is_followed: bool, counts: tuple[int, int]) -> dict[str, Any]:
    """A user in the follower, following, by-type and active lists: the seed's list entry plus what
    the shipped client's User reads (level, heiNum, the counts, isFollowed)."""
    out = list_entry(p)
    out.update({"heiNum": _int(p.get("heiNum")), "followerCount": counts[0], "followingCount": counts[1],
                "isFollowed": is_followed})
    return out


def brief(p: dict[str, str], *, is_followed: bool) -> dict[str, Any]:
    """An entry of a topic's or subject's `users` map (heiNum a number, as in those examples)."""
    return {"id": _int(p.get("id")), "displayName": p.get("displayName", ""), "heiNum": _int(p.get("heiNum")),
            "coverUrl": p.get("coverUrl", ""), "level": _int(p.get("level")), "birthDay": p.get("birthDay", ""),
            "gender": p.get("gender", "Unspecified"), "honours": [], "isFollowed": is_followed}
