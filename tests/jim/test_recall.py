"""cmd 15 recall: the message leaves history and every inbox still holding it, receivers get cmd 16."""

import pytest_twisted
from twisted.internet import task

from tests.helpers import sleep
from tests.jim.helpers import ask, chat, extra, login, post, register


async def history_ids(client, user, **where):
    answer = await ask(client, {"cmd": 19, "type": 1, "userId": user, **where})
    return [m["id"] for bucket in answer["data"]["friends"].values() for m in bucket] + \
        [m["id"] for bucket in answer["data"]["groups"].values() for m in bucket]


@pytest_twisted.ensureDeferred
async def test_recall_private_messages(nodes):
    node = await nodes.start("a", extra())
    for user in ("alice", "bob", "carol"):
        await register(node, user)
    alice, bob = await login(node, "tok-alice"), await login(node, "tok-bob")
    alice2 = await login(node, "tok-alice")  # alice's second device
    assert (await ask(alice, chat("alice", "bob", "oops")))["code"] == 10000
    assert (await ask(alice, chat("alice", "bob", "fine")))["code"] == 10000
    oops = (await bob.next_json())["data"]["id"]
    await bob.next_json()
    assert await history_ids(alice, "alice", fromUserId="bob") == [oops, (await history_ids(bob, "bob", fromUserId="alice"))[1]]

    # only the sender may recall
    refused = await ask(bob, {"cmd": 15, "id": oops})
    assert refused["code"] == 10020 and refused["command"] == 16 and refused["data"]["reason"]
    answer = await ask(alice, {"cmd": 15, "id": oops})
    assert answer == {"code": 10000, "command": 16, "msg": "ok 发送成功", "data": {"id": oops}}
    notice = {"command": 16, "data": {"chatType": 2, "cmd": 15, "from": "alice", "id": oops, "to": "bob"}}
    assert await bob.next_json() == notice
    assert await alice2.next_json() == notice  # the sender's other devices drop it too
    # not to the device that recalled: a notice would be written while its recall was handled,
    # so before the answer to its next request
    assert oops not in await history_ids(alice, "alice", fromUserId="bob")
    assert len(await history_ids(bob, "bob", fromUserId="alice")) == 1
    # recalled twice or unknown: 10002
    again = await ask(alice, {"cmd": 15, "id": oops})
    assert again["code"] == 10002 and again["command"] == 16
    assert (await ask(alice, {"cmd": 15}))["code"] == 10002

    # to an offline receiver, by the sender's own message id: the waiting copy goes too
    assert (await ask(alice, chat("alice", "carol", "wrong person", id="my-42")))["code"] == 10001
    assert (await ask(alice, chat("alice", "carol", "hi carol")))["code"] == 10001
    status, info = await post(node, "chatInfo", {"to": "carol", "from": "alice", "op": 1})
    assert info["data"]["unReadNum"] == 2
    answer = await ask(alice, {"cmd": 15, "id": "my-42"})
    assert answer["code"] == 10000 and len(answer["data"]["id"]) == 32
    status, info = await post(node, "chatInfo", {"to": "carol", "from": "alice", "op": 1})
    assert info["data"]["unReadNum"] == 1
    carol = await login(node, "tok-carol")
    waiting = await ask(carol, {"cmd": 19, "type": 0, "userId": "carol"})
    assert [m["content"] for m in waiting["data"]["friends"]["alice"]] == ["hi carol"]
    for c in (alice, alice2, bob, carol):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_recall_group_message_and_window(nodes):
    clock = task.Clock()
    clock.advance(1_700_000_000)
    node = await nodes.start("a", extra(insecure_login=True, default_groups=["100"], recall_window_s=60,
                                        heartbeat_timeout=0), clock=clock)
    alice = await login(node, query="username=alice&password=1")
    bob = await login(node, query="username=bob&password=1")
    assert (await alice.next_json())["command"] == 9
    group_chat = {"cmd": 11, "from": "alice", "chatType": 1, "group_id": "100", "content": "all hands"}
    assert (await ask(alice, group_chat))["code"] == 10000
    message = (await bob.next_json())["data"]
    assert (await ask(alice, {"cmd": 15, "id": message["id"]}))["code"] == 10000
    assert await bob.next_json() == {"command": 16, "data": {"chatType": 1, "cmd": 15, "from": "alice",
                                                            "groupId": "100", "group_id": "100",
                                                            "id": message["id"]}}
    assert await history_ids(bob, "bob", groupId="100") == []
    # past the window: refused, and the message stays
    assert (await ask(alice, {**group_chat, "content": "too late"}))["code"] == 10000
    late = (await bob.next_json())["data"]["id"]
    clock.advance(61)
    await sleep(0.05)
    refused = await ask(alice, {"cmd": 15, "id": late})
    assert refused["code"] == 10020 and "60" in refused["data"]["reason"]
    assert await history_ids(bob, "bob", groupId="100") == [late]
    await alice.close()
    await bob.close()
