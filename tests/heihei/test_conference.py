"""Co-hosting a live (seed 001's 连麦) end to end: requests, invitations, the RTC room token, conference-status
to the room, refusals, the join timeout and a co-host who goes away; two nodes on one task.Clock."""

from __future__ import annotations

import pytest_twisted

from tests.heihei.chathelpers import QINIU, START_S, action, advance, chat_extra, chats_of, clock_at_start, code
from tests.heihei.helpers import ok, open_channel
from tests.heihei.livehelpers import live_extra, start_live, user


def conf_extra(outside, **kw):
    return chat_extra(outside, media=live_extra(outside)["media"], **kw)


async def live_with_viewers(nodes, outside, phones=("13800000001", "13800000002", "13800000003")):
    clock = clock_at_start()
    a = await nodes.start("a", conf_extra(outside), clock=clock)
    b = await nodes.start("b", conf_extra(outside), clock=clock)
    ta, anchor = await user(a, outside, phones[0], "主播")
    live_id = (await start_live(a, ta))["liveId"]
    viewers = []
    for phone, node in zip(phones[1:], (b, a)):
        t, u = await user(node, outside, phone, f"观众{phone[-1]}")
        await ok(node, "/api/live/join-live", {"token": t, "liveId": live_id})
        viewers.append((node, t, u))
    return clock, a, b, (ta, anchor), live_id, viewers


async def cohosting(node, uid):
    return await chats_of(node).conferences.cohosting(uid)


@pytest_twisted.ensureDeferred
async def test_a_viewer_asks_the_anchor_takes_it_both_join_and_the_room_sees_it(nodes, outside):
    clock, a, b, (ta, anchor), live_id, viewers = await live_with_viewers(nodes, outside)
    (vb, tv, uv), (vo, to, uo) = viewers
    ca = await open_channel(a, ta)
    cv = await open_channel(b, tv)
    co = await open_channel(a, to)

    asked = await ok(b, "/api/live/call-request", {"token": tv, "liveId": live_id})
    assert asked["expireTime"] == 30
    request = await action(ca, "conference-request")
    assert request["fromUserId"] == int(uv) and request["liveId"] == live_id and request["expireTime"] == 30
    taken = await ok(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uv})
    assert taken["expireTime"] == 0
    assert (await action(ca, "join-conference"))["liveId"] == live_id
    assert (await action(cv, "join-conference")) == {"msgType": "action", "action": "join-conference",
                                                     "comment": "加入连麦动作消息", "liveId": live_id}
    assert await cohosting(a, uv) == str(live_id)

    joined = await ok(b, "/api/live/join-conference", {"token": tv, "liveId": live_id})
    token = joined["token"]
    assert token["roomName"] == f"live-{live_id}" and token["expireTime"] == START_S + 3600
    import qiniu as qiniu_sdk
    access = {"appId": QINIU["qiniu_app_id"], "roomName": f"live-{live_id}", "userId": uv,
              "expireAt": START_S + 3600, "permission": "user"}
    assert token["roomToken"] == qiniu_sdk.get_room_token(QINIU["qiniu_access_key"], QINIU["qiniu_secret_key"],
                                                          access)
    status = joined["confStatus"]
    assert status["action"] == "conference-status" and status["status"] == 0 and status["fromUserId"] == int(uv)
    assert (await action(co, "conference-status"))["status"] == 0  # the room hears of it
    await ok(a, "/api/live/join-conference", {"token": ta, "liveId": live_id})
    # someone else: 750
    assert await code(a, "/api/live/join-conference", {"token": to, "liveId": live_id}) == 750
    one = await ok(a, "/api/live/conference-success", {"token": ta, "liveId": live_id})
    assert one["confStatus"]["status"] == 0
    both = await ok(b, "/api/live/conference-success", {"token": tv, "liveId": live_id})
    assert both["confStatus"]["status"] == 1
    on = await action(co, "conference-status", timeout=5)
    while on["status"] != 1:
        on = await action(co, "conference-status")
    assert on["fromUserId"] == int(uv) and on["fromUserName"] == "观众2"
    # past the join timeout, a conference that is up stays up
    for _ in range(4):
        await advance(clock, 5)
        await ok(a, "/api/live/heart-beat", {"token": ta, "liveId": live_id, "isCreator": 1})
        await ok(b, "/api/live/heart-beat", {"token": tv, "liveId": live_id, "isCreator": 0})
    assert await cohosting(a, uv) == str(live_id)
    # a viewer who comes in now hears of the conference at once
    tn, un = await user(a, outside, "13800000009", "新来的")
    cn = await open_channel(a, tn)
    await ok(a, "/api/live/join-live", {"token": tn, "liveId": live_id})
    late = await action(cn, "conference-status")
    assert late["status"] == 1 and late["fromUserId"] == int(uv)
    await cn.close()
    # a second one is refused while this one is on; a viewer may still ask (queued)
    assert await code(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uo}) == 739
    assert (await ok(a, "/api/live/call-request", {"token": to, "liveId": live_id}))["expireTime"] == 30
    assert await code(a, "/api/live/accept-conference", {"token": ta, "liveId": live_id, "userId": uo}) == 739

    await ok(b, "/api/live/quit-conference", {"token": tv, "liveId": live_id})
    stop = await action(ca, "stop-conference")
    assert stop["liveId"] == live_id and stop["comment"] == "结束连麦"
    ended = await action(co, "conference-status")
    while ended["status"] != 2:
        ended = await action(co, "conference-status")
    assert await cohosting(a, uv) is None
    assert await code(b, "/api/live/quit-conference", {"token": tv, "liveId": live_id}) == 742
    assert await code(b, "/api/live/join-conference", {"token": tv, "liveId": live_id}) == 750
    for c in (ca, cv, co):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_an_invitation_accepted_late_refused_and_a_muted_viewer(nodes, outside):
    clock, a, b, (ta, anchor), live_id, viewers = await live_with_viewers(nodes, outside)
    (vb, tv, uv), (vo, to, uo) = viewers
    ca = await open_channel(a, ta)
    cv = await open_channel(b, tv)
    co = await open_channel(a, to)
    invited = await ok(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uo})
    assert invited["expireTime"] == 30
    notify = await action(co, "conference-notify")
    assert notify == {"msgType": "action", "action": "conference-notify", "comment": "邀请连麦通知消息",
                      "text": "主播邀你连线", "expireTime": 30, "liveId": live_id}
    await advance(clock, 31, step=5)
    assert await code(a, "/api/live/accept-conference", {"token": to, "liveId": live_id}) == 409
    # invited again, refused: the anchor gets a tip
    await ok(a, "/api/live/heart-beat", {"token": ta, "liveId": live_id, "isCreator": 1})
    for node, t in ((b, tv), (a, to)):
        await ok(node, "/api/live/heart-beat", {"token": t, "liveId": live_id, "isCreator": 0})
    await ok(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uo})
    await ok(a, "/api/live/refuse-conference", {"token": to, "liveId": live_id, "userId": anchor})
    tip = await action(ca, "show-tip")
    assert tip["message"]["type"] == "toast" and "拒绝" in tip["message"]["desc"]
    assert await code(a, "/api/live/accept-conference", {"token": to, "liveId": live_id}) == 409
    # the anchor turns a request down: the viewer gets a tip
    await ok(b, "/api/live/call-request", {"token": tv, "liveId": live_id})
    await ok(a, "/api/live/refuse-conference", {"token": ta, "liveId": live_id, "userId": uv})
    assert (await action(cv, "show-tip"))["message"]["desc"]
    assert await code(a, "/api/live/accept-conference", {"token": ta, "liveId": live_id, "userId": uv}) == 409
    # invited, accepted: on; a second accept is 739
    await ok(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uo})
    accepted = await ok(a, "/api/live/accept-conference", {"token": to, "liveId": live_id})
    assert accepted["expireTime"] == 6
    assert await code(a, "/api/live/accept-conference", {"token": to, "liveId": live_id}) == 739
    assert await cohosting(a, uo) == str(live_id)
    # a muted viewer may not ask (722)
    await ok(a, "/api/live/shutupuser", {"token": ta, "liveId": live_id, "userId": uv})
    assert await code(b, "/api/live/call-request", {"token": tv, "liveId": live_id}) == 722
    assert await code(b, "/api/live/call-request", {"token": tv, "liveId": 999999}) == 731
    for c in (ca, cv, co):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_a_conference_not_up_in_6_s_ends_and_a_co_host_who_leaves_ends_it(nodes, outside):
    clock, a, b, (ta, anchor), live_id, viewers = await live_with_viewers(nodes, outside)
    (vb, tv, uv), (vo, to, uo) = viewers
    ca = await open_channel(a, ta)
    cv = await open_channel(b, tv)
    await ok(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uv})
    # invited, the viewer asks too: that is a yes, on at once
    assert (await ok(b, "/api/live/call-request", {"token": tv, "liveId": live_id}))["expireTime"] == 0
    assert (await action(cv, "join-conference"))["liveId"] == live_id
    await ok(b, "/api/live/join-conference", {"token": tv, "liveId": live_id})
    await ok(a, "/api/live/join-conference", {"token": ta, "liveId": live_id})
    await ok(a, "/api/live/conference-success", {"token": ta, "liveId": live_id})
    await advance(clock, 5)
    assert await cohosting(a, uv) == str(live_id)
    await advance(clock, 2)  # 7 s since the last join-conference, the viewer's stream never came up
    assert (await action(ca, "stop-conference"))["liveId"] == live_id
    assert (await action(cv, "stop-conference"))["liveId"] == live_id
    assert await cohosting(a, uv) is None

    # on again, up; then the co-host's app dies (no more heart-beats): the conference ends with it
    await ok(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uv})
    await ok(b, "/api/live/accept-conference", {"token": tv, "liveId": live_id})
    for node, t in ((a, ta), (b, tv)):
        await ok(node, "/api/live/join-conference", {"token": t, "liveId": live_id})
        await ok(node, "/api/live/conference-success", {"token": t, "liveId": live_id})
    await nodes.stop(b)  # and the node that served the co-host with it
    for _ in range(10):
        await advance(clock, 5)
        await ok(a, "/api/live/heart-beat", {"token": ta, "liveId": live_id, "isCreator": 1})
        await ok(a, "/api/live/heart-beat", {"token": to, "liveId": live_id, "isCreator": 0})
    assert await cohosting(a, uv) is None
    assert (await action(ca, "stop-conference"))["liveId"] == live_id
    await ca.close()
    await cv.close()


@pytest_twisted.ensureDeferred
async def test_the_user_card_shows_the_chat_and_co_hosting_button(nodes, outside):
    clock, a, b, (ta, anchor), live_id, viewers = await live_with_viewers(nodes, outside)
    (vb, tv, uv), (vo, to, uo) = viewers

    async def card(token, uid, live=None):
        params = {"token": token, "uid": uid, **({"liveId": live} if live is not None else {})}
        return (await ok(a, "/api/user/info", params)).get("userStatus")

    assert await card(ta, uv, live_id) == {"confStatus": 1}
    await ok(b, "/api/live/call-request", {"token": tv, "liveId": live_id})
    assert await card(ta, uv, live_id) == {"confStatus": 4, "expireTime": 30}
    await ok(a, "/api/live/call-request", {"token": ta, "liveId": live_id, "userId": uo})
    await advance(clock, 10)
    assert await card(ta, uo, live_id) == {"confStatus": 2, "expireTime": 20}
    await ok(a, "/api/live/accept-conference", {"token": ta, "liveId": live_id, "userId": uv})
    assert await card(ta, uv, live_id) == {"confStatus": 3}
    assert await card(ta, uo, live_id) == {"confStatus": 2, "expireTime": 20}
    # outside the live (or not its anchor): the anchor is live, a user in a chat is busy, others: nothing
    assert await card(to, anchor) == {"type": 5, "confStatus": 5, "jump": f"wmlives_heihei://live?id={live_id}"}
    assert await card(to, uv, live_id) is None
    await ok(a, "/api/chat/due-chat", {"token": to, "userId": uv})
    assert await card(ta, uv) == {"type": 6, "confStatus": 6}
