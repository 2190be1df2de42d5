"""The customer-service flow end to end: HTTP registration, agent assignment, chat both ways,
offline messages pulled with cmd 19, and an agent served by a second node."""

import re

import pytest_twisted

from tests.helpers import sleep, wait_until
from tests.jim.helpers import ask, chat, extra, login, post, register

ID = re.compile(r"^[0-9a-f]{32}$")


@pytest_twisted.ensureDeferred
async def test_visitor_gets_an_online_agent_and_they_chat_both_ways(nodes):
    node = await nodes.start("a", extra())
    await register(node, "agent-busy", 1, nick="客服甲")
    await register(node, "agent-free", 1, nick="客服乙", avatar="http://img/a.png")
    busy = await login(node, "tok-agent-busy")
    free = await login(node, "tok-agent-free")
    # agent-busy already has an open conversation
    status, answer = await post(node, "getReceiver", {"senderId": "v0", "type": 0, "token": "tok-v0",
                                                      "receiverId": "agent-busy"})
    assert status == 200 and answer["data"]["id"] == "agent-busy"

    status, answer = await post(node, "getReceiver", {"senderId": "098f64aa0ac8ad53", "receiverId": "",
                                                      "nick": "访客", "avatar": "ggggfff", "terminal": "pc",
                                                      "token": "b92cecbf47a4f04f3", "type": 0})
    assert status == 200
    assert answer == {"code": 200, "msg": "success", "data": {
        "id": "agent-free", "nick": "客服乙", "avatar": "http://img/a.png", "status": "online", "sign": None,
        "terminal": "pc", "friends": None, "groups": None, "extras": None}}
    assert list(answer) == ["code", "msg", "data"]
    assert list(answer["data"]) == ["id", "nick", "avatar", "status", "sign", "terminal", "friends", "groups",
                                    "extras"]

    visitor = await login(node, "b92cecbf47a4f04f3")
    assert visitor.login == {"code": 10007, "command": 6, "msg": "ok 登录成功!", "data": {
        "token": "b92cecbf47a4f04f3",
        "user": {"avatar": "ggggfff", "id": "098f64aa0ac8ad53", "nick": "访客", "status": "online",
                 "terminal": "pc"}}}

    # visitor → agent: content object in, JSON string out; extras as given; the client's createTime kept
    ack = await ask(visitor, chat("098f64aa0ac8ad53", "agent-free", {"asd": "hell,你2好"}, cmd="11",
                                  extras={"nickName": "昵称", "headImg": "http://jjjj.img"}))
    assert ack == {"code": 10000, "command": 12, "msg": "ok 发送成功"}
    got = await free.next_json()
    assert got["command"] == 11 and set(got) == {"command", "data"}
    message = got["data"]
    assert ID.match(message.pop("id"))
    assert message == {"chatType": 2, "cmd": 11, "content": '{"asd":"hell,你2好"}', "createTime": 1568012384,
                       "extras": {"nickName": "昵称", "headImg": "http://jjjj.img"}, "from": "098f64aa0ac8ad53",
                       "msgType": 0, "to": "agent-free"}
    # keys in J-IM's (fastjson) order
    raw = free.received[-1]
    assert raw.index('"chatType"') < raw.index('"content"') < raw.index('"from"') < raw.index('"msgType"')

    # agent → visitor, string content and numeric strings as J-IM pages send them
    ack = await ask(free, {"cmd": 11, "from": "agent-free", "to": "098f64aa0ac8ad53", "chatType": "2",
                           "msgType": "0", "content": "您好，请问有什么可以帮您？"})
    assert ack["code"] == 10000
    got = (await visitor.next_json())["data"]
    assert got["content"] == "您好，请问有什么可以帮您？" and got["from"] == "agent-free" and got["chatType"] == 2
    assert isinstance(got["createTime"], int)
    # the busy agent saw none of it: the next thing it gets is this
    assert (await ask(free, chat("agent-free", "agent-busy", "marker")))["code"] == 10000
    assert (await busy.next_json())["data"]["content"] == "marker"

    # sticky: the same visitor gets the same agent again, even when another is less loaded
    status, answer = await post(node, "getReceiver", {"senderId": "098f64aa0ac8ad53", "type": 0})
    assert answer["data"]["id"] == "agent-free"
    for c in (busy, free, visitor):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_messages_to_an_offline_agent_wait_and_are_pulled_once(nodes):
    node = await nodes.start("a", extra())
    await register(node, "agent", 1, nick="客服")
    status, answer = await post(node, "getReceiver", {"senderId": "visitor", "type": 0, "token": "tok-visitor"})
    assert answer["data"]["id"] == "agent" and answer["data"]["status"] == "offline"  # nobody online: any agent
    visitor = await login(node, "tok-visitor")
    for i in range(3):
        ack = await ask(visitor, chat("visitor", "agent", {"n": i}))
        assert ack == {"code": 10001, "command": 12, "msg": "offline 用户不在线"}

    agent = await login(node, "tok-agent")
    # nothing is pushed at login, J-IM clients pull: a push would come before the answer below
    # type 2 reads them and leaves them in place
    kept = await ask(agent, {"cmd": 19, "type": "2", "userId": "agent", "fromUserId": "visitor"})
    assert kept["code"] == 10022 and kept["command"] == 20 and kept["msg"] == "ok! 拉取离线消息成功!"
    assert [m["content"] for m in kept["data"]["friends"]["visitor"]] == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert kept["data"]["groups"] == {} and kept["data"]["userid"] == "agent"
    again = await ask(agent, {"cmd": 19, "type": 2, "userId": "agent", "fromUserId": "visitor"})
    assert again["data"] == kept["data"]
    # type 0 takes them (paged), then they are gone
    first = await ask(agent, {"cmd": 19, "type": "0", "userId": "agent", "fromUserId": "visitor", "offset": 1,
                              "count": 2})
    assert first["code"] == 10016 and first["msg"] == "get user message ok! 获取离线消息成功!"
    assert [m["content"] for m in first["data"]["friends"]["visitor"]] == ['{"n":1}', '{"n":2}']
    rest = await ask(agent, {"cmd": 19, "type": "0", "userId": "agent"})
    assert [m["content"] for m in rest["data"]["friends"]["visitor"]] == ['{"n":0}']
    empty = await ask(agent, {"cmd": 19, "type": "0", "userId": "agent"})
    assert empty == {"code": 10016, "command": 20, "msg": "get user message ok! 获取离线消息成功!",
                     "data": {"friends": {}, "groups": {}, "userid": "agent"}}
    assert (await ask(agent, {"cmd": 19, "type": "2", "userId": "agent"}))["data"]["friends"] == {}
    # history still has all three
    history = await ask(agent, {"cmd": 19, "type": "1", "userId": "agent", "fromUserId": "visitor"})
    assert history["code"] == 10018 and len(history["data"]["friends"]["visitor"]) == 3
    # messages delivered live never wait in the inbox
    ack = await ask(visitor, chat("visitor", "agent", "live"))
    assert ack["code"] == 10000
    assert (await agent.next_json())["data"]["content"] == "live"
    await sleep(0.2)
    assert (await ask(agent, {"cmd": 19, "type": "2", "userId": "agent"}))["data"]["friends"] == {}
    await visitor.close()
    await agent.close()


@pytest_twisted.ensureDeferred
async def test_an_agent_on_a_second_node_is_assigned_and_served(nodes):
    a = await nodes.start("a", extra())
    b = await nodes.start("b", extra())
    await register(a, "agent-off", 1)
    await register(a, "agent-b", 1, nick="B客服")
    agent = await login(b, "tok-agent-b")  # the agent is connected to node b only
    status, answer = await post(a, "getReceiver", {"senderId": "visitor", "type": 0, "token": "tok-v"})
    assert answer["data"]["id"] == "agent-b" and answer["data"]["status"] == "online"
    visitor = await login(a, "tok-v")
    assert (await ask(visitor, chat("visitor", "agent-b", "hello from a")))["code"] == 10000
    got = await agent.next_json()
    assert got["data"]["content"] == "hello from a"
    # a recall made on node a reaches the agent on node b
    assert (await ask(visitor, chat("visitor", "agent-b", "wrong window")))["code"] == 10000
    wrong = (await agent.next_json())["data"]["id"]
    assert (await ask(visitor, {"cmd": 15, "id": wrong}))["code"] == 10000
    assert await agent.next_json() == {"command": 16, "data": {"chatType": 2, "cmd": 15, "from": "visitor",
                                                              "id": wrong, "to": "agent-b"}}
    assert (await ask(agent, chat("agent-b", "visitor", "hello from b")))["code"] == 10000
    assert (await visitor.next_json())["data"]["content"] == "hello from b"
    # counters agree across nodes: the agent replied (read, nothing pending), the visitor has not
    status, info = await post(a, "chatInfo", {"to": "agent-b", "from": "visitor", "op": 1, "isNewMember": 0,
                                              "isConcurrent": 0})
    assert info["data"] == {"to": "agent-b", "from": "visitor", "pendingReplyNum": 0, "lastedContactsNum": 1,
                            "allContactsNum": 1, "unReadNum": 0}
    status, info = await post(b, "chatInfo", {"to": "visitor", "from": "agent-b", "op": 1})
    assert info["data"]["unReadNum"] == 1 and info["data"]["pendingReplyNum"] == 1
    await agent.close()
    await sleep(0.2)
    assert (await ask(visitor, chat("visitor", "agent-b", "still there?")))["code"] == 10001
    await visitor.close()


@pytest_twisted.ensureDeferred
async def test_a_node_stopping_says_goodbye_and_cleans_up(nodes):
    from twisted.logger import globalLogPublisher

    failures = []

    def observe(event):
        if event.get("log_failure") is not None or event.get("log_level").name in ("error", "critical"):
            failures.append(event)

    node = await nodes.start("a", extra(insecure_login=True, default_groups=["100"]))
    clients = [await login(node, query=f"username=u{i}&password=1") for i in range(3)]
    globalLogPublisher.addObserver(observe)
    try:
        await nodes.stop(node)
        for client in clients:
            code, _ = await client.wait_closed()
            assert code == 1001
    finally:
        globalLogPublisher.removeObserver(observe)
    assert failures == []


@pytest_twisted.ensureDeferred
async def test_the_login_answer_is_the_first_frame_even_with_a_message_arriving_during_login(nodes):
    """A chat sent to a user whose connection is registered but not yet answered (cmd 6) waits until
    the answer is written: J-IM clients ignore what comes before it (issue 16: 156 of 150 logins)."""
    from twisted.internet import defer

    node = await nodes.start("a", extra())
    await register(node, "v1")
    await register(node, "agent", 1)
    sender = await login(node, "tok-v1")
    jim = node.factories["jim"].context
    held, release = [], defer.Deferred()
    real_user = jim.user

    async def slow_user(user):  # the login's last lookup before it answers waits for the test
        if user == "agent" and not held:
            held.append(user)
            await release
        return await real_user(user)

    jim.user = slow_user
    from tests.wsclient import connect
    from tests.conftest import ws_url

    agent = await connect(ws_url(node, "jim", "/?token=tok-agent"))
    await wait_until(lambda: held, what="the agent's login to reach its last step")
    # the agent is online (its presence is registered): the chat is delivered live, now
    assert (await ask(sender, chat("v1", "agent", "during login")))["code"] == 10000
    release.callback(None)
    first = await agent.next_json()
    assert first["command"] == 6 and first["code"] == 10007
    second = await agent.next_json()
    assert second["command"] == 11 and second["data"]["content"] == "during login"
    await agent.close()
    await sender.close()


@pytest_twisted.ensureDeferred
async def test_a_message_published_while_the_bus_was_away_is_pushed_once_it_is_back(nodes, redis):
    """cmd 12 says 10000 (the receiver is online), but node b's subscriber is reconnecting, so the
    push reaches nobody (chaos defect 2). A jim client pulls its inbox only at login; once the bus
    is back, the node pushes what the inbox kept instead of leaving it for the next login."""
    a = await nodes.start("a", extra())
    b = await nodes.start("b", extra())
    await register(a, "sender")
    await register(a, "receiver")
    sender = await login(a, "tok-sender")
    receiver = await login(b, "tok-receiver")
    redis["client"].execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    answer = await ask(sender, chat("sender", "receiver", "while the bus was away"))
    assert (answer["command"], answer["code"]) == (12, 10000)
    pushed = await receiver.next_json(timeout=10)
    assert (pushed["command"], pushed["data"]["content"]) == (11, "while the bus was away")
    # confirmed like any push: it is not pulled again
    await wait_until(lambda: _inbox_is_empty(b, "receiver"), what="the pushed message to be confirmed")
    pulled = await ask(receiver, {"cmd": 19, "type": 0, "userId": "receiver"})
    assert pulled["data"] == {"friends": {}, "groups": {}, "userid": "receiver"}
    for client in (sender, receiver):
        await client.close()


async def _inbox_is_empty(node, user) -> bool:
    return await node.hub.inbox.count("jim", user) == 0
