"""The whole flow of a live page against a real node, a real Redis and a fake WeChat."""

import time

import pytest_twisted

from tests.helpers import sleep
from tests.live.conftest import APPID, IO_SETTLE_S, T0, USERS, Viewer, put_activity, start_live


def local(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@pytest_twisted.ensureDeferred
async def test_a_page_from_open_to_leaving(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node, "1001")
    v1 = await Viewer.connect(node)
    v2 = await Viewer.connect(node, "/any/path")
    try:
        # Open: the activity, times as 10-digit strings, the total and the appId
        opened = await v1.call("Open", activityId="1001")
        assert opened == {"code": 1, "msg": "成功", "cmd": "Open", "data": {
            "title": "发布会直播", "details": "详情", "shareTitle": "分享", "shareDigest": "摘要",
            "startTime": str(T0 - 60), "endTime": str(T0 + 3600), "sharePic": "https://img.example/share.png",
            "total": 1, "liveStreamingPath": "rtmp://live.example/1001", "appId": APPID}}
        # the join is pushed to the room (first change after a quiet second: at once)
        assert await v1.next() == {"code": 1, "msg": "成功", "cmd": "Total", "data": {"total": 1}}

        # not logged in yet: -1001 with the appId for OAuth
        assert await v1.call("CheckLogin", activityId="1001", token="") == {
            "code": -1001, "msg": "未登录", "cmd": "CheckLogin", "data": {"appId": APPID}}
        assert (await v1.call("CheckLogin", activityId="1001", token="forged"))["code"] == -1001

        # Login through WeChat OAuth2
        login = await v1.call("Login", activityId="1001", code="code-alice", type="wechat")
        assert login["code"] == 1 and login["cmd"] == "Login" and login["msg"] == "成功"
        token = login["data"]["token"]
        assert len(token) >= 40
        assert login["data"] == {"token": token, "nickname": "Alice", "headimgurl": USERS["code-alice"]["headimgurl"]}
        assert [p for p, _ in wechat.requests] == ["/sns/oauth2/access_token", "/sns/userinfo"]
        assert wechat.requests[0][1] == {"appid": APPID, "secret": "wx-test-secret", "code": "code-alice",
                                         "grant_type": "authorization_code"}
        assert wechat.requests[1][1] == {"access_token": "AT-code-alice", "openid": "o-alice", "lang": "zh_CN"}

        assert await v1.call("CheckLogin", activityId="1001", token=token) == {
            "code": 1, "msg": "成功", "cmd": "CheckLogin",
            "data": {"token": token, "nickname": "Alice", "headimgurl": USERS["code-alice"]["headimgurl"],
                     "appId": APPID}}

        # a second viewer: its Open counts it; the room hears the new total within a second
        assert (await v2.call("Open", activityId=1001))["data"]["total"] == 2
        await v1.no_message(0.2)  # coalesced: v1 had a Total less than a second ago
        clock.advance(1)
        assert await v1.next() == {"code": 1, "msg": "成功", "cmd": "Total", "data": {"total": 2}}
        assert await v2.next() == {"code": 1, "msg": "成功", "cmd": "Total", "data": {"total": 2}}

        # a message: my "1" for the sender, "0" for the other viewer
        v1.send("Message", activityId="1001", msg="大家好 👋", token=token, code="", type="wechat")
        mine, theirs = await v1.next(), await v2.next()
        expected = {"userName": "Alice", "headPic": USERS["code-alice"]["headimgurl"], "time": local(T0 + 1),
                    "msg": "大家好 👋"}
        assert mine == {"code": 1, "msg": "大家好 👋", "cmd": "Message", "data": {**expected, "my": "1"}}
        assert theirs == {"code": 1, "msg": "大家好 👋", "cmd": "Message", "data": {**expected, "my": "0"}}

        # a viewer leaves: the others get the new total
        await v2.close()
        await sleep(IO_SETTLE_S)
        clock.advance(1)
        assert await v1.next() == {"code": 1, "msg": "成功", "cmd": "Total", "data": {"total": 1}}
        assert (await v1.call("Total", activityId="1001")) == {"code": 1, "msg": "成功", "cmd": "Total",
                                                                "data": {"total": 1}}

        # a page that joins late asks for the recent chat
        history = await v1.call("History", activityId="1001", count=10)
        assert history["code"] == 1 and history["cmd"] == "History"
        assert history["data"]["activityId"] == "1001"
        [item] = history["data"]["messages"]
        assert item == {"id": item["id"], **expected, "my": "1"}
        # and nothing else was on its way: the answer to the next request is the next frame
        assert (await v1.call("CheckLogin", activityId="1001", token=token))["cmd"] == "CheckLogin"
    finally:
        await v1.close()
        await v2.close()


@pytest_twisted.ensureDeferred
async def test_the_login_is_remembered_by_the_connection_and_valid_on_other_connections(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    v1, v2 = await Viewer.connect(node), await Viewer.connect(node)
    try:
        await v1.open()
        await v1.next()  # Total
        token = await v1.login("code-bob")
        # no token in the frame: the connection's login counts
        v1.send("Message", activityId="1001", msg="hi")
        got = await v1.next()
        assert got["data"]["my"] == "1" and got["data"]["userName"] == "鲍勃"
        # the same token on another connection (another tab): its own messages show my "1" there
        assert (await v2.call("CheckLogin", token=token))["code"] == 1
        v2.send("Message", activityId="1001", msg="from tab 2", token=token)
        # v2 has not opened the room: it still gets its own copy
        own = await v2.next()
        assert own["data"]["my"] == "1" and own["msg"] == "from tab 2"
        seen = await v1.next()
        assert seen["data"]["my"] == "1" and seen["msg"] == "from tab 2"
    finally:
        await v1.close()
        await v2.close()


@pytest_twisted.ensureDeferred
async def test_data_as_a_quoted_json_string_is_read_too(nodes, wechat, clock):
    import json

    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    viewer = await Viewer.connect(node)
    try:
        viewer.send_raw(json.dumps({"cmd": "Open", "data": json.dumps({"activityId": "1001"})}))
        assert (await viewer.next())["data"]["total"] == 1
        viewer.send_raw(b'{"cmd": "Total", "data": {"activityId": "1001"}}', binary=True)
        got = await viewer.next()
        while got["cmd"] != "Total" or got.get("code") != 1:
            got = await viewer.next()
        assert got["data"] == {"total": 1}
    finally:
        await viewer.close()
