"""The boss WebSocket protocol end to end: real nodes, real Redis, real WebSocket clients."""

import json

import pytest
import pytest_twisted

from heihei.core.model import group_conversation
from tests.boss.conftest import boss_settings, check_delivery, inputs_done, login, ticket
from tests.conftest import ws_url
from tests.helpers import inbox_holds, sleep, wait_until
from tests.wsclient import connect

EXT = json.dumps({"sender": "张_三", "senderAvartar": "http://a.example/x_y.png",
                  "conversation": "老板_六六", "note": "a_group_b and c_unicast_d"}, ensure_ascii=False)


@pytest_twisted.ensureDeferred
async def test_two_users_chat_both_ways_with_underscores_in_text_and_extension(nodes):
    node = await nodes.start("a", boss_settings())
    alice, bob = await login(node, "1001"), await login(node, "1002")
    text = "hi_there_unicast_ friend_group_ :)"
    alice.send(f"text_1002_{text}_unicast_{EXT}")
    check_delivery(await bob.next(), "text", "1001", text, "unicast", "1001", EXT)
    bob.send("emotion_1001_[smile]_unicast_abc_def")
    check_delivery(await alice.next(), "emotion", "1002", "[smile]", "unicast", "1002", "abc_def")
    # no extension at all: the frame still has its (empty) last field
    bob.send("picture_1001_http://cdn.example/p_1.jpg_unicast")
    check_delivery(await alice.next(), "picture", "1002", "http://cdn.example/p_1.jpg", "unicast", "1002", "")
    for kind in ("video", "audio"):
        alice.send(f"{kind}_1002_http://cdn.example/{kind}_1.bin_unicast_{EXT}")
        check_delivery(await bob.next(), kind, "1001", f"http://cdn.example/{kind}_1.bin", "unicast", "1001", EXT)
    # no echo, no acknowledgement: they would have been written while alice's frames were handled,
    # before bob read the last of them and sent this
    bob.send("text_1001_marker_unicast_")
    check_delivery(await alice.next(), "text", "1002", "marker", "unicast", "1002", "")
    # delivered means confirmed: the inboxes are empty
    await inbox_holds(node, "boss", "1002", 0)
    await inbox_holds(node, "boss", "1001", 0)
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_wsim_entry_speaks_the_same_protocol(nodes):
    node = await nodes.start("a", boss_settings())
    alice = await login(node, "1", path="/wsim/entry")
    bob = await login(node, "2", path="/entry")
    alice.send("text_2_hello_unicast_")
    check_delivery(await bob.next(), "text", "1", "hello", "unicast", "1", "")
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_group_chat_with_three_members_across_two_nodes(nodes):
    a = await nodes.start("a", boss_settings())
    b = await nodes.start("b", boss_settings())
    group = await a.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2", "3"])
    one, two = await login(a, "1"), await login(a, "2")
    three = await login(b, "3")
    one.send(f"text_{group}_hello_all_group_{EXT}")
    for client in (two, three):
        check_delivery(await client.next(), "text", "1", "hello_all", "group", group, EXT)
    three.send(f"picture_{group}_http://x/p.jpg_group")
    for client in (one, two):
        check_delivery(await client.next(), "picture", "3", "http://x/p.jpg", "group", group, "")
    # a member list query answers from either node; and the senders got no copy of their own
    # messages: a copy is written while the sender's frame is handled, so before these answers
    for sender in (one, three):
        sender.send(f"members_{group}")
        assert await sender.next() == f"members_{group}_[\"1\",\"2\",\"3\"]"
    for c in (one, two, three):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_offline_messages_arrive_in_order_after_reconnect(nodes):
    node = await nodes.start("a", boss_settings())
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    alice = await login(node, "1")
    bob = await login(node, "2")
    await bob.close()
    await wait_until(lambda: not node.hub.presence.local("boss", "2"), what="bob's disconnection handled")
    sent = []
    for i in range(12):
        if i % 3 == 2:
            alice.send(f"text_{group}_group_{i}_group_{{\"n\":{i}}}")
            sent.append(("group", f"group_{i}", group))
        else:
            alice.send(f"text_2_m_{i}_unicast_{{\"n\":{i}}}")
            sent.append(("unicast", f"m_{i}", "1"))
    await inputs_done(alice)
    # 1:1 messages wait in the inbox; group messages once in the group's log (docs/groups.md)
    assert await node.hub.inbox.count("boss", "2") == 8
    bob = await login(node, "2", expect_early=12)
    # the inbox first, then each group from the member's cursor: every conversation in order
    numbered = [(s, i) for i, s in enumerate(sent)]
    expected = [x for x in numbered if x[0][0] == "unicast"] + [x for x in numbered if x[0][0] == "group"]
    for frame, ((type_, content, group_id), i) in zip(bob.early, expected):
        check_delivery(frame, "text", "1", content, type_, group_id, f'{{"n":{i}}}')
    # a live message after the stored ones, and nothing twice
    alice.send("text_2_live_unicast_")
    check_delivery(await bob.next(), "text", "1", "live", "unicast", "1", "")
    # a copy of any of them would come before a later message
    alice.send("text_2_end_unicast_")
    check_delivery(await bob.next(), "text", "1", "end", "unicast", "1", "")
    await inbox_holds(node, "boss", "2", 0)
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_messages_survive_a_drop_during_delivery(nodes):
    """A connection that drops before confirming keeps its messages for the next login."""
    node = await nodes.start("a", boss_settings())
    alice = await login(node, "1")
    for i in range(5):
        alice.send(f"text_2_m{i}_unicast_")
    await inputs_done(alice)
    bob = await connect(ws_url(node, "boss", "/entry"))
    bob.protocol.transport.pauseProducing()  # reads nothing, so answers no ping
    bob.send(f"login_2_{ticket('2')}")
    await sleep(0.3)
    bob.protocol.transport.abortConnection()
    await bob.wait_closed()
    await sleep(0.2)
    assert await node.hub.inbox.count("boss", "2") == 5
    bob = await login(node, "2", expect_early=5)
    assert [f.split("_")[2] for f in bob.early] == [f"m{i}" for i in range(5)]
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_members_and_records_queries(nodes):
    node = await nodes.start("a", boss_settings())
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2", "10"])
    alice, bob = await login(node, "1"), await login(node, "2")
    alice.send(f"text_{group}_first_group_")
    await bob.next()
    bob.send(f"text_{group}_second_group_x")
    await alice.next()
    alice.send("text_2_private_unicast_e")
    await bob.next()

    alice.send(f"members_{group}")
    assert await alice.next() == f"members_{group}_[\"1\",\"2\",\"10\"]"

    alice.send(f"records_{group}_0")
    answer = await alice.next()
    prefix = f"records_{group}_0_"
    assert answer.startswith(prefix)
    frames = json.loads(answer[len(prefix):])
    assert len(frames) == 2
    check_delivery(frames[0], "text", "1", "first", "group", group, "")
    check_delivery(frames[1], "text", "2", "second", "group", group, "x")
    # the 1:1 conversation, from either side, with an explicit type
    bob.send("records_1_0_unicast")
    frames = json.loads((await bob.next())[len("records_1_0_"):])
    assert len(frames) == 1
    check_delivery(frames[0], "text", "1", "private", "unicast", "1", "e")
    # newer than timet: nothing is newer than now
    t = check_delivery(frames[0], "text", "1", "private", "unicast", "1", "e")
    bob.send(f"records_1_{t}")
    assert await bob.next() == f"records_1_{t}_[]"
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_records_are_bounded_to_the_newest(nodes):
    node = await nodes.start("a", boss_settings(records_max_count=3, rate_burst=100))
    alice = await login(node, "1")
    for i in range(6):
        alice.send(f"text_2_n{i}_unicast_")
    alice.send("records_2_0")  # handled after the six: a connection's frames are handled in order
    frames = json.loads((await alice.next())[len("records_2_0_"):])
    assert [f.split("_")[2] for f in frames] == ["n3", "n4", "n5"]
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_login_tickets_valid_expired_forged(nodes):
    node = await nodes.start("a", boss_settings())
    now = int(node.clock.seconds())
    client = await connect(ws_url(node, "boss", "/entry"))
    client.send(f"login_7_{ticket('7', now - 5)}")
    assert await client.next() == "error_401_ticket expired"
    client.send(f"login_7_{ticket('7', now + 60, secret='other')}")
    assert await client.next() == "error_401_invalid ticket"
    client.send(f"login_8_{ticket('7', now + 60)}")  # someone else's ticket
    assert await client.next() == "error_401_invalid ticket"
    client.send("login_7_12345.abc")
    assert await client.next() == "error_401_malformed ticket"
    client.send("login_7")
    assert await client.next() == "error_401_login ticket required"
    client.send("text_8_hi_unicast_")
    assert await client.next() == "error_401_not logged in"
    client.send(f"login_7_{ticket('7', now + 60)}")
    assert await client.next() == "ok"
    client.send(f"login_7_{ticket('7', now + 60)}")  # again, same user: fine
    assert await client.next() == "ok"
    client.send(f"login_8_{ticket('8', now + 60)}")
    assert await client.next() == "error_403_already logged in as another user on this connection"
    assert node.hub.presence.local("boss", "7")
    await client.close()


@pytest_twisted.ensureDeferred
async def test_plain_login_needs_insecure_login(nodes):
    node = await nodes.start("a", {"boss": {"insecure_login": True}})
    client = await connect(ws_url(node, "boss", "/entry"))
    client.send("login_5")
    assert await client.next() == "ok"
    await client.close()
    plain = await nodes.start("b", {"boss": {}})
    client = await connect(ws_url(plain, "boss", "/entry"))
    client.send("login_5")
    assert await client.next() == "error_401_login not configured on this server"
    await client.close()


@pytest_twisted.ensureDeferred
async def test_logout_ends_the_session(nodes):
    node = await nodes.start("a", boss_settings())
    client = await login(node, "5")
    client.send("logout_6")
    assert await client.next() == "error_403_cannot log out another user"
    client.send("logout_5")
    code, reason = await client.wait_closed()
    assert (code, reason) == (1000, "logout")
    await wait_until(lambda: not node.hub.presence.local("boss", "5"), what="the session to end")
    assert not await node.hub.presence.is_online("boss", "5")


@pytest.mark.parametrize("frame, answer", [
    ("hello", "error_400_unknown kind"),
    ("shout_2_hi_unicast_", "error_400_unknown kind"),
    ("text", "error_400_malformed text frame"),
    ("text_2", "error_400_malformed text frame, no content"),
    ("text_2_hi", "error_400_missing type, expected unicast or group"),
    ("text_2_hi_broadcast_x", "error_400_missing type, expected unicast or group"),
    ("text_2__unicast_x", "error_400_empty content"),
    ("text_a b_hi_unicast_", "error_400_bad target id"),
    ("members_", "error_400_bad group id"),
    ("records_5", "error_400_malformed records frame, expected id and timet"),
    ("records_5_yesterday", "error_400_malformed records frame, expected id and timet"),
    ("records_5_0_all", "error_400_records type must be unicast or group"),
    ("", "error_400_malformed frame"),
])
@pytest_twisted.ensureDeferred
async def test_malformed_frames_get_400_and_the_connection_stays_usable(nodes, frame, answer):
    node = await nodes.start("a", boss_settings())
    alice, bob = await login(node, "1"), await login(node, "2")
    alice.send(frame)
    assert await alice.next() == answer
    alice.send("text_2_still here_unicast_")
    check_delivery(await bob.next(), "text", "1", "still here", "unicast", "1", "")
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_every_other_error_frame(nodes):
    node = await nodes.start("a", boss_settings(max_frame_bytes=1000, rate_burst=30, rate_per_second=0.001))
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    outsider = await login(node, "3")
    # 401 before login is covered in the ticket test; 403 / 404 for groups
    outsider.send(f"text_{group}_let me in_group_")
    assert await outsider.next() == f"error_403_not a member of group {group}"
    outsider.send("text_999_anyone_group_")
    assert await outsider.next() == "error_404_no such group 999"
    outsider.send(f"members_{group}")
    assert await outsider.next() == f"error_403_not a member of group {group}"
    outsider.send(f"records_{group}_0_group")
    assert await outsider.next() == f"error_403_not a member of group {group}"
    outsider.send("records_999_0_group")
    assert await outsider.next() == "error_404_no such group 999"
    # 413, and the connection stays usable
    outsider.send("text_1_" + "x" * 1000 + "_unicast_")
    assert await outsider.next() == "error_413_frame larger than 1000 bytes"
    # 400 for binary frames
    outsider.send(b"text_1_hi_unicast_", binary=True)
    assert await outsider.next() == "error_400_binary frames are not supported, send text"
    outsider.send("members_1")  # still answering
    assert await outsider.next() == f"error_403_not a member of group {group}"
    # 429: the burst is spent (30 frames, hardly any refill)
    for i in range(30):
        outsider.send(f"text_1_n{i}_unicast_")
    answers = await outsider.drain(1.0)
    assert answers and set(answers) == {"error_429_too fast, slow down"}
    await outsider.close()


@pytest_twisted.ensureDeferred
async def test_oversize_websocket_message_closes_with_1009(nodes):
    node = await nodes.start("a", boss_settings(max_message_bytes=4096))
    client = await login(node, "1")
    client.send("text_2_" + "y" * 5000 + "_unicast_")
    code, _ = await client.wait_closed()
    assert code == 1009


@pytest_twisted.ensureDeferred
async def test_banned_words_are_masked_in_text(nodes, tmp_path):
    words = tmp_path / "banned.txt"
    words.write_text("darn\n")
    node = await nodes.start("a", {**boss_settings(), "moderation": {"banned_words_file": str(words)}})
    alice, bob = await login(node, "1"), await login(node, "2")
    alice.send("text_2_oh darn it_unicast_")
    check_delivery(await bob.next(), "text", "1", "oh **** it", "unicast", "1", "")
    alice.send("picture_2_http://x/darn.jpg_unicast_")  # only text is moderated
    check_delivery(await bob.next(), "picture", "1", "http://x/darn.jpg", "unicast", "1", "")
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_group_messages_are_kept_in_group_history(nodes):
    node = await nodes.start("a", boss_settings())
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    alice = await login(node, "1")
    alice.send(f"audio_{group}_http://x/a.mp3_group_")
    await inputs_done(alice)
    stored = await node.hub.history.latest("boss", group_conversation(group), 5)
    assert [m.body["c"] for m in stored] == ["http://x/a.mp3"]
    # not copied to the offline member's inbox: read from the log after their cursor
    assert await node.hub.inbox.count("boss", "2") == 0
    assert await node.hub.group_log.unread("boss", "2", [group]) == {group: 1}
    assert await node.hub.group_log.unread("boss", "1", [group]) == {}  # the sender's own
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_a_flood_beyond_the_input_queue_gets_429(nodes):
    node = await nodes.start("a", boss_settings(rate_burst=1000, rate_per_second=1000.0))
    alice, bob = await login(node, "1"), await login(node, "2")
    for i in range(300):  # all in one go: more than the 64 inputs a connection may have waiting
        alice.send(f"text_2_f{i}_unicast_")
    errors = await alice.drain(1.0)
    assert errors and set(errors) == {"error_429_too many frames waiting, slow down"}
    # what was taken was delivered, in order, once; what was refused was said so
    delivered = [(await bob.next()).split("_")[2] for _ in range(300 - len(errors))]
    assert delivered == sorted(delivered, key=lambda c: int(c[1:]))
    alice.send("text_2_end_unicast_")
    assert (await bob.next()).split("_")[2] == "end", "more was delivered than was taken"
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_redis_down_gets_503_and_the_connection_stays(nodes):
    node = await nodes.start("a", {**boss_settings(), "redis": {"restart_delay_s": 60.0, "reply_timeout_s": 0.5,
                                                                "connect_timeout_s": 0.5}}, redis_url=None)
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    alice = await login(node, "1")
    node.embedded_redis.kill_for_test()
    await sleep(0.3)
    alice.send(f"members_{group}")
    assert await alice.next() == "error_503_service unavailable, try again"
    alice.send("text_2_lost?_unicast_")
    assert await alice.next() == "error_503_service unavailable, try again"
    assert alice.protocol.state == alice.protocol.STATE_OPEN
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_an_upgraded_connection_leaves_no_http_objects_for_the_cycle_collector(nodes):
    # the HTTP channel and its request point at each other; once the WebSocket has the
    # connection they must go by reference counting, not wait for a collection (idle memory)
    import gc

    from heihei.web.limits import BoundedHTTPChannel

    node = await nodes.start("a", boss_settings())
    gc.collect()
    gc.disable()
    try:
        users = [await login(node, str(i)) for i in range(3)]
        left = [o for o in gc.get_objects() if isinstance(o, BoundedHTTPChannel) and o.transport is None]
        assert left == []
    finally:
        gc.enable()
    for u in users:
        await u.close()
