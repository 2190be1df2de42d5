"""Helpers for the 1:1 chat tests: nodes with RTC keys, the nodes' shared task.Clock, push items."""

from __future__ import annotations

import json

from twisted.internet import reactor, task

from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api

QINIU = {"qiniu_app_id": "desmfnkw5", "qiniu_access_key": "test-ak-0123456789",
         "qiniu_secret_key": "test-sk-abcdefghijklmnop"}
# The sample key of Tencent's own library (TLSSigAPIv2.py main()).
TRTC_APP, TRTC_KEY = 1400000000, "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
LK_KEY, LK_SECRET, LK_URL = "APIheihei", "livekit-test-secret-0123456789abcdef0123", "wss://sfu.example.com"
START_S = 1_700_000_000


def chat_extra(outside, *, video: str = "qiniu", **sections) -> dict:
    rtc = {"video_provider": video, **QINIU, "trtc_sdk_app_id": TRTC_APP, "trtc_secret_key": TRTC_KEY,
           "livekit_url": LK_URL, "livekit_api_key": LK_KEY, "livekit_api_secret": LK_SECRET}
    rtc.update(sections.pop("rtc", {}))
    return heihei_extra(outside, rtc=rtc, **sections)


def clock_at_start() -> task.Clock:
    clock = task.Clock()
    clock.advance(START_S)
    return clock


async def settle(rounds: int = 3) -> None:
    for _ in range(rounds):
        await task.deferLater(reactor, 0.01, lambda: None)


async def advance(clock: task.Clock, seconds: float, step: float = 1.0) -> None:
    """Move the nodes' clock on in steps, letting each step's Redis work finish (real time)."""
    done = 0.0
    while done < seconds:
        clock.advance(min(step, seconds - done))
        done += step
        await settle()


async def action(client, name: str, timeout: float = 5.0) -> dict:
    """The next channel msg with `action` == name (others are skipped)."""
    while True:
        text = await client.next(timeout)
        for it in json.loads(text):
            msg = it["msg"]
            if isinstance(msg, dict) and msg.get("action") == name:
                return msg


async def code(node, path: str, params: dict) -> int:
    return (await api(node, path, params))["errorcode"]


def chats_of(node):
    """The node's ChatService."""
    return node.operators["channel"].chats


async def state(node, uid: str):
    return await chats_of(node).chats.state_of(uid)
