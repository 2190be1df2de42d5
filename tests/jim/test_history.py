"""cmd 19 type 1: history paging (LIMIT offset,count) and time ranges, on a controlled clock."""

import pytest_twisted
from twisted.internet import task

from tests.jim.helpers import ask, chat, extra, login, register

T0_S = 1_600_000_000


async def history(client, **query):
    return await ask(client, {"cmd": 19, "type": "1", "userId": "u1", **query})


def contents(answer, key="u2", where="friends"):
    return [m["content"] for m in answer["data"][where].get(key, [])]


@pytest_twisted.ensureDeferred
async def test_history_pages_and_time_ranges(nodes):
    clock = task.Clock()
    clock.advance(T0_S)
    node = await nodes.start("a", extra(max_page_size=4), clock=clock)
    await register(node, "u1")
    await register(node, "u2")
    u1, u2 = await login(node, "tok-u1"), await login(node, "tok-u2")
    for i in range(6):  # message i is received at T0 + (i + 1) s, alternating senders
        clock.advance(1)
        sender, receiver = (u1, u2) if i % 2 == 0 else (u2, u1)
        names = ("u1", "u2") if i % 2 == 0 else ("u2", "u1")
        assert (await ask(sender, chat(names[0], names[1], f"m{i}")))["code"] == 10000
        assert (await receiver.next_json())["data"]["content"] == f"m{i}"
    t = lambda i: (T0_S + i + 1) * 1000  # noqa: E731

    answer = await history(u1, fromUserId="u2")
    assert answer["code"] == 10018 and answer["command"] == 20
    assert answer["msg"] == "get user message ok! 获取历史消息成功!"
    assert contents(answer) == ["m0", "m1", "m2", "m3"]  # oldest first, capped at max_page_size
    assert answer["data"]["userid"] == "u1" and answer["data"]["groups"] == {}
    both_ways = answer["data"]["friends"]["u2"]
    assert [(m["from"], m["to"]) for m in both_ways[:2]] == [("u1", "u2"), ("u2", "u1")]

    assert contents(await history(u1, fromUserId="u2", offset=2, count=2)) == ["m2", "m3"]
    assert contents(await history(u1, fromUserId="u2", offset=5, count=2)) == ["m5"]
    assert contents(await history(u1, fromUserId="u2", offset=9, count=2)) == []
    assert contents(await history(u1, fromUserId="u2", count=100)) == ["m0", "m1", "m2", "m3"]
    assert contents(await history(u1, fromUserId="u2", count=0)) == []
    # time ranges are inclusive milliseconds of the server's receive time
    assert contents(await history(u1, fromUserId="u2", beginTime=t(2), endTime=t(4))) == ["m2", "m3", "m4"]
    assert contents(await history(u1, fromUserId="u2", beginTime=t(2) + 1)) == ["m3", "m4", "m5"]
    assert contents(await history(u1, fromUserId="u2", endTime=t(1) - 1)) == ["m0"]
    assert contents(await history(u1, fromUserId="u2", beginTime=t(1), endTime=t(5), offset=1, count=2)) == \
        ["m2", "m3"]
    # the other side sees the same conversation, keyed by its partner
    other = await ask(u2, {"cmd": 19, "type": 1, "userId": "u2", "fromUserId": "u1", "beginTime": str(t(5))})
    assert contents(other, key="u1") == ["m5"]
    # bad requests: J-IM's 10015
    for bad in ({"fromUserId": "u2", "beginTime": "yesterday"}, {"fromUserId": "u2", "offset": -1},
                {}, {"groupId": "nope"}):
        refused = await history(u1, **bad)
        assert refused["code"] == 10015 and refused["command"] == 20, bad
        assert refused["msg"] == "get user message failed! 获取用户消息失败!" and refused["data"]["reason"]
    await u1.close()
    await u2.close()


@pytest_twisted.ensureDeferred
async def test_offline_messages_filter_by_time_and_sender(nodes):
    clock = task.Clock()
    clock.advance(T0_S)
    node = await nodes.start("a", extra(), clock=clock)
    for user in ("u1", "u2", "u3"):
        await register(node, user)
    u2, u3 = await login(node, "tok-u2"), await login(node, "tok-u3")
    for i in range(4):
        clock.advance(1)
        sender, name = (u2, "u2") if i % 2 == 0 else (u3, "u3")
        assert (await ask(sender, chat(name, "u1", f"m{i}")))["code"] == 10001
    u1 = await login(node, "tok-u1")
    t = lambda i: (T0_S + i + 1) * 1000  # noqa: E731
    everything = await ask(u1, {"cmd": 19, "type": 2, "userId": "u1"})
    assert contents(everything, "u2") == ["m0", "m2"] and contents(everything, "u3") == ["m1", "m3"]
    late = await ask(u1, {"cmd": 19, "type": 0, "userId": "u1", "beginTime": t(2)})
    assert contents(late, "u2") == ["m2"] and contents(late, "u3") == ["m3"]
    left = await ask(u1, {"cmd": 19, "type": 2, "userId": "u1"})
    assert contents(left, "u2") == ["m0"] and contents(left, "u3") == ["m1"]
    for c in (u1, u2, u3):
        await c.close()
