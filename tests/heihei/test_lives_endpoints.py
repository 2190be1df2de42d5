"""Every /api/live endpoint's refusals with the seed's codes, and the anchor's calls one by one."""

from __future__ import annotations

import pytest_twisted

from tests.heihei.helpers import api, ok, open_channel
from tests.heihei.livehelpers import live_extra, next_msg, start_live, user


async def code(node, path: str, params: dict) -> int:
    return (await api(node, path, params))["errorcode"]


@pytest_twisted.ensureDeferred
async def test_bad_input_is_700_and_never_a_500(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    token, _ = await user(node, outside, "13400000001", "甲")
    live = await start_live(node, token)
    every = ["create-live", "change-live", "start-live", "stop-live", "pause-live", "continue-live", "delete-live",
             "set-live-visible", "get-live", "join-live", "quit-live", "heart-beat", "list-live-by-recommend",
             "list-live-by-follow", "list-live-by-user", "unclosed-live", "list-live-users", "list-replay-users",
             "share-live", "kick-out-user", "shutupuser", "shutupopen", "isshutup", "lock-live-seat",
             "invite-user-list", "invite-user", "knock-live-room", "knock-status", "livemgr", "getmgruser", "getuser",
             "systemnotify", "live-like"]
    for name in every:
        # no token: 720 first (the session is checked before anything else)
        assert await code(node, f"/api/live/{name}", {}) == 720, name
        for bad in ({"liveId": "abc"}, {"liveId": "-5"}, {"liveId": "1" * 30}, {"userId": "x"},
                    {"liveId": live["liveId"], "isCreator": "7"}, {"liveId": live["liveId"], "visible": "2"},
                    {"liveId": live["liveId"], "unlock": "maybe"}, {"title": "x" * 300},
                    {"liveId": live["liveId"], "direction": "3"}, {"limit": "21"},
                    {"liveId": live["liveId"], "type": "9"}):
            body = await api(node, f"/api/live/{name}", {"token": token, **bad})
            assert body["errorcode"] in (0, 700, 731, 711, 710, 506, 725, 735, 737, 502, 504), (name, bad, body)
    r = await api(node, "/api/live/create-live", {"token": token})
    assert r == {"errorcode": 700, "errormsg": "参数错误: title (required)"}
    assert (await api(node, "/api/live/create-live", {"token": token, "title": "   "}))["errorcode"] == 700
    assert (await api(node, "/api/live/create-live", {"token": token, "title": "长" * 31}))["errorcode"] == 700
    r = await api(node, "/api/live/heart-beat", {"token": token, "liveId": live["liveId"], "isCreator": "2"})
    assert r["errorcode"] == 700 and "isCreator" in r["errormsg"]


@pytest_twisted.ensureDeferred
async def test_the_anchors_calls_and_their_refusals(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    a_token, anchor = await user(node, outside, "13400000011", "主播")
    o_token, other = await user(node, outside, "13400000012", "路人")
    v_token, viewer = await user(node, outside, "13400000013", "观众")
    live = await start_live(node, a_token, "标题一")
    live_id = live["liveId"]
    await ok(node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    channel = await open_channel(node, v_token)

    for path in ("change-live", "start-live", "stop-live", "pause-live", "continue-live", "delete-live",
                 "set-live-visible", "lock-live-seat", "invite-user-list", "invite-user"):
        params = {"token": o_token, "liveId": live_id, "title": "x", "visible": 1, "unlock": 1, "userId": viewer}
        r = await api(node, f"/api/live/{path}", params)
        assert r["errorcode"] == 711 and r["errormsg"].startswith("用户权限不足"), (path, r)
        r = await api(node, f"/api/live/{path}", {**params, "token": a_token, "liveId": 999})
        assert r["errorcode"] == 731 and r["errormsg"].startswith("直播无效"), (path, r)

    changed = await ok(node, "/api/live/change-live", {"token": a_token, "liveId": live_id, "title": "标题二"})
    assert changed["live"]["title"] == "标题二" and changed["live"]["pushAddr"]
    item = await next_msg(channel)
    assert item["action"] == "live-change" and item["title"] == "标题二" and item["liveId"] == live_id

    await ok(node, "/api/live/pause-live", {"token": a_token, "liveId": live_id})
    paused = await next_msg(channel)
    assert paused["action"] == "pause-live" and paused["liveId"] == live_id
    got = await ok(node, "/api/live/get-live", {"token": a_token, "liveId": live_id})
    assert got["live"]["status"] == 1 and got["live"]["paused"] is True  # the anchor's app restarts at 1
    await ok(node, "/api/live/continue-live", {"token": a_token, "liveId": live_id})
    assert (await next_msg(channel))["action"] == "continue-live"

    hidden = await ok(node, "/api/live/set-live-visible", {"token": a_token, "liveId": live_id, "visible": 0})
    assert hidden["live"]["visible"] == 0
    assert (await ok(node, "/api/live/list-live-by-recommend", {"token": o_token}))["lives"] == []
    assert await code(node, "/api/live/join-live", {"token": o_token, "liveId": live_id}) == 737
    assert (await ok(node, "/api/live/list-live-by-user", {"token": o_token, "userId": anchor}))["totalCount"] == 0
    assert (await ok(node, "/api/live/list-live-by-user", {"token": a_token}))["totalCount"] == 1
    await ok(node, "/api/live/set-live-visible", {"token": a_token, "liveId": live_id, "visible": 1})

    # the seed's statuses: stop (2), then pause/continue are 735, start is 731, delete (4) hides it
    await ok(node, "/api/live/stop-live", {"token": a_token, "liveId": live_id})
    again = await ok(node, "/api/live/stop-live", {"token": a_token, "liveId": live_id})  # idempotent
    assert again["live"]["status"] == 2
    assert (await next_msg(channel))["action"] == "stop-live"
    for path in ("pause-live", "continue-live"):
        r = await api(node, f"/api/live/{path}", {"token": a_token, "liveId": live_id})
        assert r["errorcode"] == 735 and r["errormsg"].startswith("直播已结束"), r
    assert await code(node, "/api/live/start-live", {"token": a_token, "liveId": live_id}) == 731
    r = await api(node, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1})
    assert r["errorcode"] == 725 and r["errormsg"].startswith("live is not inactive")
    deleted = await ok(node, "/api/live/delete-live", {"token": a_token, "liveId": live_id})
    assert deleted["live"]["status"] == 4
    for path in ("get-live", "join-live", "share-live", "list-replay-users", "quit-live", "knock-status"):
        assert await code(node, f"/api/live/{path}", {"token": v_token, "liveId": live_id}) == 731, path
    assert (await ok(node, "/api/live/list-live-by-user", {"token": a_token}))["totalCount"] == 0

    # deleting a playing live stops it first
    second = await start_live(node, a_token, "第二场")
    await ok(node, "/api/live/join-live", {"token": v_token, "liveId": second["liveId"]})
    await ok(node, "/api/live/delete-live", {"token": a_token, "liveId": second["liveId"]})
    end = await next_msg(channel, want=lambda m: m.get("action") == "stop-live")
    assert end["liveId"] == second["liveId"] and end["reason"] == "deleted"
    # a new create-live ends the anchor's unclosed one
    third = await start_live(node, a_token, "第三场")
    fourth = (await ok(node, "/api/live/create-live", {"token": a_token, "title": "第四场"}))["live"]
    assert (await ok(node, "/api/live/get-live", {"token": a_token, "liveId": third["liveId"]}))["live"]["status"] == 2
    assert (await ok(node, "/api/live/unclosed-live", {"token": a_token}))["live"]["liveId"] == fourth["liveId"]
    assert await node.operators["channel"].live_status(anchor) == {"isinlive": False, "liveId": fourth["liveId"],
                                                                   "liveStatus": 0}
    await ok(node, "/api/live/start-live", {"token": a_token, "liveId": fourth["liveId"]})
    assert (await node.operators["channel"].live_status(anchor))["isinlive"] is True
    assert await node.operators["channel"].live_status(viewer) == {"isinlive": False}
    await channel.close()


@pytest_twisted.ensureDeferred
async def test_viewers_calls_and_their_refusals(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    a_token, anchor = await user(node, outside, "13400000021", "主播")
    v_token, viewer = await user(node, outside, "13400000022", "观众")
    b_token, blocked = await user(node, outside, "13400000023", "被拉黑")
    live_id = (await start_live(node, a_token))["liveId"]

    for path in ("get-live", "join-live", "quit-live", "list-live-users", "list-replay-users", "share-live",
                 "knock-status", "live-like", "heart-beat"):
        assert await code(node, f"/api/live/{path}", {"token": v_token, "liveId": 424242, "isCreator": 0}) == 731
    # not in the room yet: the seed's 506
    for path, extra in (("get-live", {}), ("list-live-users", {}), ("live-like", {}), ("heart-beat", {"isCreator": 0})):
        r = await api(node, f"/api/live/{path}", {"token": v_token, "liveId": live_id, **extra})
        assert r["errorcode"] == 506 and r["errormsg"].startswith("您不在该队伍"), (path, r)
    r = await api(node, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 1})
    assert r["errorcode"] == 711
    assert (await ok(node, "/api/live/share-live", {"token": v_token, "liveId": live_id}))["share"]["wechat"]["url"]

    # blocked by the anchor: 737
    await ok(node, "/api/user/block-user", {"token": a_token, "userId": blocked})
    r = await api(node, "/api/live/join-live", {"token": b_token, "liveId": live_id})
    assert r["errorcode"] == 737 and r["errormsg"].startswith("无法观看该用户直播")

    await ok(node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    beat = await ok(node, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 0})
    assert beat["nextTimeout"] == 15 and beat["liveId"] == live_id
    assert (await ok(node, "/api/live/heart-beat", {"token": a_token, "liveId": live_id, "isCreator": 1}))[
        "nextTimeout"] == 15
    assert (await ok(node, "/api/live/get-live", {"token": v_token, "liveId": live_id}))["live"]["onlineUsers"] == 1
    await ok(node, "/api/live/quit-live", {"token": v_token, "liveId": live_id})
    users = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id})
    assert users["users"] == [] and users["totalCount"] == 1  # gone after quit-live
    assert await code(node, "/api/live/heart-beat", {"token": v_token, "liveId": live_id, "isCreator": 0}) == 506
    assert await code(node, "/api/live/list-live-by-user", {"token": v_token, "userId": 99999999}) == 710


@pytest_twisted.ensureDeferred
async def test_list_live_users_pages_by_join_time(nodes, outside):
    from twisted.internet import task

    clock = task.Clock()
    clock.advance(1_700_000_000)
    node = await nodes.start("a", live_extra(outside), clock=clock)
    a_token, anchor = await user(node, outside, "13400000031", "主播")
    live_id = (await start_live(node, a_token))["liveId"]
    joined = []
    for n in range(25):
        token, uid = await user(node, outside, f"134000001{n:02d}", f"观众{n}")
        clock.advance(1)
        await ok(node, "/api/live/join-live", {"token": token, "liveId": live_id})
        joined.append(int(uid))
    first = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id})
    assert first["totalCount"] == 26 and first["roomSeatCount"] == 0 and first["roomLockedCount"] == 0
    assert [u["id"] for u in first["users"]] == joined[::-1][:20]  # newest first, 20 a page
    older = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id,
                                                         "lastJoinTime": first["users"][-1]["joinTime"],
                                                         "direction": 1})
    assert [u["id"] for u in older["users"]] == joined[::-1][20:]
    newer = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id,
                                                         "lastJoinTime": first["users"][2]["joinTime"],
                                                         "direction": 0})
    assert [u["id"] for u in newer["users"]] == joined[::-1][:2]
    by_ms = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id,
                                                         "lastJoinTime": first["users"][19]["joinTimeMs"],
                                                         "direction": 1})
    assert by_ms["users"] == older["users"]


@pytest_twisted.ensureDeferred
async def test_follow_lists_show_followed_anchors_lives_and_replays(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    social = node.operators["channel"]
    a_token, anchor = await user(node, outside, "13400000041", "主播")
    s_token, stranger = await user(node, outside, "13400000042", "别人")
    f_token, fan = await user(node, outside, "13400000043", "粉丝")
    await social.follows.follow(fan, anchor)
    o_token, offline_fan = await user(node, outside, "13400000044", "不在线的粉丝")
    await social.follows.follow(offline_fan, anchor)
    await ok(node, "/api/user/push-device-info", {"token": o_token, "uuid": "dev-44", "apnsType": "getui",
                                                  "apnsToken": "cid-44", "deveiceType": "android"})
    fan_channel = await open_channel(node, f_token)
    before = len(outside.pushes)
    first = await start_live(node, a_token, "一")
    # followers hear of it: the connected one on the channel, the one connected nowhere by a push
    notice = await next_msg(fan_channel, want=lambda m: m.get("action") == "start-live-notify")
    assert notice["liveId"] == first["liveId"] and notice["text"] == "您关注的主播开播了"
    assert notice["getuiAction"] == "live" and notice["fromUserId"] == int(anchor)
    pushed = (await outside.wait_for("push", before + 1))[-1]
    assert pushed["action"] == "live" and pushed["link"] == f"wmlives_heihei://live?id={first['liveId']}"
    assert pushed["clientid"] == "cid-44" and pushed["text"] == "您关注的主播开播了"
    assert len(outside.pushes) == before + 1  # not to the connected follower
    await fan_channel.close()
    await start_live(node, s_token, "别人的")
    follow = await ok(node, "/api/live/list-live-by-follow", {"token": f_token})
    assert [x["liveId"] for x in follow["lives"]] == [first["liveId"]] and follow["lookbacks"] == []
    assert follow["lives"][0]["isFollowed"] is True and follow["expireTime"] == 60
    assert "roomUserCount" in follow["lives"][0] and follow["lives"][0]["roomNowUserCount"] == 1
    await ok(node, "/api/live/stop-live", {"token": a_token, "liveId": first["liveId"]})
    follow = await ok(node, "/api/live/list-live-by-follow", {"token": f_token})
    assert follow["lives"] == [] and [x["liveId"] for x in follow["lookbacks"]] == [first["liveId"]]
    by_user = await ok(node, "/api/live/list-live-by-user", {"token": f_token, "userId": anchor})
    assert by_user["isFollowed"] is True and by_user["expireTime"] == 120 and by_user["totalCount"] == 1
