"""J-IM groups on one log per group and a cursor per member (issue 15, docs/groups.md "Clients that
pull"): pushed live, pulled with cmd 19 type 0/2, the cursor moving only over what is contiguous.
Real nodes, real Redis, real WebSocket clients."""

import json

import pytest_twisted

from heihei.core import grouppull
from heihei.core.grouplog import cursor_key
from heihei.core.model import group_conversation
from tests.helpers import sleep, wait_until
from tests.jim.helpers import extra, login, register, until

GROUP = "team"


async def setup(node, members=("alice", "bob", "carol")):
    for user in members:
        await register(node, user)
    await node.hub.groups.create("jim", {"name": "team"}, list(members), group_id=GROUP)


def say(user: str, text: str, group: str = GROUP) -> dict:
    return {"cmd": 11, "from": user, "chatType": 1, "groupId": group, "content": text}


async def send(client, user: str, *texts: str) -> None:
    for text in texts:
        client.send(json.dumps(say(user, text)))
        assert (await until(client, 12))["code"] == 10000


async def offline(client, user: str, kind: int = 0, **more) -> list[str]:
    client.send(json.dumps({"cmd": 19, "type": kind, "userId": user, **more}))
    answer = await until(client, 20)
    assert answer["code"] == (10016 if kind == 0 else 10022), answer
    return [m["content"] for m in answer["data"]["groups"].get(GROUP, [])]


async def cursor(node, user: str, group: str = GROUP) -> int:
    value = await node.hub.store.hget(cursor_key("jim", user), group)
    return int(value) if value is not None else -1


async def last_id(node, group: str = GROUP) -> int:
    newest = await node.hub.history.latest("jim", group_conversation(group), 1)
    return newest[0].id if newest else 0


async def ranges(node, user: str, group: str = GROUP):
    return await node.hub.group_feed.pull.ranges("jim", user, group)


async def pushed(client, n: int) -> list[str]:
    out = []
    while len(out) < n:
        frame = await until(client, 11)
        out.append(frame["data"]["content"])
    return out


@pytest_twisted.ensureDeferred
async def test_a_group_message_is_stored_once_pushed_live_and_pulled_once(nodes):
    node = await nodes.start("a", extra())
    await setup(node)
    alice = await login(node, "tok-alice")
    bob = await login(node, "tok-bob")
    await send(alice, "alice", "m0", "m1", "m2")
    assert await pushed(bob, 3) == ["m0", "m1", "m2"]
    # stored once: no member's inbox holds a copy
    for user in ("bob", "carol"):
        assert await node.hub.inbox.count("jim", user) == 0
    assert len(await node.hub.history.latest("jim", group_conversation(GROUP), 10)) == 3
    # bob confirmed the pushes: his cursor is the group's last message, nothing waits for him
    await wait_until(lambda: _equal(cursor(node, "bob"), last_id(node)), what="bob's cursor")
    assert await ranges(node, "bob") == []
    assert await offline(bob, "bob", 2) == []
    # carol was away: nothing is pushed at login (J-IM clients pull), type 2 shows and keeps
    carol = await login(node, "tok-carol")
    await carol.no_message(0.2)
    assert await offline(carol, "carol", 2) == ["m0", "m1", "m2"]
    assert await offline(carol, "carol", 2) == ["m0", "m1", "m2"]
    assert await node.hub.group_feed.pull.unread("jim", "carol", [GROUP]) == {GROUP: 3}
    # type 0 hands them out once; once the client confirmed the answer, they are gone
    assert await offline(carol, "carol", 0) == ["m0", "m1", "m2"]
    await wait_until(lambda: _equal(cursor(node, "carol"), last_id(node)), what="carol's cursor after the pull")
    assert await offline(carol, "carol", 0) == []
    assert await offline(carol, "carol", 2) == []
    # the sender's own messages never wait for her; her other devices get them, the sending one not
    assert await offline(alice, "alice", 2) == []
    phone = await login(node, "tok-alice")
    alice.skipped = []
    await send(alice, "alice", "from the pc")
    assert await pushed(phone, 1) == ["from the pc"]
    assert await pushed(bob, 1) == ["from the pc"]
    frames = alice.skipped + [json.loads(f) for f in await alice.drain(0.2)]
    assert [f for f in frames if f.get("command") == 11] == []
    for c in (alice, bob, carol, phone):
        await c.close()


async def _equal(a, b) -> bool:
    return await a == await b


@pytest_twisted.ensureDeferred
async def test_a_confirmed_push_does_not_move_the_cursor_past_what_was_not_pulled(nodes):
    node = await nodes.start("a", extra())
    await setup(node)
    alice = await login(node, "tok-alice")
    await send(alice, "alice", "m0", "m1", "m2", "m3")
    start = await cursor(node, "carol")
    carol = await login(node, "tok-carol")
    head = await last_id(node)
    await send(alice, "alice", "live4", "live5")
    assert await pushed(carol, 2) == ["live4", "live5"]
    # confirmed live: one range above the head at login, the cursor has not moved
    await wait_until(lambda: _ranges_are(node, "carol", lambda r: len(r) == 1 and r[0][0] == head), what="range")
    assert await cursor(node, "carol") == start
    # type 0/2 return what was missed, not what was pushed; filters page it
    assert await offline(carol, "carol", 2) == ["m0", "m1", "m2", "m3"]
    assert await offline(carol, "carol", 0, offset=1, count=2) == ["m1", "m2"]
    await wait_until(lambda: _ranges_are(node, "carol", lambda r: len(r) == 2), what="the middle pulled")
    assert await cursor(node, "carol") == start  # m0 is still missing below
    assert await offline(carol, "carol", 2) == ["m0", "m3"]
    assert await offline(carol, "carol", 0, count=1) == ["m0"]
    await wait_until(lambda: _ranges_are(node, "carol", lambda r: len(r) == 1), what="m0..m2 joined the cursor")
    assert await offline(carol, "carol", 0, groupId=GROUP) == ["m3"]
    # everything contiguous now: the cursor is the last message, no range kept
    await wait_until(lambda: _equal(cursor(node, "carol"), last_id(node)), what="carol's cursor")
    assert await ranges(node, "carol") == []
    # a new login finds nothing waiting
    await carol.close()
    carol = await login(node, "tok-carol")
    assert await offline(carol, "carol", 0) == []
    await alice.close()
    await carol.close()


async def _ranges_are(node, user, check) -> bool:
    return check(await ranges(node, user))


@pytest_twisted.ensureDeferred
async def test_messages_sent_during_a_login_are_pushed_or_pulled_never_both(nodes):
    """The seam: whatever arrives while carol logs in is either pushed to her or returned by her
    pull, once; together, every message, each part in order."""
    node = await nodes.start("a", extra(chat_burst=1000, chat_rate_per_s=1000.0))
    await setup(node)
    alice = await login(node, "tok-alice")
    await send(alice, "alice", *[f"m{i:03d}" for i in range(20)])
    carol_login = login(node, "tok-carol")
    for i in range(20, 80):  # not waiting for the answers: they race the login
        alice.send(json.dumps(say("alice", f"m{i:03d}")))
    carol = await carol_login
    await wait_until(lambda: _count_answers(alice, 60), what="alice's answers")
    got_live = []
    pulled = await offline(carol, "carol", 0, count=100)
    got_live += [f["data"]["content"] for f in carol.__dict__.get("skipped", []) if f.get("command") == 11]
    got_live += await carol_drain(carol)
    everything = [f"m{i:03d}" for i in range(80)]
    assert sorted(pulled + got_live) == everything, (pulled, got_live)
    assert pulled == sorted(pulled) and got_live == sorted(got_live)
    assert not set(pulled) & set(got_live)
    assert pulled[:20] == everything[:20]
    await wait_until(lambda: _equal(cursor(node, "carol"), last_id(node)), what="carol's cursor")
    await alice.close()
    await carol.close()


async def _count_answers(client, n) -> bool:
    while len(client.__dict__.setdefault("answers", [])) < n:
        frame = await client.next_json(5)
        if frame.get("command") == 12:
            client.answers.append(frame)
    return True


async def carol_drain(client) -> list[str]:
    frames = await client.drain(0.3)
    return [json.loads(f)["data"]["content"] for f in frames if json.loads(f).get("command") == 11]


@pytest_twisted.ensureDeferred
async def test_removed_members_get_nothing_and_re_added_ones_start_at_the_adding(nodes):
    a = await nodes.start("a", extra())
    b = await nodes.start("b", extra())
    await setup(a)
    alice = await login(a, "tok-alice")
    carol = await login(b, "tok-carol")
    await send(alice, "alice", "before")
    assert await pushed(carol, 1) == ["before"]
    assert await a.hub.groups.remove_members("jim", GROUP, ["carol"]) == 1
    await sleep(0.1)
    await send(alice, "alice", "while out 1", "while out 2")
    await carol.no_message(0.3)
    assert await offline(carol, "carol", 2) == []
    carol.send(json.dumps(say("carol", "me too")))
    assert (await until(carol, 12))["code"] == 10002
    # offline when re-added on the other node: nothing from the time she was out
    await carol.close()
    assert await a.hub.groups.add_members("jim", GROUP, ["carol"]) == 1
    await send(alice, "alice", "welcome back")
    carol = await login(b, "tok-carol")
    assert await offline(carol, "carol", 0) == ["welcome back"]
    # removed and re-added while online: her open connection goes live again (cmd 7 need not be sent)
    assert await a.hub.groups.remove_members("jim", GROUP, ["carol"]) == 1
    await send(alice, "alice", "out again")
    assert await a.hub.groups.add_members("jim", GROUP, ["carol"]) == 1
    await sleep(0.2)
    await send(alice, "alice", "live again")
    assert await pushed(carol, 1) == ["live again"]
    assert await offline(carol, "carol", 2) == []
    await wait_until(lambda: _equal(cursor(a, "carol"), last_id(a)), what="carol's cursor")
    await alice.close()
    await carol.close()


@pytest_twisted.ensureDeferred
async def test_confirmations_and_pulls_on_two_nodes(nodes):
    a = await nodes.start("a", extra())
    b = await nodes.start("b", extra())
    await setup(a)
    alice = await login(a, "tok-alice")
    bob = await login(b, "tok-bob")
    await send(alice, "alice", "m0", "m1")
    assert await pushed(bob, 2) == ["m0", "m1"]
    await wait_until(lambda: _equal(cursor(a, "bob"), last_id(a)), what="bob's cursor written by node b")
    await bob.close()
    await send(alice, "alice", "m2")
    # bob on node a and node b at once: one pulls, the other sees nothing left
    bob_a = await login(a, "tok-bob")
    bob_b = await login(b, "tok-bob")
    assert await offline(bob_b, "bob", 0) == ["m2"]
    await wait_until(lambda: _equal(cursor(a, "bob"), last_id(a)), what="the pull confirmed")
    assert await offline(bob_a, "bob", 2) == []
    await send(alice, "alice", "m3")
    assert await pushed(bob_a, 1) == ["m3"] and await pushed(bob_b, 1) == ["m3"]
    await wait_until(lambda: _equal(cursor(b, "bob"), last_id(b)), what="both confirmed")
    for c in (alice, bob_a, bob_b):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_a_member_that_never_confirms_keeps_its_messages_waiting(nodes):
    node = await nodes.start("a", extra())
    await setup(node)
    alice = await login(node, "tok-alice")
    slow = await login(node, "tok-carol", answer_pings=False)
    start = await cursor(node, "carol")
    await send(alice, "alice", "m0", "m1", "m2")
    assert await pushed(slow, 3) == ["m0", "m1", "m2"]
    await sleep(0.3)
    # pushed, never confirmed: neither the cursor nor a range moved, the feed holds one request
    assert await cursor(node, "carol") == start and await ranges(node, "carol") == []
    state = node.hub.group_feed.conns[next(iter(node.hub.presence.local("jim", "carol")))]
    assert len(state.waiters) == 0 and set(state.asked) == {GROUP}
    await slow.close()
    # the next client gets them (at least once: they were pushed, not confirmed)
    carol = await login(node, "tok-carol")
    assert await offline(carol, "carol", 0) == ["m0", "m1", "m2"]
    await alice.close()
    await carol.close()


@pytest_twisted.ensureDeferred
async def test_retention_bounds_what_waits_and_the_ranges(nodes, monkeypatch):
    node = await nodes.start("a", {**extra(chat_burst=100), "messaging": {"group_log_max_count": 5}})
    await setup(node)
    alice = await login(node, "tok-alice")
    await send(alice, "alice", *[f"m{i}" for i in range(8)])
    carol = await login(node, "tok-carol")
    assert await offline(carol, "carol", 2) == ["m3", "m4", "m5", "m6", "m7"]
    # what retention dropped does not block the cursor: pulling what is left makes it contiguous
    assert await offline(carol, "carol", 0) == ["m3", "m4", "m5", "m6", "m7"]
    await wait_until(lambda: _equal(cursor(node, "carol"), last_id(node)), what="carol's cursor")
    # at most SEEN_MAX_RANGES ranges per member and group: the oldest go (a duplicate, never a loss)
    monkeypatch.setattr(grouppull, "SEEN_MAX_RANGES", 1)
    await carol.close()
    await send(alice, "alice", *[f"n{i}" for i in range(5)])
    log = await node.hub.history.latest("jim", group_conversation(GROUP), 5)
    assert [m.body["content"] for m in log] == [f"n{i}" for i in range(5)]
    # pulled n1, n3 and n4 (two ranges: n3 and n4 join): n1's range goes, n1 comes again
    await node.hub.group_feed.pull.mark_pulled("jim", "carol", [log[1], log[3], log[4]])
    assert await ranges(node, "carol") == [(log[3].id - 1, log[4].id)]
    carol = await login(node, "tok-carol")
    assert await offline(carol, "carol", 2) == ["n0", "n1", "n2"]
    # the ranges go with the membership
    assert await node.hub.groups.remove_members("jim", GROUP, ["carol"]) == 1
    assert await ranges(node, "carol") == [] and await cursor(node, "carol") == -1
    await alice.close()
    await carol.close()


def test_ranges_are_parsed():
    assert grouppull.parse_ranges("1:5,9:12") == [(1, 5), (9, 12)]
    assert grouppull.parse_ranges(None) == []
