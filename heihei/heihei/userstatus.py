"""
`userStatus` of `user/info` (seed 001, v1.4.x): which chat or co-hosting
button the client shows on a user's card.

In a live (`liveId`), seen by its anchor: `confStatus` 1 连麦 (may invite),
2 连麦不可用 (invited, waiting: with `expireTime`; or another conference is
on), 3 断开 (co-hosting with the anchor now), 4 接听 (the viewer asked: with
`expireTime`). Elsewhere: `type` 5 直播中 (the user is live; `jump` opens the
live) or 6 约聊中 (in a chat or an invitation), sent as `confStatus` too (the
seed's v1.4.1 table numbers them that way); no `userStatus` at all: the
ordinary 约聊 button.
"""

from __future__ import annotations

import math
from typing import Any

from heihei.heihei.conference import invitations_key, requests_key
from heihei.heihei.push import link_for

CAN_COHOST, COHOST_UNAVAILABLE, COHOSTING, ANSWER, IS_LIVE, IN_CHAT = 1, 2, 3, 4, 5, 6


class UserStatus:
    def __init__(self, *, chats, conferences, lives) -> None:
        self.chats = chats
        self.conferences = conferences
        self.lives = lives

    async def _left_s(self, zset: str, uid: str, now_ms: int) -> int | None:
        until = await self.conferences.store.zscore(zset, uid)
        if until is None or float(until) <= now_ms:
            return None
        return math.ceil((float(until) - now_ms) / 1000)

    async def of(self, caller: str, uid: str, live_id: str | None) -> dict[str, Any] | None:
        if live_id is not None and uid != caller:
            live = await self.lives.core.get(live_id) or {}
            if live.get("status") == "1" and live.get("userId") == caller:
                conf = await self.conferences.conference(live_id)
                if conf.get("user") == uid:
                    return {"confStatus": COHOSTING}
                now = self.conferences.now_ms()
                left = await self._left_s(requests_key(live_id), uid, now)
                if left is not None:
                    return {"confStatus": ANSWER, "expireTime": left}
                left = await self._left_s(invitations_key(live_id), uid, now)
                if left is not None:
                    return {"confStatus": COHOST_UNAVAILABLE, "expireTime": left}
                if conf:
                    return {"confStatus": COHOST_UNAVAILABLE}
                return {"confStatus": CAN_COHOST}
        live = await self.lives.live_of(uid)
        if live is not None:
            return {"type": IS_LIVE, "confStatus": IS_LIVE, "jump": link_for("live", id=live.live_id)}
        state = await self.chats.state_of(uid)
        if state and state.startswith("c|"):
            return {"type": IN_CHAT, "confStatus": IN_CHAT}
        return None
