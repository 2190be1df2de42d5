"""Muting, kicking and room managers' rights; seats, knocks and invitations; system notices."""

from __future__ import annotations

import pytest_twisted

from tests.heihei.helpers import api, ok, open_channel
from tests.heihei.livehelpers import live_extra, next_msg, start_live, user


@pytest_twisted.ensureDeferred
async def test_mute_kick_and_manager_rights(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    a_token, anchor = await user(node, outside, "13500000001", "主播")
    m_token, manager = await user(node, outside, "13500000002", "房管")
    v_token, viewer = await user(node, outside, "13500000003", "观众")
    w_token, other = await user(node, outside, "13500000004", "另一个")
    live_id = (await start_live(node, a_token))["liveId"]
    for token in (m_token, v_token, w_token):
        await ok(node, "/api/live/join-live", {"token": token, "liveId": live_id})
    watcher = await open_channel(node, w_token)

    # only the anchor and their managers moderate
    for path in ("shutupuser", "shutupopen", "kick-out-user", "systemnotify"):
        r = await api(node, f"/api/live/{path}", {"token": v_token, "liveId": live_id, "userId": other, "text": "x"})
        assert r["errorcode"] == 711, (path, r)
    assert (await api(node, "/api/live/livemgr", {"token": a_token, "userId": anchor}))["errorcode"] == 700
    assert (await api(node, "/api/live/livemgr", {"token": a_token, "userId": 987654}))["errorcode"] == 710
    await ok(node, "/api/live/livemgr", {"token": a_token, "userId": manager, "liveId": live_id})
    managers = await ok(node, "/api/live/getmgruser", {"token": v_token, "liveId": live_id})
    assert [u["id"] for u in managers["users"]] == [int(manager)] and managers["users"][0]["isMgr"] is True
    assert (await ok(node, "/api/live/getmgruser", {"token": a_token}))["users"][0]["id"] == int(manager)

    # a manager mutes: the room hears it, the muted user's room text is 722, isshutup says 1 (2 = not)
    assert (await ok(node, "/api/live/isshutup", {"token": v_token, "liveId": live_id, "userId": viewer}))[
        "isshutup"] == 2
    await ok(node, "/api/live/shutupuser", {"token": m_token, "liveId": live_id, "userId": viewer})
    muted = await next_msg(watcher)
    assert muted["action"] == "shutup-user" and muted["userId"] == int(viewer) and muted["roomId"] == live_id
    r = await api(node, "/api/msg/send-msg", {"token": v_token, "text": "我被禁言了吗", "roomId": live_id})
    assert r["errorcode"] == 722 and r["errormsg"].startswith("您已被禁言")
    assert (await ok(node, "/api/live/isshutup", {"token": a_token, "liveId": live_id, "userId": viewer}))[
        "isshutup"] == 1
    card = await ok(node, "/api/live/getuser", {"token": a_token, "liveId": live_id, "userId": viewer})
    assert card["isshutup"] == 1 and card["isMgr"] is False and card["inRoom"] is True and card["canManage"]
    assert card["user"]["displayName"] == "观众"
    await ok(node, "/api/live/live-like", {"token": v_token, "liveId": live_id})  # a muted user may still like
    assert (await next_msg(watcher))["msgType"] == "like"
    await ok(node, "/api/live/shutupopen", {"token": a_token, "liveId": live_id, "userId": viewer})
    assert (await next_msg(watcher))["action"] == "shutup-open-user"
    await ok(node, "/api/msg/send-msg", {"token": v_token, "text": "我又能说话了", "roomId": live_id})
    assert (await next_msg(watcher))["text"] == "我又能说话了"

    # a manager touches neither the anchor nor another manager; the anchor may
    for target in (anchor, manager):
        r = await api(node, "/api/live/shutupuser", {"token": m_token, "liveId": live_id, "userId": target})
        assert r["errorcode"] == 711, r
    assert (await api(node, "/api/live/kick-out-user", {"token": a_token, "liveId": live_id, "userId": anchor}))[
        "errorcode"] == 711

    # kicked: the user's connections get quit-live, the room no longer holds them, they cannot come back
    kicked_channel = await open_channel(node, v_token)
    await ok(node, "/api/live/kick-out-user", {"token": m_token, "liveId": live_id, "userId": viewer})
    told = await next_msg(kicked_channel)
    assert told == {"msgType": "action", "action": "quit-live", "comment": "踢出房间动作消息", "liveId": live_id}
    users = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id})
    assert int(viewer) not in [u["id"] for u in users["users"]]
    r = await api(node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    assert r["errorcode"] == 737
    await ok(node, "/api/live/systemnotify", {"token": a_token, "liveId": live_id, "text": "欢迎大家"})
    notice = await next_msg(watcher)
    assert notice["msgType"] == "system" and notice["text"] == "欢迎大家"
    await kicked_channel.no_message(0.3)  # out of the room: not even the system notice

    # managers are the anchor's, across lives; removing one ends their rights
    await ok(node, "/api/live/livemgr", {"token": a_token, "userId": manager, "type": 0})
    assert (await api(node, "/api/live/shutupuser", {"token": m_token, "liveId": live_id, "userId": other}))[
        "errorcode"] == 711
    await watcher.close()
    await kicked_channel.close()


@pytest_twisted.ensureDeferred
async def test_seats_knocks_and_invitations(nodes, outside):
    node = await nodes.start("a", live_extra(outside, lives={"seat_count": 4, "min_open_seats": 2,
                                                              "knock_interval_s": 60.0}))
    a_token, anchor = await user(node, outside, "13500000011", "队长")
    tokens = [await user(node, outside, f"1350000002{n}", f"队员{n}") for n in range(4)]
    live_id = (await start_live(node, a_token))["liveId"]
    anchor_channel = await open_channel(node, a_token)

    status = await ok(node, "/api/live/knock-status", {"token": tokens[0][0], "liveId": live_id})
    assert status == {"errorcode": 0, "errormsg": "success", "needKnock": False, "roomUserCount": 4,
                      "roomNowUserCount": 1, "liveStatus": 1}
    # 4 seats, the anchor takes one; at least 2 stay open: two locks, not three
    r = await api(node, "/api/live/lock-live-seat", {"token": tokens[0][0], "liveId": live_id, "unlock": 0})
    assert r["errorcode"] == 711
    await ok(node, "/api/live/lock-live-seat", {"token": a_token, "liveId": live_id, "unlock": 0})
    await ok(node, "/api/live/lock-live-seat", {"token": a_token, "liveId": live_id, "unlock": "false"})
    r = await api(node, "/api/live/lock-live-seat", {"token": a_token, "liveId": live_id, "unlock": 0})
    assert r["errorcode"] == 502 and r["errormsg"].startswith("请至少保留2个座位")
    # one unlocked again: 3 open seats with the anchor's, so two viewers fill the room
    await ok(node, "/api/live/lock-live-seat", {"token": a_token, "liveId": live_id, "unlock": "true"})
    for token, _ in tokens[:2]:
        await ok(node, "/api/live/join-live", {"token": token, "liveId": live_id})
    status = await ok(node, "/api/live/knock-status", {"token": tokens[2][0], "liveId": live_id})
    assert status["needKnock"] is True and status["roomUserCount"] == 3 and status["roomNowUserCount"] == 3
    users = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id})
    assert users["roomSeatCount"] == 4 and users["roomLockedCount"] == 1
    r = await api(node, "/api/live/join-live", {"token": tokens[2][0], "liveId": live_id})
    assert r["errorcode"] == 505 and r["errormsg"].startswith("没座位了，敲门试试？")

    # knock: the anchor hears it; again at once is 504
    await ok(node, "/api/live/knock-live-room", {"token": tokens[2][0], "liveId": live_id})
    knock = await next_msg(anchor_channel, want=lambda m: m.get("action") == "knock-live-room")
    assert knock["fromUserId"] == int(tokens[2][1]) and knock["liveId"] == live_id
    r = await api(node, "/api/live/knock-live-room", {"token": tokens[2][0], "liveId": live_id})
    assert r["errorcode"] == 504 and r["errormsg"].startswith("刚敲过门啦")
    assert (await api(node, "/api/live/knock-live-room", {"token": a_token, "liveId": live_id}))["errorcode"] == 711

    # invite: the knocker is on the list; the invitation's liveKey passes the seat limit
    listed = await ok(node, "/api/live/invite-user-list", {"token": a_token, "liveId": live_id})
    assert listed["users"][0]["id"] == int(tokens[2][1]) and listed["users"][0]["knocked"] is True
    invited_channel = await open_channel(node, tokens[2][0])
    await ok(node, "/api/live/invite-user", {"token": a_token, "liveId": live_id, "userId": tokens[2][1]})
    invite = await next_msg(invited_channel)
    assert invite["action"] == "live-invite" and invite["liveId"] == live_id and invite["fromUserName"] == "队长"
    assert invite["link"] == f"wmlives_heihei://live?id={live_id}&liveKey={invite['liveKey']}"
    r = await api(node, "/api/live/join-live", {"token": tokens[3][0], "liveId": live_id, "liveKey": invite["liveKey"]})
    assert r["errorcode"] == 700  # someone else's invitation
    joined = await ok(node, "/api/live/join-live", {"token": tokens[2][0], "liveId": live_id,
                                                     "liveKey": invite["liveKey"]})
    assert joined["live"]["onlineUsers"] == 3
    # unlocking opens a seat again
    await ok(node, "/api/live/lock-live-seat", {"token": a_token, "liveId": live_id, "unlock": 1})
    assert (await ok(node, "/api/live/knock-status", {"token": a_token, "liveId": live_id}))["roomUserCount"] == 4
    # an invited user who is connected nowhere gets a push with the invitation's link
    before = len(outside.pushes)
    await ok(node, "/api/user/push-device-info", {"token": tokens[3][0], "uuid": "dev-3", "apnsType": "getui",
                                                  "apnsToken": "cid-3", "deveiceType": "android"})
    await ok(node, "/api/live/invite-user", {"token": a_token, "liveId": live_id, "userId": tokens[3][1]})
    pushed = (await outside.wait_for("push", before + 1))[-1]
    assert pushed["action"] == "live-invite" and pushed["link"].startswith(f"wmlives_heihei://live?id={live_id}")
    await anchor_channel.close()
    await invited_channel.close()
