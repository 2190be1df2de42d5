"""The heihei app's live rooms through /api/live and the push channel (seed 001): a live's life, what the
anchor and the viewers see, the lists, and every endpoint's refusals."""

from __future__ import annotations

import io
import json
import time
import zipfile
from urllib.parse import urlsplit

import pytest_twisted
import treq

from tests.conftest import http_url
from tests.heihei.helpers import ok, open_channel, send_data, server_call
from tests.heihei.livehelpers import MEDIA_SECRET, live_extra, next_msg, start_live, user

from heihei.outbound.streams import MediaSigner, pili_publish_url

LIVE_INFO_FIELDS = ("userId", "userName", "gender", "birthDay", "liveId", "title", "liveCity", "pushAddr",
                    "streamAddr", "shareAddr", "lookbackAddr", "messageAddr", "roomId", "status", "onlineUsers",
                    "totalUsers", "livetotalticket", "totalTickets", "createTime")


def signer() -> MediaSigner:
    return MediaSigner(secret=MEDIA_SECRET, push_rtmp="rtmp://push.example.com",
                       pull_flv="http://media.example.com:8000")


def local(node, url: str) -> str:
    """A URL of [http] public_url, on this test node."""
    parts = urlsplit(url)
    return http_url(node, parts.path) + ("?" + parts.query if parts.query else "")


def assert_share(share: dict) -> None:
    assert set(share) == {"weibo", "wechat", "friend"}
    for target in share.values():
        assert set(target) == {"title", "content", "url", "coverUrl"} and target["url"]


@pytest_twisted.ensureDeferred
async def test_a_live_from_creation_to_replay(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    a_token, anchor = await user(node, outside, "13300000001", "主播")
    v_token, viewer = await user(node, outside, "13300000002", "观众")
    anchor_channel = await open_channel(node, a_token)
    viewer_channel = await open_channel(node, v_token)

    created = await ok(node, "/api/live/create-live", {"token": a_token, "title": "  清水出芙蓉 "})
    live = created["live"]
    live_id = live["liveId"]
    for field in LIVE_INFO_FIELDS:
        assert field in live, field
    assert live["status"] == 0 and live["roomId"] == live_id and live["title"] == "清水出芙蓉"
    assert live["userId"] == int(anchor) and live["userName"] == "主播"
    assert_share(created["share"])
    assert created["liveOptions"]["inefficientTime"] == 1200 and created["liveOptions"]["countDownTime"] == 60
    # the anchor's credentials: a push address with sign and proof, and a qiniuObj aimed at it
    s = signer()
    push_sign = live["pushAddr"].split("sign=")[1].split("&")[0]
    proof = live["pushAddr"].split("pk=")[1]
    assert s.verify_push(f"/live/{live_id}", push_sign, proof, now_s=time.time()).stream == str(live_id)
    assert pili_publish_url(live["qiniuObj"]).startswith(f"rtmp://push.example.com/live/{live_id}?key=")
    assert live["streamAddr"].startswith(f"http://media.example.com:8000/live/{live_id}.flv?sign=")
    assert (await ok(node, "/api/live/unclosed-live", {"token": a_token}))["live"]["liveId"] == live_id

    # not playing yet: a viewer gets its status and does not join; get-live answers it too
    early = await ok(node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    assert early["live"]["status"] == 0 and early["live"]["pushAddr"] == "" and "qiniuObj" not in early["live"]
    assert early["userInfo"]["id"] == int(anchor)

    await ok(node, "/api/live/start-live", {"token": a_token, "liveId": live_id})
    joined = await ok(node, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    assert joined["live"]["status"] == 1 and joined["live"]["onlineUsers"] == 1
    assert joined["userInfo"]["displayName"] == "主播"
    assert_share(joined["share"])
    # the joiner gets the online count at once
    counted = await next_msg(viewer_channel, skip_counts=False)
    assert counted["action"] == "live-users" and counted["onlineUsers"] == 1 and counted["totalCount"] == 2

    # chat, a gift through the messageserver, a like: every member's connections get them
    await ok(node, "/api/msg/send-msg", {"token": v_token, "text": "大家好", "roomId": live_id})
    text = await next_msg(anchor_channel)
    assert text["msgType"] == "text" and text["text"] == "大家好" and text["fromUserId"] == int(viewer)
    assert (await next_msg(viewer_channel))["text"] == "大家好"
    gift = {"msgType": "gift", "amount": 1, "giftId": 12, "roomId": live_id, "fromUserId": int(viewer),
            "fromUserName": "观众", "gender": "Female", "totalTicket": 5, "gift_uuid": "g-1", "msgId": 7}
    assert (await server_call(node, "send-msg", send_data("toLive", "liveId", live_id, gift)))["errorcode"] == 0
    assert await next_msg(anchor_channel) == gift
    await ok(node, "/api/live/live-like", {"token": v_token, "liveId": live_id, "type": 2})
    like = await next_msg(anchor_channel)
    assert like["msgType"] == "like" and like["count"] == 1 and like["fromUserId"] == int(viewer)

    # the lists
    users = await ok(node, "/api/live/list-live-users", {"token": a_token, "liveId": live_id})
    assert users["totalCount"] == 2 and [u["id"] for u in users["users"]] == [int(viewer)]
    assert users["users"][0]["name"] == "观众" and users["users"][0]["joinTime"] > 1_000_000_000
    recommended = await ok(node, "/api/live/list-live-by-recommend", {"token": v_token})
    assert [x["liveId"] for x in recommended["lives"]] == [live_id] and recommended["liveskback"] == []
    assert recommended["expireTime"] == 60
    mine = await ok(node, "/api/live/list-live-by-user", {"token": v_token, "userId": anchor})
    assert mine["totalCount"] == 1 and mine["lives"][0]["creatorId"] == int(anchor)
    assert (await ok(node, "/api/live/get-live", {"token": v_token, "liveId": live_id}))["live"]["status"] == 1

    # stop: the room hears stop-live, the live stays as a replay with its chat
    stopped = await ok(node, "/api/live/stop-live", {"token": a_token, "liveId": live_id})
    assert stopped["live"]["status"] == 2 and stopped["live"]["onlineUsers"] == 1
    assert_share(stopped["share"])
    end = await next_msg(viewer_channel, want=lambda m: m.get("action") == "stop-live")
    assert end["live"]["liveId"] == live_id and end["live"]["status"] == 2 and end["live"]["pushAddr"] == ""
    replay = (await ok(node, "/api/live/get-live", {"token": v_token, "liveId": live_id}))["live"]
    assert replay["status"] == 2
    assert replay["lookbackAddr"] == f"http://media.example.com:8000/recordings/{live_id}.flv"
    assert (await ok(node, "/api/live/list-live-by-recommend", {"token": v_token}))["liveskback"][0]["liveId"] \
        == live_id
    assert (await ok(node, "/api/live/unclosed-live", {"token": a_token})) == {"errorcode": 0,
                                                                               "errormsg": "success"}
    replayers = await ok(node, "/api/live/list-replay-users", {"token": a_token, "liveId": live_id})
    assert [u["id"] for u in replayers["users"]] == [int(viewer)]

    # the chat zip: files of JSON arrays of strings, each one channel item
    response = await treq.get(local(node, replay["messageAddr"]))
    assert response.code == 200
    archive = zipfile.ZipFile(io.BytesIO(await response.content()))
    items = [json.loads(s) for name in archive.namelist() for s in json.loads(archive.read(name))]
    kinds = [i["msg"].get("msgType") for i in items]
    assert kinds[:3] == ["text", "gift", "like"] and items[-1]["msg"]["action"] == "stop-live"
    assert all(isinstance(i["timeStamp"], int) for i in items)
    forged = local(node, replay["messageAddr"]).split("?")[0]
    assert (await treq.get(forged + "?sign=0")).code == 404
    await anchor_channel.close()
    await viewer_channel.close()


@pytest_twisted.ensureDeferred
async def test_online_counts_are_exact_across_nodes_and_pushed_at_a_bounded_rate(nodes, outside):
    extra = live_extra(outside, lives={"count_interval_s": 0.5, "sweep_interval_s": 0.1})
    a = await nodes.start("a", extra)
    b = await nodes.start("b", extra)
    a_token, anchor = await user(a, outside, "13300000101", "主播")
    live_id = (await start_live(a, a_token))["liveId"]
    anchor_channel = await open_channel(b, a_token)
    viewers = [await user(b if n % 2 else a, outside, f"133000002{n:02d}", f"观众{n}") for n in range(12)]
    started = time.monotonic()
    for n, (token, _) in enumerate(viewers):  # joins through both nodes, as fast as they come
        await ok(b if n % 2 else a, "/api/live/join-live", {"token": token, "liveId": live_id})
    for n, (token, _) in enumerate(viewers[:4]):
        await ok(a if n % 2 else b, "/api/live/quit-live", {"token": token, "liveId": live_id})
    counts = []
    while True:
        msg = await next_msg(anchor_channel, skip_counts=False, timeout=3)
        if msg.get("action") == "live-users":
            counts.append((time.monotonic(), msg["onlineUsers"]))
            if msg["onlineUsers"] == 8:
                break
    elapsed = time.monotonic() - started
    assert counts[-1][1] == 8 and counts[-1][1] == (await ok(
        b, "/api/live/get-live", {"token": a_token, "liveId": live_id}))["live"]["onlineUsers"]
    # one push per count_interval_s at most, whichever node pushes
    assert len(counts) <= elapsed / 0.5 + 2, counts
    await anchor_channel.no_message(1.0)  # nothing changed: nothing pushed
    await anchor_channel.close()


@pytest_twisted.ensureDeferred
async def test_isinlive_says_whether_the_user_is_broadcasting_now(nodes, outside):
    node = await nodes.start("a", live_extra(outside))
    anchor_token, anchor = await user(node, outside, "13100000001", "主播")
    viewer_token, _ = await user(node, outside, "13100000002", "观众")
    answer = await ok(node, "/api/user/isinlive", {"token": viewer_token, "userId": anchor})
    assert (answer["isinlive"], answer["liveId"]) == (0, 0)
    live = await start_live(node, anchor_token)
    answer = await ok(node, "/api/user/isinlive", {"token": viewer_token, "userId": anchor})
    assert (answer["isinlive"], str(answer["liveId"])) == (1, str(live["liveId"]))
    await ok(node, "/api/live/stop-live", {"token": anchor_token, "liveId": live["liveId"]})
    answer = await ok(node, "/api/user/isinlive", {"token": viewer_token, "userId": anchor})
    assert answer["isinlive"] == 0
