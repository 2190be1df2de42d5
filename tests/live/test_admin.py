"""The authenticated admin HTTP API for live activities, and the same tools in the manhole namespace."""

import json
import os

import pytest
import pytest_twisted
import treq

from tests.conftest import http_url
from tests.live.conftest import T0, Viewer, start_live

TOKEN = "admin-secret-for-tests"
ACTIVITY = {"title": "直播", "details": "d", "shareTitle": "st", "shareDigest": "sd", "sharePic": "p",
            "liveStreamingPath": "rtmp://x/1", "startTime": T0 - 10, "endTime": T0 + 600}


async def admin(node, method, path, body=None, token=TOKEN, raw=None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else (json.dumps(body, ensure_ascii=False).encode() if body is not None else None)
    response = await treq.request(method, http_url(node, "/admin" + path), headers=headers, data=data)
    text = await response.text("utf-8")
    return response.code, (json.loads(text) if text else None)


async def admin_node(nodes, wechat, clock, extra=None, **kw):
    return await start_live(nodes, wechat, clock, extra={"admin": {"token": TOKEN}, **(extra or {})}, **kw)


@pytest_twisted.ensureDeferred
async def test_every_admin_path_needs_the_bearer_token(nodes, wechat, clock):
    node = await admin_node(nodes, wechat, clock)
    for method, path in [("GET", "/live/activities"), ("PUT", "/live/activities/1"), ("GET", "/live/activities/1"),
                         ("DELETE", "/live/activities/1"), ("GET", "/live/activities/1/mutes"),
                         ("PUT", "/live/activities/1/mutes/u"), ("DELETE", "/live/activities/1/mutes/u"),
                         ("GET", "/live/activities/1/messages"), ("DELETE", "/live/activities/1/messages/5"),
                         ("GET", "/moderation/banned-words"), ("POST", "/moderation/banned-words/reload"),
                         ("GET", "/nothing/here")]:
        for token in (None, "wrong", TOKEN + "x", ""):
            code, body = await admin(node, method, path, ACTIVITY if method == "PUT" else None, token=token)
            assert code == 401, (method, path, token)
            assert "unauthorized" in body["error"]
    # a scheme other than Bearer is refused too
    response = await treq.get(http_url(node, "/admin/live/activities"), headers={"Authorization": f"Basic {TOKEN}"})
    assert response.code == 401
    assert response.headers.getRawHeaders("www-authenticate") == ['Bearer realm="heihei-admin"']
    await response.content()
    code, body = await admin(node, "GET", "/nothing/here")
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_activity_crud(nodes, wechat, clock):
    node = await admin_node(nodes, wechat, clock)
    code, body = await admin(node, "PUT", "/live/activities/1001", ACTIVITY)
    assert code == 201
    assert body == {"activityId": "1001", **ACTIVITY}
    code, body = await admin(node, "PUT", "/live/activities/1001", {**ACTIVITY, "title": "新标题",
                                                                    "startTime": str(T0 - 10)})
    assert code == 200 and body["title"] == "新标题" and body["startTime"] == T0 - 10
    code, body = await admin(node, "GET", "/live/activities/1001")
    assert code == 200
    assert body == {"activityId": "1001", **ACTIVITY, "title": "新标题", "state": "open", "total": 0}
    code, body = await admin(node, "GET", "/live/activities")
    assert code == 200 and [a["activityId"] for a in body["activities"]] == ["1001"]

    # what a page sees comes from the same record
    viewer = await Viewer.connect(node)
    try:
        opened = await viewer.call("Open", activityId="1001")
        assert opened["data"]["title"] == "新标题" and opened["data"]["endTime"] == str(T0 + 600)
        await viewer.next()
        code, body = await admin(node, "GET", "/live/activities/1001")
        assert body["total"] == 1
        # DELETE: the open room is told and closed
        code, body = await admin(node, "DELETE", "/live/activities/1001")
        assert code == 200 and body == {"removed": "1001"}
        assert await viewer.next() == {"code": -1005, "msg": "直播活动已结束", "cmd": "Open", "data": {}}
        assert (await viewer.client.wait_closed())[0] == 1000
    finally:
        await viewer.close()
    assert (await admin(node, "GET", "/live/activities/1001"))[0] == 404
    assert (await admin(node, "DELETE", "/live/activities/1001"))[0] == 404
    assert (await admin(node, "GET", "/live/activities"))[1] == {"activities": []}


@pytest.mark.parametrize("body, reason", [
    ({**ACTIVITY, "endTime": T0 - 20}, "endTime must be after startTime"),
    ({k: v for k, v in ACTIVITY.items() if k != "title"}, "missing fields: title"),
    ({**ACTIVITY, "startTime": 1.5}, "startTime must be Unix seconds"),
    ({**ACTIVITY, "startTime": 17000000000}, "startTime must be Unix seconds between"),
    ({**ACTIVITY, "startTime": True}, "startTime must be Unix seconds"),
    ({**ACTIVITY, "title": 5}, "title must be a string"),
    ({**ACTIVITY, "title": "x" * 201}, "title is longer than 200"),
    ({**ACTIVITY, "colour": "red"}, "unknown fields: colour"),
    ({**ACTIVITY, "activityId": "other"}, "differs"),
    ([1, 2], "expected a JSON object"),
])
@pytest_twisted.ensureDeferred
async def test_bad_activities_are_400(nodes, wechat, clock, body, reason):
    node = await admin_node(nodes, wechat, clock)
    code, answer = await admin(node, "PUT", "/live/activities/1001", body)
    assert code == 400 and reason in answer["error"], answer
    assert (await admin(node, "GET", "/live/activities/1001"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_bad_ids_and_bodies(nodes, wechat, clock):
    node = await admin_node(nodes, wechat, clock)
    code, answer = await admin(node, "PUT", "/live/activities/a.b", ACTIVITY)
    assert code == 400 and "activityId" in answer["error"]
    code, answer = await admin(node, "PUT", "/live/activities/1001", raw=b"{not json")
    assert code == 400 and "not valid JSON" in answer["error"]
    assert (await admin(node, "GET", "/live/activities/%2A"))[0] == 404
    assert (await admin(node, "POST", "/live/activities/1001"))[0] == 405


@pytest_twisted.ensureDeferred
async def test_mute_unmute_over_http(nodes, wechat, clock):
    node = await admin_node(nodes, wechat, clock)
    await admin(node, "PUT", "/live/activities/1001", ACTIVITY)
    assert (await admin(node, "PUT", "/live/activities/nope/mutes/o-alice"))[0] == 404
    viewer = await Viewer.connect(node)
    try:
        await viewer.open()
        await viewer.next()
        token = await viewer.login("code-alice")
        code, body = await admin(node, "PUT", "/live/activities/1001/mutes/o-alice", {"duration_s": 30})
        assert code == 200 and body == {"activityId": "1001", "user": "o-alice", "until": T0 + 30}
        code, body = await admin(node, "PUT", "/live/activities/1001/mutes/o-bob")
        assert code == 200 and body["until"] is None
        assert (await admin(node, "GET", "/live/activities/1001/mutes"))[1] == {
            "activityId": "1001", "muted": {"o-alice": T0 + 30, "o-bob": None}}
        assert (await viewer.call("Message", activityId="1001", msg="hi", token=token))["msg"] == "您已被禁言"
        code, body = await admin(node, "DELETE", "/live/activities/1001/mutes/o-alice")
        assert code == 200 and body["wasMuted"] is True
        assert (await viewer.call("Message", activityId="1001", msg="hi", token=token))["code"] == 1
        clock.advance(31)
        assert (await admin(node, "GET", "/live/activities/1001/mutes"))[1]["muted"] == {"o-bob": None}
        for bad in ({"duration_s": -1}, {"duration_s": "10"}, {"minutes": 3}):
            code, body = await admin(node, "PUT", "/live/activities/1001/mutes/o-carol", bad)
            assert code == 400, bad
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_remove_a_message_from_history(nodes, wechat, clock):
    node = await admin_node(nodes, wechat, clock)
    await admin(node, "PUT", "/live/activities/1001", ACTIVITY)
    viewer = await Viewer.connect(node)
    try:
        await viewer.open()
        await viewer.next()
        token = await viewer.login("code-alice")
        for text in ("one", "spam", "three"):
            await viewer.call("Message", activityId="1001", msg=text, token=token)
        code, body = await admin(node, "GET", "/live/activities/1001/messages?count=10")
        assert code == 200
        assert [(m["msg"], m["user"], m["userName"]) for m in body["messages"]] == [
            ("one", "o-alice", "Alice"), ("spam", "o-alice", "Alice"), ("three", "o-alice", "Alice")]
        spam = body["messages"][1]["id"]
        code, body = await admin(node, "DELETE", f"/live/activities/1001/messages/{spam}")
        assert code == 200 and body["removed"]["msg"] == "spam"
        assert (await admin(node, "DELETE", f"/live/activities/1001/messages/{spam}"))[0] == 404
        assert (await admin(node, "DELETE", "/live/activities/1001/messages/notanumber"))[0] == 404
        history = await viewer.call("History", activityId="1001")
        assert [m["msg"] for m in history["data"]["messages"]] == ["one", "three"]
        assert (await admin(node, "GET", "/live/activities/1001/messages?count=x"))[0] == 400
        assert (await admin(node, "GET", "/live/activities/1001/messages?count=0"))[0] == 400
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_banned_words_are_replaced_and_reloadable(nodes, wechat, clock, tmp_path):
    words = tmp_path / "banned.txt"
    words.write_text("BadWord\n坏话\n\n", encoding="utf-8")
    node = await admin_node(nodes, wechat, clock, extra={"moderation": {"banned_words_file": str(words)}})
    await admin(node, "PUT", "/live/activities/1001", ACTIVITY)
    viewer = await Viewer.connect(node)
    try:
        await viewer.open()
        await viewer.next()
        token = await viewer.login()
        got = await viewer.call("Message", activityId="1001", msg="a badword and 坏话!", token=token)
        assert got["data"]["msg"] == "a ******* and **!" and got["msg"] == "a ******* and **!"
        assert (await admin(node, "GET", "/moderation/banned-words"))[1] == {"words": ["BadWord", "坏话"]}
        words.write_text("hello\n", encoding="utf-8")
        assert (await admin(node, "POST", "/moderation/banned-words/reload"))[1] == {"words": 1}
        clock.advance(1)
        got = await viewer.call("Message", activityId="1001", msg="hello badword", token=token)
        assert got["data"]["msg"] == "***** badword"
        # stored as cleaned: the history never shows the word
        code, body = await admin(node, "GET", "/live/activities/1001/messages")
        assert [m["msg"] for m in body["messages"]] == ["a ******* and **!", "***** badword"]
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_generated_admin_token_is_kept_in_the_data_dir(nodes, wechat, clock, tmp_path):
    node = await start_live(nodes, wechat, clock)
    path = os.path.join(node.data_dir, "admin-token")
    token = open(path).read().strip()
    assert len(token) >= 32 and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert (await admin(node, "GET", "/live/activities", token=token))[0] == 200
    assert (await admin(node, "GET", "/live/activities", token=TOKEN))[0] == 401
    await nodes.stop(node)
    again = await nodes.start("a", clock=clock, data_dir=node.data_dir)
    assert (await admin(again, "GET", "/live/activities", token=token))[0] == 200


@pytest_twisted.ensureDeferred
async def test_operators_in_the_manhole_namespace(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    ops = node.manhole_namespace()["operators"]["live"]
    made = await ops.put_activity("7", title="t", startTime=T0, endTime=T0 + 60)
    assert made["created"] is True
    assert (await ops.activity("7"))["state"] == "open"
    viewer = await Viewer.connect(node)
    try:
        await viewer.open("7")
        await viewer.next()
        token = await viewer.login()
        await viewer.call("Message", activityId="7", msg="x", token=token)
        [message] = await ops.messages("7", 5)
        assert message["msg"] == "x" and message["user"] == "o-alice"
        removed = await ops.remove_message("7", message["id"])
        assert removed["id"] == message["id"]
        assert await ops.messages("7") == []
        await ops.mute("7", "o-alice")
        assert await ops.muted("7") == {"o-alice": None}
        assert node.operators["moderation"].set_banned_words(["x"]) == 1 and node.operators["moderation"].banned_words() == ["x"]
        await ops.remove_activity("7")
        assert (await viewer.next())["code"] == -1005
        assert await ops.activities() == []
    finally:
        await viewer.close()
