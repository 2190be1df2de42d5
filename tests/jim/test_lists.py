"""cmd 17 friend list (type 1) and detail (type 2) with pullType/searchKey, and the chatInfo
counters of /im/vanke/chatInfo agreeing with them."""

import re

import pytest_twisted
from twisted.internet import task

from tests.helpers import sleep
from tests.jim.helpers import ask, chat, extra, login, post, register

DAY_S = 24 * 3600


async def detail(client, user, **extras):
    answer = await ask(client, {"cmd": 17, "type": "2", "userId": user, "extras": extras})
    assert answer["code"] == 200 and answer["command"] == 18 and answer["msg"] == "success ", answer
    return answer["data"]


async def chat_info(node, to, frm, op=1, new=0, concurrent=0):
    status, answer = await post(node, "chatInfo", {"to": to, "from": frm, "op": op, "isNewMember": new,
                                                   "isConcurrent": concurrent})
    assert status == 200, answer
    assert list(answer["data"]) == ["to", "from", "pendingReplyNum", "lastedContactsNum", "allContactsNum",
                                    "unReadNum"]
    return answer["data"]


@pytest_twisted.ensureDeferred
async def test_friend_list_and_detail_match_chat_info(nodes):
    clock = task.Clock()
    clock.advance(1_600_000_000)
    node = await nodes.start("a", extra(heartbeat_timeout=0), clock=clock)  # days pass in this test
    await register(node, "agent", 1, nick="客服小王", avatar="http://img/agent.png")
    await register(node, "v1", 0, nick="栗子")
    await register(node, "v2", 0, nick="Chestnut")
    await register(node, "v3", 0)
    agent = await login(node, "tok-agent")
    v1, v2 = await login(node, "tok-v1"), await login(node, "tok-v2")

    # an old conversation with v3 (assigned three days ago, one message)
    status, answer = await post(node, "getReceiver", {"senderId": "v3", "type": 0, "receiverId": "agent"})
    assert answer["data"]["id"] == "agent"
    v3 = await login(node, "tok-v3")
    assert (await ask(v3, chat("v3", "agent", "old question")))["code"] == 10000
    await agent.next_json()
    await v3.close()
    clock.advance(3 * DAY_S)
    await sleep(0.1)  # presence refreshes on the clock's tick

    for text in ("hello", "anyone?"):
        assert (await ask(v1, chat("v1", "agent", {"text": text})))["code"] == 10000
        await agent.next_json()
    assert (await ask(v2, chat("v2", "agent", "price?")))["code"] == 10000
    await agent.next_json()
    clock.advance(1)
    assert (await ask(agent, chat("agent", "v2", "100万")))["code"] == 10000  # replying reads the chat
    await v2.next_json()

    friends = await ask(agent, {"cmd": 17, "type": "1", "userId": "agent"})
    assert friends == {"code": 200, "command": 18, "msg": "success ", "data": [
        {"id": "v2", "nick": "Chestnut", "terminal": "pc"},
        {"id": "v1", "nick": "栗子", "terminal": "pc"},
        {"id": "v3", "terminal": "pc"}]}

    everyone = await detail(agent, "agent", pullType=1, searchKey="")
    assert everyone["userId"] == "agent" and everyone["nickname"] == "客服小王"
    assert everyone["avatar"] == "http://img/agent.png"
    assert [f["userId"] for f in everyone["friends"]] == ["v2", "v1", "v3"]
    by_id = {f["userId"]: f for f in everyone["friends"]}
    assert list(by_id["v1"]) == ["avatar", "historyMessage", "nickname", "unReadNum", "userId"]
    assert by_id["v1"]["nickname"] == "栗子" and by_id["v3"]["nickname"] == "" and by_id["v3"]["avatar"] == ""
    assert [m["content"] for m in by_id["v1"]["historyMessage"]] == ['{"text":"hello"}', '{"text":"anyone?"}']
    assert [m["content"] for m in by_id["v2"]["historyMessage"]] == ["price?", "100万"]
    assert re.match("^[0-9a-f]{32}$", by_id["v2"]["historyMessage"][0]["id"])
    assert {f: by_id[f]["unReadNum"] for f in by_id} == {"v1": 2, "v2": 0, "v3": 1}
    waiting = await detail(agent, "agent", pullType=2)
    assert [f["userId"] for f in waiting["friends"]] == ["v1", "v3"]
    recent = await detail(agent, "agent", pullType=3)
    assert [f["userId"] for f in recent["friends"]] == ["v2", "v1"]
    assert [f["userId"] for f in (await detail(agent, "agent", searchKey="栗"))["friends"]] == ["v1"]
    assert [f["userId"] for f in (await detail(agent, "agent", searchKey="chest"))["friends"]] == ["v2"]
    assert [f["userId"] for f in (await detail(agent, "agent", pullType=2, searchKey="v3"))["friends"]] == ["v3"]

    # chatInfo: the same numbers
    info = await chat_info(node, "agent", "v1")
    assert info == {"to": "agent", "from": "v1", "pendingReplyNum": len(waiting["friends"]),
                    "lastedContactsNum": len(recent["friends"]), "allContactsNum": len(friends["data"]),
                    "unReadNum": by_id["v1"]["unReadNum"]}
    assert (await chat_info(node, "agent", "v3"))["unReadNum"] == 1
    # op 2: the agent opened the chat with v1
    assert (await chat_info(node, "agent", "v1", op=2))["unReadNum"] == 0
    assert {f["userId"]: f["unReadNum"] for f in (await detail(agent, "agent"))["friends"]}["v1"] == 0
    # a message arriving while the chat is on screen (isConcurrent) is read at once
    assert (await ask(v1, chat("v1", "agent", "ok")))["code"] == 10000
    await agent.next_json()
    await sleep(0.1)  # the agent's pong confirms it ...
    clock.advance(1)  # ... and confirmed entries leave the inbox in a batch on the node's clock
    await sleep(0.1)
    assert (await chat_info(node, "agent", "v1"))["unReadNum"] == 1
    assert (await chat_info(node, "agent", "v1", concurrent=1))["unReadNum"] == 0
    # a new member reported by the app joins the list
    info = await chat_info(node, "agent", "v9", new=1)
    assert info["allContactsNum"] == 4 and info["unReadNum"] == 0
    ids = [f["id"] for f in (await ask(agent, {"cmd": 17, "type": 1, "userId": "agent"}))["data"]]
    assert ids[0] == "v9" and len(ids) == 4
    # pulling offline messages (cmd 19 type 0) reads them
    await agent.close()
    await sleep(0.1)
    assert (await ask(v1, chat("v1", "agent", "one")))["code"] == 10001
    assert (await ask(v1, chat("v1", "agent", "two")))["code"] == 10001
    assert (await chat_info(node, "agent", "v1"))["unReadNum"] == 2
    agent = await login(node, "tok-agent")
    pulled = await ask(agent, {"cmd": 19, "type": 0, "userId": "agent", "fromUserId": "v1", "count": 1})
    assert [m["content"] for m in pulled["data"]["friends"]["v1"]] == ["one"]
    assert (await chat_info(node, "agent", "v1"))["unReadNum"] == 1
    # bad requests: 10004
    for bad in ({"type": 2, "userId": "v1"}, {"type": 2, "userId": "agent", "extras": {"pullType": 9}},
                {"type": 5, "userId": "agent"}, {"type": 1}):
        refused = await ask(agent, {"cmd": 17, **bad})
        assert refused["code"] == 10004 and refused["command"] == 18 and refused["data"]["reason"], bad
    for c in (agent, v1, v2):
        await c.close()
