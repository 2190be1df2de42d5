"""Every code of the seed (-1001 ... -1009), each in the protocol's own answer format."""

import json

import pytest
import pytest_twisted

from tests.helpers import wait_until
from tests.live.conftest import APPID, T0, Viewer, put_activity, start_live


async def logged_in_viewer(node, activity_id="1001", code="code-alice"):
    viewer = await Viewer.connect(node)
    await viewer.open(activity_id)
    await viewer.next()  # the Total push
    token = await viewer.login(code)
    return viewer, token


@pytest_twisted.ensureDeferred
async def test_1001_message_without_a_valid_token(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    viewer = await Viewer.connect(node)
    try:
        for token in (None, "", "not-a-token", "x" * 500, 12345):
            data = {"activityId": "1001", "msg": "hi"}
            if token is not None:
                data["token"] = token
            viewer.send("Message", **data)
            assert await viewer.next() == {"code": -1001, "msg": "用户未登录，禁止发言", "cmd": "Message",
                                           "data": {"appId": APPID}}
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1001_after_the_token_expires(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock, token_ttl=5.0)
    await put_activity(node)
    viewer, token = await logged_in_viewer(node)
    try:
        clock.advance(4.9)
        assert (await viewer.call("CheckLogin", token=token))["code"] == 1
        clock.advance(0.1)
        assert (await viewer.call("CheckLogin", token=token))["code"] == -1001
        assert (await viewer.call("Message", activityId="1001", msg="hi", token=token))["code"] == -1001
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1002_rate_limit_per_user_and_activity(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    viewer, token = await logged_in_viewer(node)
    try:
        for i in range(3):  # the burst
            assert (await viewer.call("Message", activityId="1001", msg=f"m{i}", token=token))["code"] == 1
        assert await viewer.call("Message", activityId="1001", msg="m3", token=token) == {
            "code": -1002, "msg": "发言频繁，请稍后再试", "cmd": "Message", "data": {}}
        clock.advance(1.0)  # one more per second
        assert (await viewer.call("Message", activityId="1001", msg="m4", token=token))["code"] == 1
        assert (await viewer.call("Message", activityId="1001", msg="m5", token=token))["code"] == -1002
        # the refused ones were not stored
        history = await viewer.call("History", activityId="1001", count=100)
        assert [m["msg"] for m in history["data"]["messages"]] == ["m0", "m1", "m2", "m4"]
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_rate_and_burst_are_configurable(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock, rate=0.5, burst=1)
    await put_activity(node)
    viewer, token = await logged_in_viewer(node)
    try:
        assert (await viewer.call("Message", activityId="1001", msg="a", token=token))["code"] == 1
        assert (await viewer.call("Message", activityId="1001", msg="b", token=token))["code"] == -1002
        clock.advance(1.0)
        assert (await viewer.call("Message", activityId="1001", msg="c", token=token))["code"] == -1002
        clock.advance(1.0)
        assert (await viewer.call("Message", activityId="1001", msg="d", token=token))["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_muted_user_gets_1002_with_a_clear_message(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    ops = node.operators["live"]
    viewer, token = await logged_in_viewer(node)
    try:
        await ops.mute("1001", "o-alice", duration_s=60)
        assert await viewer.call("Message", activityId="1001", msg="hi", token=token) == {
            "code": -1002, "msg": "您已被禁言", "cmd": "Message", "data": {}}
        clock.advance(60)
        assert (await viewer.call("Message", activityId="1001", msg="free", token=token))["code"] == 1
        await ops.mute("1001", "o-alice")  # until unmuted
        clock.advance(1800)
        assert (await viewer.call("Message", activityId="1001", msg="hi", token=token))["msg"] == "您已被禁言"
        assert await ops.unmute("1001", "o-alice") is True
        assert (await viewer.call("Message", activityId="1001", msg="back", token=token))["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_a_message_sent_with_another_users_token_is_checked_against_that_users_mute(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    ops = node.operators["live"]
    viewer, alice_token = await logged_in_viewer(node)
    other = await Viewer.connect(node)  # bob: logged in, not in the room
    bob_token = await other.login("code-bob")
    try:
        assert (await viewer.call("Message", activityId="1001", msg="as alice", token=alice_token))["code"] == 1
        await ops.mute("1001", "o-bob", duration_s=60)
        # alice's connection (its mute read ahead is alice's), bob's token: bob's mute decides
        assert (await viewer.call("Message", activityId="1001", msg="as bob", token=bob_token))["code"] == -1002
        await ops.unmute("1001", "o-bob")
        await ops.mute("1001", "o-alice", duration_s=60)
        assert (await viewer.call("Message", activityId="1001", msg="bob again", token=bob_token))["code"] == 1
        assert (await viewer.call("Message", activityId="1001", msg="alice?", token=alice_token))["code"] == -1002
    finally:
        await viewer.close()
        await other.close()


@pytest.mark.parametrize("max_chars, ok, too_long", [
    (200, "中" * 200, "中" * 201),
    (200, "a" * 199 + "文", "a" * 200 + "文"),
    (200, "😀" * 200, "😀" * 201),
    (10, "十个汉字十个汉字十个", "十一个汉字十一个汉字十"),
])
@pytest_twisted.ensureDeferred
async def test_1003_counts_characters_not_bytes(nodes, wechat, clock, max_chars, ok, too_long):
    node = await start_live(nodes, wechat, clock, max_chars=max_chars, burst=10)
    await put_activity(node)
    viewer, token = await logged_in_viewer(node)
    try:
        got = await viewer.call("Message", activityId="1001", msg=ok, token=token)
        assert got["code"] == 1 and got["data"]["msg"] == ok
        assert await viewer.call("Message", activityId="1001", msg=too_long, token=token) == {
            "code": -1003, "msg": f"超过最大字符数，{max_chars}字", "cmd": "Message", "data": {}}
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1004_unknown_activity_and_not_started(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node, "later", startTime=T0 + 100, endTime=T0 + 200)
    viewer = await Viewer.connect(node)
    try:
        not_open = {"code": -1004, "msg": "直播活动未开启", "cmd": "Open", "data": {}}
        assert await viewer.call("Open", activityId="nope") == not_open
        assert await viewer.call("Open", activityId="../etc:*") == not_open
        assert await viewer.call("Open", activityId="x" * 300) == not_open
        assert (await viewer.call("Total", activityId="nope"))["code"] == -1004
        assert (await viewer.call("History", activityId="nope"))["code"] == -1004
        # a pending activity can be opened (the page shows a countdown) but not chatted in
        assert (await viewer.call("Open", activityId="later"))["data"]["startTime"] == str(T0 + 100)
        await viewer.next()  # Total
        token = await viewer.login()
        assert await viewer.call("Message", activityId="later", msg="hi", token=token) == {
            "code": -1004, "msg": "直播活动未开启", "cmd": "Message", "data": {}}
        assert (await viewer.call("Message", activityId="nope", msg="hi", token=token))["code"] == -1004
        clock.advance(100)  # startTime reached
        assert (await viewer.call("Message", activityId="later", msg="now", token=token))["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1005_after_the_end(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node, "1001", startTime=T0 - 100, endTime=T0 + 10)
    viewer, token = await logged_in_viewer(node)
    try:
        assert (await viewer.call("Message", activityId="1001", msg="before", token=token))["code"] == 1
        clock.advance(10)  # endTime itself is over
        assert await viewer.call("Message", activityId="1001", msg="after", token=token) == {
            "code": -1005, "msg": "直播活动已结束", "cmd": "Message", "data": {}}
        # the page can still open it (and read the chat)
        assert (await viewer.call("Open", activityId="1001"))["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1005_pushed_when_an_operator_removes_the_activity(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    await put_activity(node, "other")
    v1, v2 = await Viewer.connect(node), await Viewer.connect(node)
    try:
        await v1.open("1001")
        await v1.next()
        await v2.open("other")
        await v2.next()
        await node.operators["live"].remove_activity("1001")
        assert await v1.next() == {"code": -1005, "msg": "直播活动已结束", "cmd": "Open", "data": {}}
        code, reason = await v1.client.wait_closed()
        assert code == 1000 and reason == "activity removed"
        # another activity's viewers are not concerned: theirs would have been written with v1's,
        # so before this answer
        assert (await v2.call("Open", activityId="1001"))["code"] == -1004
    finally:
        await v1.close()
        await v2.close()


@pytest.mark.parametrize("frame, cmd", [
    ("not json", ""),
    ("{\"cmd\": \"Open\", ", ""),
    ("[1, 2]", ""),
    ("\"Open\"", ""),
    ("{}", ""),
    ("{\"data\": {\"activityId\": \"1001\"}}", ""),
    ("{\"cmd\": 5, \"data\": {}}", ""),
    ("{\"cmd\": \"Open\"}", "Open"),
    ("{\"cmd\": \"Open\", \"data\": {}}", "Open"),
    ("{\"cmd\": \"Open\", \"data\": {\"activityId\": \"\"}}", "Open"),
    ("{\"cmd\": \"Open\", \"data\": {\"activityId\": true}}", "Open"),
    ("{\"cmd\": \"Open\", \"data\": [\"1001\"]}", "Open"),
    ("{\"cmd\": \"Open\", \"data\": \"not json\"}", "Open"),
    ("{\"cmd\": \"Total\", \"data\": {}}", "Total"),
    ("{\"cmd\": \"Login\", \"data\": {\"type\": \"wechat\"}}", "Login"),
    ("{\"cmd\": \"Login\", \"data\": {\"code\": \"code-alice\"}}", "Login"),
    ("{\"cmd\": \"Message\", \"data\": {\"activityId\": \"1001\"}}", "Message"),
    ("{\"cmd\": \"Message\", \"data\": {\"activityId\": \"1001\", \"msg\": \"\"}}", "Message"),
    ("{\"cmd\": \"Message\", \"data\": {\"activityId\": \"1001\", \"msg\": 5}}", "Message"),
    ("{\"cmd\": \"Message\", \"data\": {\"msg\": \"hi\"}}", "Message"),
    ("{\"cmd\": \"History\", \"data\": {\"activityId\": \"1001\", \"count\": \"many\"}}", "History"),
    ("{\"cmd\": \"History\", \"data\": {\"activityId\": \"1001\", \"count\": 0}}", "History"),
    ("[" * 4000 + "]" * 4000, ""),  # deep nesting, within the size an anonymous page may send
    ("\ud800".encode("utf-8", "surrogatepass"), ""),
])
@pytest_twisted.ensureDeferred
async def test_1006_bad_frames_and_missing_parameters(nodes, wechat, clock, frame, cmd):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    viewer = await Viewer.connect(node)
    try:
        viewer.send_raw(frame, binary=isinstance(frame, bytes))
        assert await viewer.next() == {"code": -1006, "msg": "缺少必传参数", "cmd": cmd, "data": {}}
        # the connection stays usable
        assert (await viewer.call("Open", activityId="1001"))["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1006_for_a_blank_message_from_a_logged_in_user(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    viewer, token = await logged_in_viewer(node)
    try:
        assert (await viewer.call("Message", activityId="1001", msg="   \n", token=token))["code"] == -1006
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1007_when_redis_does_not_answer(nodes, wechat, clock, redis):
    node = await start_live(nodes, wechat, clock, extra={"redis": {"reply_timeout_s": 0.2, "connect_timeout_s": 0.2}})
    await put_activity(node)
    viewer = await Viewer.connect(node)
    try:
        redis["client"].execute_command("CLIENT", "PAUSE", "1000", "ALL")
        assert await viewer.call("Open", activityId="1001") == {
            "code": -1007, "msg": "网络问题出错，请重试", "cmd": "Open", "data": {}}
        # once the pause is over the server recovers by itself

        async def opens():
            return (await viewer.call("Open", activityId="1001"))["code"] == 1

        await wait_until(opens, interval_s=0.1, what="Open to succeed after the pause")
    finally:
        await viewer.close()


@pytest.mark.parametrize("cmd", ["Nope", "open", "OPEN", "Logout", "x" * 1000])
@pytest_twisted.ensureDeferred
async def test_1008_unknown_cmd(nodes, wechat, clock, cmd):
    node = await start_live(nodes, wechat, clock)
    viewer = await Viewer.connect(node)
    try:
        assert await viewer.call(cmd, activityId="1001") == {"code": -1008, "msg": "没有该方法",
                                                            "cmd": cmd[:64], "data": {}}
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_1009_login_refused(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    viewer = await Viewer.connect(node)
    try:
        failed = {"code": -1009, "msg": "登录失败", "cmd": "Login", "data": {}}
        assert await viewer.call("Login", activityId="1001", code="bogus", type="wechat") == failed
        assert await viewer.call("Login", activityId="1001", code="code-alice", type="weibo") == failed
        assert await viewer.call("Login", activityId="1001", code="c" * 600, type="wechat") == failed
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_a_flood_of_frames_is_answered_not_queued_without_bound(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    viewer = await Viewer.connect(node)
    try:
        for _ in range(300):
            viewer.send("Total", activityId="1001")
        answers = [await viewer.next() for _ in range(300)]
        codes = {a["code"] for a in answers}
        assert codes <= {1, -1002}
        assert all(a["cmd"] == "Total" for a in answers)
        assert sum(1 for a in answers if a["code"] == 1) >= 64
    finally:
        await viewer.close()


def test_answer_bytes_are_compact_utf8():
    from heihei.protocols.live import answer

    raw = answer("Total", 1, "成功", {"total": 2})
    assert raw == '{"code":1,"msg":"成功","cmd":"Total","data":{"total":2}}'.encode("utf-8")
    assert json.loads(raw)["msg"] == "成功"


@pytest_twisted.ensureDeferred
async def test_switching_rooms_too_fast_is_1002(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node, "1001")
    await put_activity(node, "2002")
    viewer = await Viewer.connect(node)
    try:
        codes = []
        for i in range(12):
            viewer.send("Open", activityId="1001" if i % 2 else "2002")
        while len(codes) < 12:
            frame = await viewer.next()
            if frame["cmd"] == "Open":
                codes.append(frame["code"])
        assert codes == [1] * 10 + [-1002] * 2
        clock.advance(1)
        answer = await viewer.call("Open", activityId="1001")
        while answer["cmd"] != "Open":
            answer = await viewer.next()
        assert answer["code"] == 1
    finally:
        await viewer.close()


@pytest_twisted.ensureDeferred
async def test_answers_come_in_the_order_the_frames_were_sent(nodes, wechat, clock):
    """A refusal decided without Redis waits its turn behind the commands sent before it (before,
    a bad frame sent after an Open was answered first)."""
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    viewer = await Viewer.connect(node)
    try:
        viewer.send("Open", activityId="1001")
        viewer.send_raw("not json")
        viewer.send("Nope")
        viewer.send("History", activityId="1001", count=5)
        viewer.send_raw("{}")
        cmds = []
        while len(cmds) < 5:
            got = await viewer.next()
            if got["cmd"] != "Total":  # the room total the Open pushes
                cmds.append((got["cmd"], got["code"]))
        assert cmds == [("Open", 1), ("", -1006), ("Nope", -1008), ("History", 1), ("", -1006)]
    finally:
        await viewer.close()
