"""Helpers for the live-room tests: nodes with a media configuration, users, room items."""

from __future__ import annotations

import json

from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import name, ok, sign_in

MEDIA_SECRET = "media-test-secret"
CALLBACK_KEY = "media-callback-key"


def live_extra(outside, *, callbacks: bool = False, **sections) -> dict:
    """A node whose lives have signed addresses; with `callbacks`, the media server's publish callback
    (not start-live) puts a live on."""
    media = {"secret": MEDIA_SECRET, "push_rtmp": "rtmp://push.example.com",
             "pull_flv": "http://media.example.com:8000",
             "recording_url": "http://media.example.com:8000/recordings/{stream}.flv"}
    if callbacks:
        media["callback_key"] = CALLBACK_KEY
    media.update(sections.pop("media", {}))
    return heihei_extra(outside, media=media, **sections)


async def user(node, outside, phone: str, display_name: str) -> tuple[str, str]:
    token, uid = await sign_in(node, outside, phone)
    await name(node, token, display_name)
    return token, uid


async def live_items(client, timeout: float = 5.0) -> list[dict]:
    """The items of the next frame (a frame may carry several)."""
    text = await client.next(timeout)
    items = json.loads(text)
    assert isinstance(items, list) and items, text
    return items


async def next_msg(client, *, want=lambda msg: True, timeout: float = 5.0, skip_counts: bool = True) -> dict:
    """The next room msg that `want`s, skipping the online-count items unless asked for them."""
    while True:
        for it in await live_items(client, timeout):
            msg = it["msg"]
            if skip_counts and msg.get("action") == "live-users":
                continue
            if want(msg):
                return msg


async def start_live(node, token: str, title: str = "我的直播") -> dict:
    live = (await ok(node, "/api/live/create-live", {"token": token, "title": title}))["live"]
    await ok(node, "/api/live/start-live", {"token": token, "liveId": live["liveId"]})
    return live


async def live_with_viewer(anchor_node, viewer_node, outside, anchor_phone: str, viewer_phone: str):
    """An anchor ("主播") live on `anchor_node` and a viewer ("观众") signed in and joined through
    `viewer_node`: (anchor token, anchor id, viewer token, viewer id, liveId)."""
    a_token, anchor = await user(anchor_node, outside, anchor_phone, "主播")
    v_token, viewer = await user(viewer_node, outside, viewer_phone, "观众")
    live_id = (await start_live(anchor_node, a_token))["liveId"]
    await ok(viewer_node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    return a_token, anchor, v_token, viewer, live_id
