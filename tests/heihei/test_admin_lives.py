"""The operators' live-room tools (/admin/heihei/lives..., /admin/heihei/notice) and /admin/cluster."""

from __future__ import annotations

import json

import pytest_twisted
import treq

from tests.conftest import http_url
from tests.heihei.helpers import api, ok, open_channel
from tests.heihei.livehelpers import live_extra, next_msg, start_live, user


async def admin(node, method: str, path: str, body=None, token: str | None = None):
    headers = {b"Authorization": [f"Bearer {node.admin_token if token is None else token}".encode()]}
    data = json.dumps(body).encode() if body is not None else None
    response = await treq.request(method, http_url(node, path), headers=headers, data=data)
    return response.code, json.loads(await response.content())


@pytest_twisted.ensureDeferred
async def test_an_operator_lists_rooms_mutes_kicks_and_posts_notices(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    a_token, anchor = await user(node, outside, "13500000001", "主播")
    v_token, viewer = await user(node, outside, "13500000003", "观众")
    w_token, other = await user(node, outside, "13500000004", "另一个")
    live_id = str((await start_live(node, a_token))["liveId"])
    for token in (v_token, w_token):
        await ok(node, "/api/live/join-live", {"token": token, "liveId": live_id})
    watcher = await open_channel(node, w_token)

    code, rooms = await admin(node, "GET", "/admin/heihei/lives")
    assert code == 200 and [(r["liveId"], r["anchor"], r["onlineUsers"], r["muted"]) for r in rooms["lives"]] == [
        (live_id, anchor, 2, [])]

    # mute: the room hears the seed's item, the muted viewer's room text is refused (722)
    assert await admin(node, "PUT", f"/admin/heihei/lives/{live_id}/mutes/{viewer}") == (
        200, {"liveId": live_id, "userId": viewer, "muted": True})
    muted = await next_msg(watcher)
    assert muted["action"] == "shutup-user" and muted["userId"] == int(viewer)
    said = await api(node, "/api/msg/send-msg", {"token": v_token, "text": "hello", "roomId": live_id})
    assert said["errorcode"] == 722
    code, room = await admin(node, "GET", f"/admin/heihei/lives/{live_id}")
    assert code == 200 and room["muted"] == [viewer] and set(room["viewers"]) == {viewer, other}
    assert (await admin(node, "DELETE", f"/admin/heihei/lives/{live_id}/mutes/{viewer}"))[0] == 200
    assert (await next_msg(watcher))["action"] == "shutup-open-user"

    # notices: one room, then every room live now
    assert (await admin(node, "POST", f"/admin/heihei/lives/{live_id}/notice", {"text": "维护通知"}))[0] == 200
    notice = await next_msg(watcher)
    assert notice["msgType"] == "system" and notice["text"] == "维护通知"
    assert await admin(node, "POST", "/admin/heihei/notice", {"text": "全站通知"}) == (200, {"sent": [live_id]})
    assert (await next_msg(watcher))["text"] == "全站通知"

    # kick: the kicked user is told and is out of the room
    assert (await admin(node, "PUT", f"/admin/heihei/lives/{live_id}/kicks/{other}"))[0] == 200
    kicked = await next_msg(watcher, want=lambda m: m.get("action") == "quit-live")
    assert kicked["liveId"] == int(live_id)
    code, room = await admin(node, "GET", f"/admin/heihei/lives/{live_id}")
    assert room["kicked"] == [other] and other not in room["viewers"]

    # refusals: unknown live or user 404, the anchor cannot be muted (403), bad text 400, no token 401
    assert (await admin(node, "GET", "/admin/heihei/lives/999"))[0] == 404
    assert (await admin(node, "PUT", "/admin/heihei/lives/999/mutes/1"))[0] == 404
    assert (await admin(node, "PUT", f"/admin/heihei/lives/{live_id}/mutes/987654"))[0] == 404
    assert (await admin(node, "PUT", f"/admin/heihei/lives/{live_id}/mutes/{anchor}"))[0] == 403
    assert (await admin(node, "POST", "/admin/heihei/notice", {"text": 3}))[0] == 400
    assert (await admin(node, "POST", f"/admin/heihei/lives/{live_id}/notice", {"text": " "}))[0] == 400
    assert (await admin(node, "GET", "/admin/heihei/lives", token="wrong"))[0] == 401
    await watcher.close()


@pytest_twisted.ensureDeferred
async def test_cluster_shows_every_live_node(nodes):
    a = await nodes.start("a")
    b = await nodes.start("b")
    code, cluster = await admin(a, "GET", "/admin/cluster/status")
    assert code == 200
    assert cluster["node"] == "a" and cluster["nodes"] == ["a", "b"] and cluster["redis"]["reachable"] is True
    assert cluster["connections"] == {"live": 0, "boss": 0, "jim": 0, "channel": 0} and cluster["uptime_s"] >= 0
    assert (await admin(b, "GET", "/admin/cluster/status", token=""))[0] == 401


@pytest_twisted.ensureDeferred
async def test_an_operator_bans_a_live_on_now_and_a_replay(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    a_token, anchor = await user(node, outside, "13500000021", "主播")
    v_token, viewer = await user(node, outside, "13500000022", "观众")
    live_id = str((await start_live(node, a_token))["liveId"])
    await ok(node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    watcher = await open_channel(node, v_token)

    # a live on now: everyone in it is told it stopped, banned; it is status 3 and listed nowhere
    assert await admin(node, "PUT", f"/admin/heihei/lives/{live_id}/ban") == (200, {"liveId": live_id, "status": 3})
    stopped = await next_msg(watcher, want=lambda m: m.get("action") == "stop-live")
    assert stopped["reason"] == "banned" and stopped["text"] == "直播已被禁播"
    got = await ok(node, "/api/live/get-live", {"token": v_token, "liveId": live_id})
    assert got["live"]["status"] == 3
    listed = await ok(node, "/api/live/list-live-by-recommend", {"token": v_token})
    assert live_id not in {str(x["liveId"]) for x in listed["lives"] + listed["liveskback"]}
    assert (await admin(node, "GET", "/admin/heihei/lives"))[1]["lives"] == []
    # the anchor cannot bring it back
    for path in ("/api/live/continue-live", "/api/live/start-live"):
        answer = await api(node, path, {"token": a_token, "liveId": live_id})
        assert answer["errorcode"] not in (0, 404), (path, answer)
    # banning again is the same answer; an unknown live is 404
    assert await admin(node, "PUT", f"/admin/heihei/lives/{live_id}/ban") == (200, {"liveId": live_id, "status": 3})
    assert (await admin(node, "PUT", "/admin/heihei/lives/999999/ban"))[0] == 404

    # a replay (a stopped live) leaves the replays when banned
    second = str((await start_live(node, a_token, "第二场"))["liveId"])
    await ok(node, "/api/live/stop-live", {"token": a_token, "liveId": second})
    replays = (await ok(node, "/api/live/list-live-by-recommend", {"token": v_token}))["liveskback"]
    assert second in {str(x["liveId"]) for x in replays}
    assert (await admin(node, "PUT", f"/admin/heihei/lives/{second}/ban"))[0] == 200
    replays = (await ok(node, "/api/live/list-live-by-recommend", {"token": v_token}))["liveskback"]
    assert second not in {str(x["liveId"]) for x in replays}
    assert (await ok(node, "/api/live/get-live", {"token": v_token, "liveId": second}))["live"]["status"] == 3
    await watcher.close()
