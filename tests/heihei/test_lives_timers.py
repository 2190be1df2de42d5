"""A live's timers on the injected clock (task.Clock), held in Redis so that any node fires them: heart-beat
expiry of the anchor and of a viewer, the stream's grace period, the longest pause, and a node stopped in the
middle of a countdown."""

from __future__ import annotations

import time

import pytest_twisted
import treq
from twisted.internet import reactor, task

from heihei.outbound.streams import MediaSigner
from tests.conftest import http_url
from tests.heihei.helpers import api, ok, open_channel
from tests.heihei.livehelpers import CALLBACK_KEY, MEDIA_SECRET, live_extra, next_msg, start_live, user


def clock_at_start() -> task.Clock:
    clock = task.Clock()
    clock.advance(1_700_000_000)
    return clock


async def advance(clock: task.Clock, seconds: float, step: float = 1.0) -> None:
    """Move the nodes' clock on in steps, letting each step's Redis work finish (real time)."""
    done = 0.0
    while done < seconds:
        clock.advance(min(step, seconds - done))
        done += step
        for _ in range(3):
            await task.deferLater(reactor, 0.01, lambda: None)


async def status(node, token: str, live_id) -> int:
    r = await api(node, "/api/live/get-live", {"token": token, "liveId": live_id})
    return r["live"]["status"] if r["errorcode"] == 0 else r["errorcode"]


@pytest_twisted.ensureDeferred
async def test_a_silent_anchor_ends_the_live_and_a_silent_viewer_leaves(nodes, outside):
    clock = clock_at_start()
    a = await nodes.start("a", live_extra(outside), clock=clock)
    b = await nodes.start("b", live_extra(outside), clock=clock)
    a_token, anchor = await user(a, outside, "13600000001", "主播")
    v_token, viewer = await user(b, outside, "13600000002", "观众")
    s_token, silent = await user(b, outside, "13600000003", "沉默")
    live_id = (await start_live(a, a_token))["liveId"]
    for token in (v_token, s_token):
        await ok(b, "/api/live/join-live", {"token": token, "liveId": live_id})
    channel = await open_channel(b, v_token)

    # 30 s: the anchor and the first viewer beat every 10 s (as the client does), the second viewer never
    for _ in range(3):
        await advance(clock, 10)
        await ok(a, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1})
        await ok(b, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 0})
    await advance(clock, 6)  # 36 s since the silent viewer joined: past heartbeat_timeout_s (35)
    users = await ok(a, "/api/live/list-live-users", {"token": a_token, "liveId": live_id})
    assert [u["id"] for u in users["users"]] == [int(viewer)]
    assert (await api(b, "/api/live/heart-beat", {"token": s_token, "liveId": live_id, "isCreator": 0}))[
        "errorcode"] == 506
    assert silent not in await a.operators["channel"].rooms.members(live_id)

    # now the anchor goes quiet: 35 s after the last beat the live ends, on whichever node
    await ok(a, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1})
    await ok(b, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 0})
    await advance(clock, 30)
    assert await status(a, a_token, live_id) == 1
    await ok(b, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 0})
    await advance(clock, 6)
    assert await status(a, a_token, live_id) == 2
    end = await next_msg(channel, want=lambda m: m.get("action") == "stop-live")
    assert end["reason"] == "heartbeat" and end["live"]["status"] == 2
    # heart-beats after the end are refused (the client stops after two)
    r = await api(a, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1})
    assert r["errorcode"] == 725
    # the room closes a moment after stop-live: its members leave
    await advance(clock, 3)
    assert await a.operators["channel"].rooms.members(live_id) == []
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_a_node_stopped_mid_countdown_leaves_the_timer_to_another(nodes, outside):
    clock = clock_at_start()
    a = await nodes.start("a", live_extra(outside), clock=clock)
    b = await nodes.start("b", live_extra(outside), clock=clock)
    a_token, anchor = await user(a, outside, "13600000011", "主播")
    live_id = (await start_live(a, a_token))["liveId"]
    await advance(clock, 10)
    await nodes.stop(a)  # the node that set the timer and served the anchor is gone
    await advance(clock, 30)
    assert await status(b, a_token, live_id) == 2
    assert (await ok(b, "/api/live/list-live-by-recommend", {"token": a_token}))["lives"] == []


@pytest_twisted.ensureDeferred
async def test_a_paused_live_waits_for_its_anchor_up_to_pause_max(nodes, outside):
    clock = clock_at_start()
    node = await nodes.start("a", live_extra(outside, lives={"pause_max_s": 120.0}), clock=clock)
    a_token, anchor = await user(node, outside, "13600000021", "主播")
    live_id = (await start_live(node, a_token))["liveId"]
    await ok(node, "/api/live/pause-live", {"token": a_token, "liveId": live_id})
    await advance(clock, 60, step=5)  # no heart-beats while paused: not the end
    assert await status(node, a_token, live_id) == 1
    await ok(node, "/api/live/continue-live", {"token": a_token, "liveId": live_id})
    await advance(clock, 20, step=5)
    await ok(node, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1})
    await ok(node, "/api/live/pause-live", {"token": a_token, "liveId": live_id})
    await advance(clock, 125, step=5)
    assert await status(node, a_token, live_id) == 2


async def hook(node, fields: dict, *, key: str = CALLBACK_KEY) -> int:
    response = await treq.post(http_url(node, f"/media/nginx?hook_key={key}"), data=fields)
    await response.content()
    return response.code


@pytest_twisted.ensureDeferred
async def test_the_stream_puts_a_live_on_and_its_loss_ends_it_after_the_grace(nodes, outside):
    clock = clock_at_start()
    node = await nodes.start("a", live_extra(outside, callbacks=True, lives={"stream_grace_s": 60.0}), clock=clock)
    a_token, anchor = await user(node, outside, "13600000031", "主播")
    v_token, viewer = await user(node, outside, "13600000032", "观众")
    live = (await ok(node, "/api/live/create-live", {"token": a_token, "title": "推流"}))["live"]
    live_id = live["liveId"]
    query = dict(part.split("=", 1) for part in live["pushAddr"].split("?", 1)[1].split("&"))
    publish = {"call": "publish", "app": "live", "name": str(live_id), "clientid": "7", **query}

    # start-live alone does not put it on when a media server calls back: its stream does
    await ok(node, "/api/live/start-live", {"token": a_token, "liveId": live_id})
    assert await status(node, a_token, live_id) == 0
    assert await hook(node, publish) == 200
    assert await status(node, a_token, live_id) == 1
    await ok(node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    channel = await open_channel(node, v_token)

    # the stream drops: paused at once, back within the grace: on again
    assert await hook(node, {**publish, "call": "publish_done"}) == 200
    assert (await next_msg(channel))["action"] == "pause-live"
    for _ in range(3):
        await advance(clock, 10)
        await ok(node, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1})
        await ok(node, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 0})
    assert await hook(node, {**publish, "clientid": "8"}) == 200
    assert (await next_msg(channel))["action"] == "continue-live"
    # another client's publish_done (a refused intruder, an old session) changes nothing
    assert await hook(node, {**publish, "call": "publish_done", "clientid": "7"}) == 200
    # dropped again and not back: the live ends when the grace is over
    assert await hook(node, {**publish, "call": "publish_done", "clientid": "8"}) == 200
    for _ in range(5):
        await advance(clock, 10)
        await ok(node, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1})
        await ok(node, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 0})
    assert await status(node, a_token, live_id) == 1
    await advance(clock, 12)
    assert await status(node, a_token, live_id) == 2
    end = await next_msg(channel, want=lambda m: m.get("action") == "stop-live")
    assert end["reason"] == "stream"
    # an ended live's stream is foreign now
    assert await hook(node, publish) == 403
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_publish_callbacks_refuse_what_is_not_the_anchors(nodes, outside):
    node = await nodes.start("a", live_extra(outside, callbacks=True))
    a_token, anchor = await user(node, outside, "13600000041", "主播")
    live = (await ok(node, "/api/live/create-live", {"token": a_token, "title": "推流"}))["live"]
    live_id = str(live["liveId"])
    signer = MediaSigner(secret=MEDIA_SECRET, push_rtmp="rtmp://push.example.com",
                         pull_flv="http://media.example.com:8000", push_ttl_s=60)
    now = time.time()
    push = signer.push(live_id, now_s=now, with_proof=True)
    play = signer.pull(live_id, now_s=now)
    expired = signer.push(live_id, now_s=now - 120, with_proof=True)
    other = signer.push("1", now_s=now, with_proof=True)
    base = {"call": "publish", "app": "live", "name": live_id, "clientid": "1"}
    refused = [
        {},  # unsigned
        {"sign": play.sign},  # a viewer's play address: no publish proof
        {"sign": push.sign, "pk": "0" * 32},  # a forged proof
        {"sign": expired.sign, "pk": expired.proof},  # expired
        {"sign": other.sign, "pk": other.proof},  # signed for another stream
    ]
    for query in refused:
        assert await hook(node, {**base, **query}) == 403, query
    assert await hook(node, {**base, "app": "other", "sign": push.sign, "pk": push.proof}) == 403  # foreign app
    assert await hook(node, {**base, "name": "1", "sign": other.sign, "pk": other.proof}) == 403  # no such live
    assert await hook(node, {**base, "sign": push.sign, "pk": push.proof}, key="wrong") == 401
    assert await hook(node, {**base, "sign": push.sign, "pk": push.proof}, key="") == 401
    assert (await api(node, "/api/live/get-live", {"token": a_token, "liveId": live_id}))["live"]["status"] == 0
    # play: any sign of ours for the stream, while the live is on
    assert await hook(node, {**base, "call": "play"}) == 403
    assert await hook(node, {**base, "call": "play", "sign": play.sign}) == 200
    assert await hook(node, {**base, "sign": push.sign, "pk": push.proof}) == 200
    assert (await api(node, "/api/live/get-live", {"token": a_token, "liveId": live_id}))["live"]["status"] == 1
    # SRS's and Node-Media-Server's callbacks reach the same gate
    srs = treq.post(http_url(node, f"/media/srs?hook_key={CALLBACK_KEY}"), json={
        "action": "on_play", "client_id": "x", "app": "live", "stream": live_id, "param": f"?sign={play.sign}"})
    answer = await srs
    assert answer.code == 200 and (await answer.json()) == {"code": 0}
    nms = await treq.post(http_url(node, f"/media/nms?hook_key={CALLBACK_KEY}"), data=(
        '{"action":"prePlay","app":"live","name":"%s","query":{"sign":"bad"}}' % live_id).encode(),
        headers={b"Content-Type": [b"text/plain;charset=UTF-8"]})
    assert nms.code == 403 and (await nms.json())["msg"] == "malformed"
