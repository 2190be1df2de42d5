"""Rooms across nodes, and the coalescing of Total pushes."""

import pytest_twisted

from tests.helpers import sleep
from tests.live.conftest import Viewer, next_advancing, put_activity, start_live


@pytest_twisted.ensureDeferred
async def test_a_viewer_on_a_second_node_sees_the_same_messages_and_totals(nodes, wechat, clock):
    a = await start_live(nodes, wechat, clock, "a")
    b = await start_live(nodes, wechat, clock, "b")
    await put_activity(a, "1001")  # created through one node, known to all
    va, vb = await Viewer.connect(a), await Viewer.connect(b)
    try:
        assert (await va.open())["data"]["total"] == 1
        assert (await va.next())["data"] == {"total": 1}
        assert (await vb.open())["data"]["total"] == 2  # the total counts both nodes
        assert (await vb.next())["data"] == {"total": 2}
        assert await next_advancing(va, clock) == {"code": 1, "msg": "成功", "cmd": "Total", "data": {"total": 2}}

        token_a = await va.login("code-alice")
        token_b = await vb.login("code-bob")
        # a message sent on a reaches b, and the other way round
        va.send("Message", activityId="1001", msg="from a", token=token_a)
        mine, theirs = await va.next(), await vb.next()
        assert mine["data"]["my"] == "1" and theirs["data"]["my"] == "0"
        assert {k: v for k, v in mine["data"].items() if k != "my"} == \
            {k: v for k, v in theirs["data"].items() if k != "my"}
        assert theirs["data"]["userName"] == "Alice" and theirs["msg"] == "from a"
        vb.send("Message", activityId="1001", msg="来自 b", token=token_b)
        assert (await vb.next())["data"]["my"] == "1"
        seen = await va.next()
        assert seen["data"]["my"] == "0" and seen["data"]["userName"] == "鲍勃" and seen["data"]["msg"] == "来自 b"

        # a token issued by one node is good on the other
        assert (await vb.call("CheckLogin", token=token_a))["data"]["nickname"] == "Alice"

        # the history is the same from both nodes
        ha = await va.call("History", activityId="1001")
        hb = await vb.call("History", activityId="1001")
        assert [m["msg"] for m in ha["data"]["messages"]] == ["from a", "来自 b"]
        assert [m["id"] for m in ha["data"]["messages"]] == [m["id"] for m in hb["data"]["messages"]]

        # the viewer on a leaves: b's viewer hears the new total
        await va.close()
        assert await next_advancing(vb, clock) == {"code": 1, "msg": "成功", "cmd": "Total", "data": {"total": 1}}
        assert (await vb.call("Total", activityId="1001"))["data"] == {"total": 1}
    finally:
        await va.close()
        await vb.close()


@pytest_twisted.ensureDeferred
async def test_a_crowd_arriving_at_once_costs_one_total_per_second(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node)
    first = await Viewer.connect(node)
    crowd = []
    try:
        await first.open()
        assert (await first.next())["data"] == {"total": 1}
        for _ in range(20):
            viewer = await Viewer.connect(node)
            crowd.append(viewer)
            viewer.send("Open", activityId="1001")
        for viewer in crowd:
            assert (await viewer.next())["cmd"] == "Open"
        await sleep(0.2)
        # within the second after the first push: nothing more
        assert first.pending == 0 and all(v.pending == 0 for v in crowd)
        clock.advance(1)
        # one push, with the final number, to every viewer
        assert await first.next() == {"code": 1, "msg": "成功", "cmd": "Total", "data": {"total": 21}}
        for viewer in crowd:
            assert (await viewer.next())["data"] == {"total": 21}
        await sleep(0.2)
        clock.advance(1)  # no change meanwhile: no push at the end of the next second
        await first.no_message(0.2)

        # half of them leave at once: again one push per second
        for viewer in crowd[:10]:
            await viewer.close()
        await sleep(0.2)
        got = [await first.next()]
        clock.advance(1)
        await sleep(0.2)
        while first.pending:
            got.append(await first.next())
        assert len(got) <= 2 and got[-1]["data"] == {"total": 11}
        # and once all is quiet the room's state is gone: nothing grows with past rooms
        clock.advance(1)
        clock.advance(1)
        await sleep(0.1)
        assert node.factories["live"].context.totals.pending() == 0
    finally:
        await first.close()
        for viewer in crowd:
            await viewer.close()


@pytest_twisted.ensureDeferred
async def test_switching_activity_moves_the_viewer_between_rooms(nodes, wechat, clock):
    node = await start_live(nodes, wechat, clock)
    await put_activity(node, "1001")
    await put_activity(node, "2002")
    v1, v2 = await Viewer.connect(node), await Viewer.connect(node)
    try:
        await v1.open("1001")
        await v1.next()
        await v2.open("2002")
        await v2.next()
        assert (await v2.call("Open", activityId="1001"))["data"]["total"] == 2
        assert (await v2.call("Total", activityId="2002"))["data"] == {"total": 0}
        token = await v1.login()
        assert (await next_advancing(v1, clock))["data"] == {"total": 2}
        v1.send("Message", activityId="1001", msg="hello", token=token)
        assert (await v1.next())["cmd"] == "Message"
        got = await v2.next()
        while got["cmd"] == "Total":
            got = await v2.next()
        assert got["msg"] == "hello"
    finally:
        await v1.close()
        await v2.close()
