"""J-IM's demo page against us (username/password login, cmd 6 pushed, cmd 17/19 type "0",
group chat to "100" with group_id, cmd 3, cmd 13), group join notices and offline group messages."""

import pytest_twisted

from heihei.config import JimSettings
from tests.conftest import ws_url
from tests.helpers import sleep
from tests.jim.helpers import ask, chat, extra, login, register, until
from tests.wsclient import connect

DEMO = extra(insecure_login=True, default_groups=["100"])
AVATAR = JimSettings().default_avatar


def demo_group_message(user, text, created=1700000000000):
    # exactly as J-IM's page/index.html builds it (string numbers, group_id)
    return ('{"from": "%s","createTime":%d,"cmd":11,"group_id":"100","chatType":"1","msgType":"0",'
            '"content": "%s"}' % (user, created, text))


@pytest_twisted.ensureDeferred
async def test_the_jim_demo_page_flow(nodes):
    node = await nodes.start("a", DEMO)
    # the page sends cmd 17 and 19 in onopen, before the pushed cmd 6 arrives
    alice = await connect(ws_url(node, "jim", "?username=alice&password=123"))
    alice.send('{"cmd":17,"type":"0","userid":"alice"}')
    alice.send('{"cmd":19,"type":"0","userId":"alice"}')
    # every user object has an avatar: the page draws <img src=avatar> for each one
    assert await alice.next_json() == {"code": 10007, "command": 6, "msg": "ok 登录成功!", "data": {
        "user": {"avatar": AVATAR, "id": "alice", "nick": "alice", "status": "online", "terminal": "ws"}}}
    me = await alice.next_json()
    assert me == {"code": 10005, "command": 18, "msg": "ok 获取所有在线用户信息成功!", "data": {
        "avatar": AVATAR, "friends": [{"group_id": "friends", "name": "我的好友", "users": []}],
        "groups": [{"group_id": "100", "name": "100",
                    "users": [{"avatar": AVATAR, "id": "alice", "nick": "alice", "status": "online",
                               "terminal": "ws"}]}],
        "id": "alice", "nick": "alice", "status": "online", "terminal": "ws"}}
    assert AVATAR.startswith("data:image/svg+xml,") and '"' not in AVATAR and "'" not in AVATAR
    offline = await alice.next_json()
    assert offline == {"code": 10016, "command": 20, "msg": "get user message ok! 获取离线消息成功!",
                       "data": {"friends": {}, "groups": {}, "userid": "alice"}}

    bob = await login(node, path="", query="username=bob&password=123")
    notice = await alice.next_json()  # the page refreshes its online list on cmd 9
    assert notice == {"command": 9, "data": {"group": "100", "user": {"id": "bob", "nick": "bob"}}}
    me = await ask(alice, '{"cmd":17,"type":"0","userid":"alice"}')
    assert [u["id"] for u in me["data"]["groups"][0]["users"]] == ["alice", "bob"]

    # group chat as the page sends it
    ack = await ask(alice, demo_group_message("alice", "hello everyone"))
    assert ack == {"code": 10000, "command": 12, "msg": "ok 发送成功"}
    got = await bob.next_json()
    assert got["command"] == 11
    message = got["data"]
    message.pop("id")
    assert message == {"chatType": 1, "cmd": 11, "content": "hello everyone", "createTime": 1700000000000,
                       "from": "alice", "groupId": "100", "group_id": "100", "msgType": 0}
    # private chat as the page sends it
    private = ('{"from": "bob","to": "alice","cmd":11,"createTime":1700000000001,"chatType":"2",'
               '"msgType": "0","content": "hi alice"}')
    assert (await ask(bob, private))["code"] == 10000
    assert (await alice.next_json())["data"]["content"] == "hi alice"
    # the page's auth and heartbeat buttons
    auth = await ask(alice, '{"cmd":3,"token":"校验码"}')
    assert auth == {"code": 10010, "command": 4, "msg": "auth failed! 鉴权失败!"}
    beat = await ask(alice, '{"cmd":13,"hbbyte":"-127"}')
    assert beat["command"] == 13 and beat["data"]["hbbyte"] == -128 and isinstance(beat["data"]["createTime"], int)
    assert list(beat) == ["command", "data"]
    # the page's history buttons
    history = await ask(alice, '{"cmd":19,"type":"1","fromUserId":"bob","userId":"alice"}')
    assert history["code"] == 10018 and [m["content"] for m in history["data"]["friends"]["bob"]] == ["hi alice"]
    history = await ask(alice, '{"cmd":19,"type":"1","groupId":"100","userId":"alice"}')
    assert [m["content"] for m in history["data"]["groups"]["100"]] == ["hello everyone"]

    # carol was here once, then left: group messages wait for her
    carol = await login(node, query="username=carol&password=x")
    assert (await alice.next_json())["command"] == 9
    assert (await bob.next_json())["command"] == 9
    await carol.close()
    for c in (alice, bob):
        exit_notice = await c.next_json()
        assert exit_notice == {"command": 10, "data": {"group": "100", "user": {"id": "carol", "nick": "carol"}}}
    assert (await ask(bob, demo_group_message("bob", "carol, you missed this")))["code"] == 10000
    await alice.next_json()
    carol = await login(node, query="username=carol&password=x")
    offline = await ask(carol, '{"cmd":19,"type":"0","userId":"carol"}')
    assert offline["code"] == 10016
    assert [m["content"] for m in offline["data"]["groups"]["100"]] == ["carol, you missed this"]
    assert offline["data"]["groups"]["100"][0]["group_id"] == "100"
    # cmd 14 closes the connection after answering
    close = await ask(carol, '{"cmd":14}')
    assert close == {"code": 10021, "command": 14, "msg": "close ok! 关闭成功"}
    assert (await carol.wait_closed())[0] == 1000
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_join_group_command_and_membership(nodes):
    node = await nodes.start("a", extra(insecure_login=True, default_groups=["100"]))
    alice = await login(node, query="username=alice&password=1")
    bob = await login(node, query="username=bob&password=1")
    await until(alice, 9)
    # a group that does not exist cannot be joined (open_groups is off)
    refused = await ask(alice, {"cmd": 7, "group_id": "secret"})
    assert refused["code"] == 10012 and refused["command"] == 8 and refused["data"]["result"] == 2
    assert refused["msg"] == "join group failed! 加入群组失败!"
    # nor can a group one is not a member of
    await node.hub.groups.create("jim", {"name": "VIP"}, ["bob"], group_id="vip")
    refused = await ask(alice, {"cmd": 7, "groupId": "vip"})
    assert refused["code"] == 10012 and refused["data"] == {"group": "vip", "reason": "not a member of group vip",
                                                            "result": 0}
    # sending to it is refused too, and nothing is delivered
    refused = await ask(alice, {"cmd": 11, "from": "alice", "chatType": 1, "groupId": "vip", "content": "let me in"})
    assert refused["code"] == 10002 and refused["command"] == 12
    # bob became a member after logging in: cmd 7 binds his connection, members online are told
    await node.hub.groups.add_members("jim", "vip", ["carol"])
    carol = await login(node, query="username=carol&password=1")  # carol's login joined vip's room
    await until(alice, 9)
    await until(bob, 9)
    joined = await ask(bob, {"cmd": 7, "group_id": "vip"})
    assert joined == {"code": 10011, "command": 8, "msg": "join group ok! 加入群组成功!",
                      "data": {"group": "vip", "result": 1}}
    assert await carol.next_json() == {"command": 9, "data": {"group": "vip", "user": {"id": "bob", "nick": "bob"}}}
    # joining again changes nothing: no second notice (it would come before carol's answer)
    assert (await ask(bob, {"cmd": 7, "group_id": "vip"}))["code"] == 10011
    assert (await ask(carol, {"cmd": 11, "from": "carol", "chatType": 1, "groupId": "vip", "content": "vip only"}))[
        "code"] == 10000
    assert (await bob.next_json())["data"]["content"] == "vip only"
    # not to alice, who is not a member: the next thing she gets is this
    assert (await ask(bob, chat("bob", "alice", "marker")))["code"] == 10000
    assert (await alice.next_json())["data"]["content"] == "marker"
    for c in (alice, bob, carol):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_open_groups_lets_cmd_7_create_and_notify(nodes):
    node = await nodes.start("a", extra(insecure_login=True, open_groups=True))
    alice = await login(node, query="username=alice&password=1")
    bob = await login(node, query="username=bob&password=1")
    assert (await ask(alice, {"cmd": 7, "group_id": "room1"}))["code"] == 10011
    assert (await ask(bob, {"cmd": 7, "group_id": "room1"}))["code"] == 10011
    assert await alice.next_json() == {"command": 9, "data": {"group": "room1", "user": {"id": "bob", "nick": "bob"}}}
    await bob.close()
    assert await alice.next_json() == {"command": 10, "data": {"group": "room1", "user": {"id": "bob", "nick": "bob"}}}
    await sleep(0.1)
    assert await node.hub.groups.members("jim", "room1") == ["alice", "bob"]
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_user_objects_carry_an_avatar_for_the_page(nodes):
    # the page renders <img src="+user.avatar+"> for every cmd 17 type 0 user: without the key it
    # drew broken images and asked the page's own server for ".../undefined"
    node = await nodes.start("a", extra(insecure_login=True, default_groups=["100"]))
    await register(node, "agent", 1, nick="客服", avatar="http://img/a.png")
    agent = await login(node, "tok-agent")
    assert agent.login["data"]["user"]["avatar"] == "http://img/a.png"
    alice = await connect(ws_url(node, "jim", "?username=alice&password=123"))
    assert (await alice.next_json())["data"]["user"]["avatar"] == AVATAR
    me = await ask(alice, '{"cmd":17,"type":"0","userid":"alice"}')
    assert me["data"]["avatar"] == AVATAR
    assert {u["id"]: u["avatar"] for u in me["data"]["groups"][0]["users"]} == {"agent": "http://img/a.png",
                                                                                "alice": AVATAR}
    # the seed's own shapes keep their unknown avatars as they were
    ack = await ask(alice, '{"from": "alice","to": "agent","cmd":11,"createTime":1700000000000,"chatType":"2",'
                           '"msgType": "0","content": "hi"}')
    assert ack["code"] == 10000
    assert (await until(agent, 11))["data"]["content"] == "hi"  # after alice's cmd 9
    friends = await ask(agent, '{"cmd":17,"type":1,"userId":"agent"}')
    assert friends == {"code": 200, "command": 18, "data": [{"id": "alice", "terminal": "ws"}], "msg": "success "}
    # default_avatar = "" leaves the key out
    plain = await nodes.start("b", extra(insecure_login=True, default_groups=["100"], default_avatar=""))
    bob = await connect(ws_url(plain, "jim", "?username=bob&password=123"))
    assert "avatar" not in (await bob.next_json())["data"]["user"]
    me = await ask(bob, '{"cmd":17,"type":"0","userid":"bob"}')
    assert {u["id"]: u.get("avatar") for u in me["data"]["groups"][0]["users"]} == {
        "agent": "http://img/a.png", "alice": None, "bob": None}
    for c in (agent, alice, bob):
        await c.close()
