"""The 1:1 video chats (seed 001's 匹配, 约聊, 对聊) end to end: two nodes on one Redis, real HTTP and push
channel clients, the nodes' timers on one task.Clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest_twisted
from twisted.internet import task

from tests.heihei.chathelpers import (QINIU, START_S, action, advance, chat_extra, chats_of, clock_at_start, code,
                                      settle, state)
from tests.heihei.helpers import ok, open_channel
from tests.heihei.livehelpers import user


async def two_nodes(nodes, outside, clock=None, **extra):
    clock = clock or clock_at_start()
    a = await nodes.start("a", chat_extra(outside, **extra), clock=clock)
    b = await nodes.start("b", chat_extra(outside, **extra), clock=clock)
    return clock, a, b


@pytest_twisted.ensureDeferred
async def test_a_match_across_nodes_then_join_beat_topic_and_stop(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000001", "甲")
    tb, ub = await user(b, outside, "13700000002", "乙")
    ca = await open_channel(a, ta)
    cb = await open_channel(b, tb)

    first = await ok(a, "/api/chat/match-chat", {"token": ta})
    assert first["expireTime"] == 15
    assert first["tips"] and all(isinstance(t, str) for t in first["tips"])
    assert await state(a, ua) == "m"
    await ok(b, "/api/chat/match-chat", {"token": tb})
    ja = await action(ca, "join-chat")
    jb = await action(cb, "join-chat")
    chat_id = ja["chatId"]
    assert ja["chatid"] == chat_id == jb["chatId"] == jb["chatid"] and isinstance(chat_id, int)
    assert ja["msgType"] == "action" and ja["comment"] == "加入对聊" and isinstance(ja["msgId"], int)
    assert await state(a, ua) == await state(b, ub) == f"c|{chat_id}"

    joined = (await ok(a, "/api/chat/join-chat", {"token": ta, "chatId": chat_id}))["chat"]
    assert joined["chatId"] == joined["roomId"] == chat_id
    assert joined["status"] == 0  # the other has not joined yet
    assert sorted(u["id"] for u in joined["users"]) == sorted([int(ua), int(ub)])
    assert joined["user"] == joined["users"] and joined["initTopic"]
    assert joined["createTime"] == "2023-11-15 06:13:20"  # START_S at UTC+8
    qiniu = joined["qiniu"]
    assert qiniu["roomName"] == f"chat-{chat_id}"
    # the room token is what Qiniu's own SDK signs for that room, user and expiry
    import qiniu as qiniu_sdk
    access = {"appId": QINIU["qiniu_app_id"], "roomName": qiniu["roomName"], "userId": ua.rjust(3, "0"),
              "expireAt": START_S + 3600, "permission": "user"}
    assert qiniu["roomToken"] == qiniu_sdk.get_room_token(QINIU["qiniu_access_key"], QINIU["qiniu_secret_key"],
                                                          access)
    status = await action(cb, "chat-user-status")
    assert status["chatId"] == chat_id and status["status"] == 1
    assert status["user"] == status["users"] and {u["id"] for u in status["users"]} == {int(ua), int(ub)}
    assert {u["id"]: u["status"] for u in status["users"]} == {int(ua): 1, int(ub): 0}

    joined_b = (await ok(b, "/api/chat/join-chat", {"token": tb, "chatId": chat_id}))["chat"]
    assert joined_b["status"] == 1
    got = (await ok(a, "/api/chat/get-chat", {"token": ta, "chatId": chat_id}))["chat"]
    assert got["status"] == 1 and got["createrId"] == int(ua) and got["title"] == f"{ua},{ub}"

    assert await chats_of(a).chats.partner_in_open_chat(ua, str(chat_id)) == ub  # a chat gift's receiver
    beat = await ok(b, "/api/chat/heart-beat", {"token": tb, "chatId": chat_id})
    assert beat["nextTimeout"] == 5

    await ok(a, "/api/chat/change-topic", {"token": ta, "chatId": chat_id})
    ta_topic = await action(ca, "chat-topic")
    tb_topic = await action(cb, "chat-topic")
    assert ta_topic["text"] == tb_topic["text"] != joined["initTopic"] and ta_topic["chatId"] == chat_id
    assert ta_topic["comment"] == "约聊话题消息"

    # someone else's chat: 732
    tc, uc = await user(a, outside, "13700000003", "丙")
    for path in ("join-chat", "get-chat", "heart-beat", "change-topic", "stop-chat", "pause-chat"):
        assert await code(a, f"/api/chat/{path}", {"token": tc, "chatId": chat_id}) == 732, path

    await ok(b, "/api/chat/stop-chat", {"token": tb, "chatId": chat_id})
    left = await action(ca, "chat-user-status")
    assert left["status"] == 2 and {u["id"]: u["status"] for u in left["users"]}[int(ub)] == 2
    assert await state(a, ua) is None and await state(b, ub) is None
    assert await code(a, "/api/chat/heart-beat", {"token": ta, "chatId": chat_id}) == 732
    assert await code(a, "/api/chat/stop-chat", {"token": ta, "chatId": chat_id}) == 732
    ended = (await ok(a, "/api/chat/get-chat", {"token": ta, "chatId": chat_id}))["chat"]
    assert ended["status"] == 2
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_matching_is_never_with_self_the_last_partner_or_someone_blocked(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000011", "甲")
    tb, ub = await user(b, outside, "13700000012", "乙")
    tc, uc = await user(a, outside, "13700000013", "丙")
    td, ud = await user(b, outside, "13700000014", "丁")

    await ok(a, "/api/chat/match-chat", {"token": ta})
    await ok(a, "/api/chat/match-chat", {"token": ta})  # again: still waiting, not matched with itself
    assert await state(a, ua) == "m"
    await ok(b, "/api/chat/match-chat", {"token": tb})
    chat_id = (await state(a, ua)).split("|")[1]
    assert await state(b, ub) == f"c|{chat_id}"
    await ok(a, "/api/chat/stop-chat", {"token": ta, "chatId": chat_id})

    # the two meet again in the queue: not twice in a row
    await ok(a, "/api/chat/match-chat", {"token": ta})
    await ok(b, "/api/chat/match-chat", {"token": tb})
    assert await state(a, ua) == "m" and await state(b, ub) == "m"
    # a newcomer takes the longest-waiting one (A)
    await ok(a, "/api/chat/match-chat", {"token": tc})
    assert (await state(a, uc)) == (await state(a, ua)) != "m"
    # D blocked B: D waits rather than meet B
    await ok(a, "/api/user/block-user", {"token": td, "userId": ub})
    await ok(b, "/api/chat/match-chat", {"token": td})
    assert await state(b, ud) == "m" and await state(b, ub) == "m"
    await ok(b, "/api/chat/stop-match-chat", {"token": td})
    await ok(b, "/api/chat/stop-match-chat", {"token": tb})
    assert await state(b, ud) is None and await state(b, ub) is None
    # in a chat: match-chat is refused (742), stop-match-chat changes nothing
    assert await code(a, "/api/chat/match-chat", {"token": ta}) == 742
    await ok(a, "/api/chat/stop-match-chat", {"token": ta})
    assert (await state(a, ua)).startswith("c|")


@pytest_twisted.ensureDeferred
async def test_an_unmatched_user_leaves_the_queue_when_the_match_expires(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000021", "甲")
    tb, ub = await user(b, outside, "13700000022", "乙")
    await ok(a, "/api/chat/match-chat", {"token": ta})
    await advance(clock, 14)
    assert await state(a, ua) == "m"
    await advance(clock, 2)
    assert await state(a, ua) is None
    await ok(b, "/api/chat/match-chat", {"token": tb})  # A is gone: B waits
    assert await state(b, ub) == "m"


@pytest_twisted.ensureDeferred
async def test_an_invitation_notified_accepted_and_joined(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000031", "邀请者")
    tb, ub = await user(b, outside, "13700000032", "受邀者")
    cb = await open_channel(b, tb)
    ca = await open_channel(a, ta)
    due = await ok(a, "/api/chat/due-chat", {"token": ta, "userId": ub})
    chat_id = due["chatId"]
    assert due["expireTime"] == 15 and isinstance(chat_id, int)
    notice = await action(cb, "due-chat-notify")
    assert notice["chatId"] == chat_id and notice["fromUserId"] == int(ua) and notice["fromUserName"] == "邀请者"
    assert notice["expireTime"] == 15 and notice["type"] == 0 and notice["comment"] == "约你私聊"
    assert notice["gender"] == "Female" and notice["birthDay"] == "1990-01-02"
    # both are busy now: a third user gets 739 inviting either
    tc, uc = await user(a, outside, "13700000033", "第三者")
    assert await code(a, "/api/chat/due-chat", {"token": tc, "userId": ub}) == 739
    assert await code(a, "/api/chat/due-chat", {"token": tc, "userId": ua}) == 739
    # someone else's invitation cannot be cancelled (711), nor accepted
    assert await code(a, "/api/chat/cancel-due-chat", {"token": tb, "chatId": chat_id}) == 711
    assert await code(a, "/api/chat/accept-chat", {"token": tc, "chatId": chat_id, "userId": ua, "type": 0}) == 732
    accepted = await ok(b, "/api/chat/accept-chat", {"token": tb, "chatId": chat_id, "userId": ua, "type": 0})
    assert accepted["expireTime"] == 20
    assert (await action(ca, "join-chat"))["chatid"] == chat_id
    assert (await action(cb, "join-chat"))["chatid"] == chat_id
    joined = (await ok(b, "/api/chat/join-chat", {"token": tb, "chatId": chat_id}))["chat"]
    assert {u["id"] for u in joined["users"]} == {int(ua), int(ub)}
    # an accepted invitation cannot be cancelled any more
    assert await code(a, "/api/chat/cancel-due-chat", {"token": ta, "chatId": chat_id}) == 732
    # message-list: the answered invitation shows as a call, on both sides
    listed = (await ok(b, "/api/msg/message-list", {"token": tb}))["messages"]
    assert [(m["fromUserId"], m["data"]["type"]) for m in listed] == [(int(ua), "call")]
    listed = (await ok(a, "/api/msg/message-list", {"token": ta}))["messages"]
    assert [(m["fromUserId"], m["data"]["type"]) for m in listed] == [(int(ub), "call")]
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_a_missed_invitation_expires_is_listed_and_pushed_to_an_offline_receiver(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000041", "邀请者")
    tb, ub = await user(b, outside, "13700000042", "受邀者")
    await ok(b, "/api/user/push-device-info", {"token": tb, "uuid": "dev-b", "apnsType": "getui",
                                               "apnsToken": "cid-b", "deviceType": "android"})
    chat_id = (await ok(a, "/api/chat/due-chat", {"token": ta, "userId": ub}))["chatId"]
    pushes = await outside.wait_for("push", 1)
    push = pushes[-1]
    assert push["action"] == "duechat" and push["clientid"] == "cid-b"
    assert push["link"].startswith(f"wmlives_heihei://acceptchat?chatId={chat_id}&type=0&userId={ua}&")
    assert "userName=" in push["link"] and "&gender=1" in push["link"]  # the client's int gender (Female)
    await advance(clock, 16)
    assert await state(a, ua) is None and await state(b, ub) is None
    assert await code(b, "/api/chat/accept-chat", {"token": tb, "chatId": chat_id, "userId": ua}) == 732
    listed = (await ok(b, "/api/msg/message-list", {"token": tb}))["messages"]
    assert [(m["fromUserId"], m["data"]["type"], m["data"]["count"]) for m in listed] == [(int(ua), "calling", 1)]
    assert listed[0]["link"] == f"wmlives_heihei://duechat?uid={ua}"
    listed = (await ok(a, "/api/msg/message-list", {"token": ta}))["messages"]
    assert [(m["fromUserId"], m["data"]["type"]) for m in listed] == [(int(ub), "post")]
    # history-msg keeps the seed's due-chat-notify
    history = await ok(b, "/api/msg/history-msg", {"token": tb})
    kept = [m["msg"] for m in history["unReadMsg"]]
    assert kept and kept[0]["action"] == "due-chat-notify" and kept[0]["needstore"] is True
    assert kept[0]["getuiAction"] == "duechat"


@pytest_twisted.ensureDeferred
async def test_cancel_and_mutual_invitations(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000051", "甲")
    tb, ub = await user(b, outside, "13700000052", "乙")
    cb = await open_channel(b, tb)
    ca = await open_channel(a, ta)
    chat_id = (await ok(a, "/api/chat/due-chat", {"token": ta, "userId": ub}))["chatId"]
    await ok(a, "/api/chat/cancel-due-chat", {"token": ta, "chatId": chat_id}, how="query")
    cancel = await action(cb, "cancel-due-chat")
    assert cancel["chatId"] == chat_id and cancel["fromUserId"] == int(ua) and cancel["fromUserName"] == "甲"
    assert cancel["comment"] == cancel["common"] == "对方取消约聊"
    assert await state(a, ua) is None and await state(b, ub) is None
    assert await code(a, "/api/chat/cancel-due-chat", {"token": ta, "chatId": chat_id}) == 732
    assert await code(a, "/api/chat/cancel-due-chat", {"token": ta, "chatId": 12345}) == 732

    # A invites B, B invites A back: they are in the chat at once
    first = await ok(a, "/api/chat/due-chat", {"token": ta, "userId": ub})
    back = await ok(b, "/api/chat/due-chat", {"token": tb, "userId": ua})
    assert back["chatId"] == first["chatId"]
    assert (await action(ca, "join-chat"))["chatid"] == first["chatId"]
    assert (await action(cb, "join-chat"))["chatid"] == first["chatId"]
    assert await state(a, ua) == await state(b, ub) == f"c|{first['chatId']}"
    # nobody joins: the join timeout frees both
    await advance(clock, 21)
    assert await state(a, ua) is None and await state(b, ub) is None
    await ca.close()
    await cb.close()


@pytest_twisted.ensureDeferred
async def test_due_chat_refusals(nodes, outside):
    from tests.heihei.livehelpers import live_extra, start_live
    clock = clock_at_start()
    a = await nodes.start("a", chat_extra(outside, **{k: v for k, v in live_extra(outside).items()
                                                       if k == "media"}), clock=clock)
    ta, ua = await user(a, outside, "13700000061", "甲")
    tb, ub = await user(a, outside, "13700000062", "主播")
    tc, uc = await user(a, outside, "13700000063", "拉黑")
    assert await code(a, "/api/chat/due-chat", {"token": ta, "userId": ua}) == 700
    assert await code(a, "/api/chat/due-chat", {"token": ta, "userId": 987654}) == 710
    assert await code(a, "/api/chat/due-chat", {"token": ta}) == 700
    assert await code(a, "/api/chat/due-chat", {"token": ta, "userId": "x"}) == 700
    assert await code(a, "/api/chat/due-chat", {"userId": ub}) == 720
    await start_live(a, tb)
    assert await code(a, "/api/chat/due-chat", {"token": ta, "userId": ub}) == 738
    await ok(a, "/api/user/block-user", {"token": tc, "userId": ua})
    assert await code(a, "/api/chat/due-chat", {"token": ta, "userId": uc}) == 711
    assert await state(a, ua) is None
    # inviting over and over: a burst, then 400 (each invitation is stored and pushed)
    te, ue = await user(a, outside, "13700000065", "戊")
    for _ in range(5):
        due = await ok(a, "/api/chat/due-chat", {"token": te, "userId": uc})
        await ok(a, "/api/chat/cancel-due-chat", {"token": te, "chatId": due["chatId"]})
    assert await code(a, "/api/chat/due-chat", {"token": te, "userId": uc}) == 400
    await advance(clock, 5)
    due = await ok(a, "/api/chat/due-chat", {"token": te, "userId": uc})
    await ok(a, "/api/chat/cancel-due-chat", {"token": te, "chatId": due["chatId"]})
    # matching, then inviting: 742 (one place at a time)
    await ok(a, "/api/chat/match-chat", {"token": ta})
    td, ud = await user(a, outside, "13700000064", "丁")
    assert await code(a, "/api/chat/due-chat", {"token": ta, "userId": ud}) == 742


@pytest_twisted.ensureDeferred
async def test_heart_beats_pause_and_continue(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000071", "甲")
    tb, ub = await user(b, outside, "13700000072", "乙")
    ca = await open_channel(a, ta)
    await ok(a, "/api/chat/match-chat", {"token": ta})
    await ok(b, "/api/chat/match-chat", {"token": tb})
    chat_id = (await action(ca, "join-chat"))["chatId"]
    await ok(a, "/api/chat/join-chat", {"token": ta, "chatId": chat_id})
    await ok(b, "/api/chat/join-chat", {"token": tb, "chatId": chat_id})
    await ok(b, "/api/chat/pause-chat", {"token": tb, "chatId": chat_id})
    paused = await action(ca, "pause-chat")
    assert paused["chatId"] == chat_id and paused["text"] == "对方离开一下"
    # B is away 60 s (under pause_max_s 120) while A keeps beating: the chat stays
    for _ in range(12):
        await advance(clock, 5)
        await ok(a, "/api/chat/heart-beat", {"token": ta, "chatId": chat_id})
    assert (await state(a, ua)) == f"c|{chat_id}"
    await ok(b, "/api/chat/continue-chat", {"token": tb, "chatId": chat_id})
    goon = await action(ca, "goon-chat")
    assert goon["chatId"] == chat_id and goon["text"] == "对方回来了"
    # back, B must beat again: 15 s of silence ends the chat for both
    for _ in range(2):
        await advance(clock, 5)
        await ok(a, "/api/chat/heart-beat", {"token": ta, "chatId": chat_id})
    assert (await state(a, ua)) == f"c|{chat_id}"
    await advance(clock, 5)
    gone = await action(ca, "chat-user-status")
    assert gone["status"] == 3 and {u["id"]: u["status"] for u in gone["users"]}[int(ub)] == 3
    assert await state(a, ua) is None and await state(b, ub) is None
    assert (await ok(a, "/api/chat/get-chat", {"token": ta, "chatId": chat_id}))["chat"]["status"] == 3
    await ca.close()


@pytest_twisted.ensureDeferred
async def test_a_node_stopped_mid_countdown_leaves_nobody_busy(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000081", "甲")
    tb, ub = await user(b, outside, "13700000082", "乙")
    tc, uc = await user(a, outside, "13700000083", "丙")
    await ok(a, "/api/chat/due-chat", {"token": ta, "userId": ub})
    await ok(a, "/api/chat/match-chat", {"token": tc})
    await advance(clock, 5)
    await nodes.stop(a)  # the node that armed both countdowns is gone
    await advance(clock, 11)
    assert await state(b, ua) is None and await state(b, ub) is None and await state(b, uc) is None
    # B is free again: inviting A works, not 739
    await ok(b, "/api/chat/due-chat", {"token": tb, "userId": ua})


@pytest_twisted.ensureDeferred
async def test_a_node_killed_between_claim_and_fire_leaves_the_countdown_to_another(nodes, outside):
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000091", "甲")
    await ok(a, "/api/chat/match-chat", {"token": ta})
    await chats_of(a).countdowns.stop()  # A's sweeper is dead (as after a kill -9) ...
    await chats_of(b).countdowns.stop()
    clock.advance(15)
    claimed = await chats_of(a).deadlines.claim()  # ... right after it claimed the due countdown
    assert [m for m, _ in claimed] == [f"match|{ua}"]
    chats_of(b).countdowns.start()
    await advance(clock, 5)
    assert await state(b, ua) == "m"  # leased to the dead node: nobody fires it yet
    await advance(clock, 11, step=1)  # the 10 s lease ends: B fires it, exactly once
    assert await state(b, ua) is None
    assert await chats_of(b).deadlines.due_at(f"match|{ua}") is None


@pytest_twisted.ensureDeferred
async def test_get_user_sig_is_a_trtc_user_sig_tencent_would_issue(nodes, outside, monkeypatch):
    import types

    import TLSSigAPIv2 as tencent_module
    clock = clock_at_start()
    a = await nodes.start("a", chat_extra(outside), clock=clock)
    ta, ua = await user(a, outside, "13700000101", "甲")
    sig = await ok(a, "/api/chat/get-user-sig", {"token": ta})
    assert sig["sdkAppId"] == 1400000000 and sig["userId"] == ua and sig["expireTime"] == 3600
    monkeypatch.setattr(tencent_module, "time", types.SimpleNamespace(time=lambda: START_S))
    tencent = tencent_module.TLSSigAPIv2(1400000000, "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e")
    assert sig["userSig"] == tencent.gen_sig(ua, 3600)
    assert await code(a, "/api/chat/get-user-sig", {"token": ta, "chatId": 42}) == 732
    b = await nodes.start("b", chat_extra(outside, rtc={"trtc_sdk_app_id": 0}), clock=clock)
    assert await code(b, "/api/chat/get-user-sig", {"token": ta}) == 400


@pytest_twisted.ensureDeferred
async def test_join_chat_with_livekit_and_with_the_shipped_clients_pili_token(nodes, outside):
    import time

    from livekit import api as livekit_api
    clock = task.Clock()
    clock.advance(int(time.time()))  # LiveKit's verifier reads the wall clock
    now = int(clock.seconds())
    a = await nodes.start("a", chat_extra(outside, video="livekit"), clock=clock)
    b = await nodes.start("b", chat_extra(outside, video="qiniu-pili"), clock=clock)
    ta, ua = await user(a, outside, "13700000111", "甲")
    tb, ub = await user(b, outside, "13700000112", "乙")
    await ok(a, "/api/chat/match-chat", {"token": ta})
    await ok(b, "/api/chat/match-chat", {"token": tb})
    chat_id = (await state(a, ua)).split("|")[1]
    # LiveKit: the token verifies with LiveKit's own verifier, for this room and user
    joined = (await ok(a, "/api/chat/join-chat", {"token": ta, "chatId": chat_id}))["chat"]
    assert joined["livekit"]["url"] == "wss://sfu.example.com"
    assert joined["qiniu"] == {"roomName": f"chat-{chat_id}", "roomToken": ""}
    claims = livekit_api.TokenVerifier("APIheihei", "livekit-test-secret-0123456789abcdef0123").verify(
        joined["livekit"]["token"])
    assert claims.identity == ua and claims.video.room == f"chat-{chat_id}" and claims.video.room_join
    # Pili (the shipped client's SDK): AK:HMAC-SHA1(SK, data):data, the room access of pili-sdk-python
    pili = (await ok(b, "/api/chat/join-chat", {"token": tb, "chatId": chat_id}))["chat"]["qiniu"]
    ak, sign, data = pili["roomToken"].split(":")
    assert ak == QINIU["qiniu_access_key"]
    expected = base64.urlsafe_b64encode(hmac.new(QINIU["qiniu_secret_key"].encode(), data.encode(),
                                                 hashlib.sha1).digest()).decode()
    assert sign == expected
    access = json.loads(base64.urlsafe_b64decode(data))
    assert access == {"version": "2.0", "room_name": f"chat-{chat_id}", "user_id": ub, "perm": "user",
                      "expire_at": now + 3600}
    await settle()


@pytest_twisted.ensureDeferred
async def test_a_node_killed_right_after_a_script_left_its_countdown_armed(nodes, outside):
    """The scripts arm the countdowns themselves: a node that ran one and died before anything else (no
    Python after it) still leaves the users to be freed by another node."""
    from heihei.heihei import chatstate as S
    clock, a, b = await two_nodes(nodes, outside)
    ta, ua = await user(a, outside, "13700000121", "甲")
    tb, ub = await user(b, outside, "13700000122", "乙")
    tc, uc = await user(b, outside, "13700000123", "丙")
    chats = chats_of(a).chats
    now = chats.now_ms()
    got = await S.INVITE_SCRIPT(chats.store, [S.user_key(ua), S.user_key(ub), S.chat_key("77"), chats.deadlines.key],
                                [ua, ub, "77", now, S.CHAT_PREFIX, now + 15000, now + 20000])
    assert int(got[0]) == 1
    got = await S.MATCH(chats.store, [S.QUEUE, S.user_key(uc), S.chat_key("78"), chats.deadlines.key],
                        [uc, now, 50, S.USER_PREFIX, S.LAST_PREFIX, S.BLOCK_PREFIX, "78", S.LAST_KEEP_MS,
                         now + 15000, now + 20000])
    assert int(got[0]) == 0
    await nodes.stop(a)
    assert await state(b, ua) == await state(b, ub) == "c|77" and await state(b, uc) == "m"
    await advance(clock, 16)
    assert await state(b, ua) is None and await state(b, ub) is None and await state(b, uc) is None


@pytest_twisted.ensureDeferred
async def test_bad_input_is_700_and_no_token_720(nodes, outside):
    clock = clock_at_start()
    a = await nodes.start("a", chat_extra(outside), clock=clock)
    ta, ua = await user(a, outside, "13700000131", "甲")
    for path in ("join-chat", "get-chat", "heart-beat", "change-topic", "stop-chat", "pause-chat", "continue-chat",
                 "cancel-due-chat"):
        for bad in ({}, {"chatId": "abc"}, {"chatId": "-1"}, {"chatId": "99999999999999999999999"},
                    {"chatId": "1" * 5000}):
            assert await code(a, f"/api/chat/{path}", {"token": ta, **bad}) == 700, (path, bad)
        assert await code(a, f"/api/chat/{path}", {"chatId": 1}) == 720
    assert await code(a, "/api/chat/accept-chat", {"token": ta, "chatId": 1}) == 700  # no userId
    assert await code(a, "/api/chat/accept-chat", {"token": ta, "chatId": 1, "userId": 2, "type": 7}) == 700
    assert await code(a, "/api/chat/match-chat", {}) == 720
    assert await code(a, "/api/live/call-request", {"token": ta}) == 700
    assert await code(a, "/api/live/refuse-conference", {"token": ta, "liveId": 1}) == 700
