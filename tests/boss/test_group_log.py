"""Boss groups on one log per group and a cursor per member (issue 15, docs/groups.md): real nodes,
real Redis, real WebSocket clients."""

import pytest_twisted

from heihei.core.groupfeed import CONFIRM_SMALL_S
from heihei.core.grouplog import cursor_key
from tests.boss.conftest import boss_settings, check_delivery, inputs_done, login, ticket
from tests.conftest import ws_url
from tests.helpers import sleep, wait_until
from tests.wsclient import connect


async def cursor(node, user: str, group: str) -> int:
    value = await node.hub.store.hget(cursor_key("boss", user), group)
    return int(value) if value is not None else -1


async def last_id(node, group: str) -> int:
    newest = await node.hub.history.latest("boss", f"g:{group}", 1)
    return newest[0].id if newest else 0


def contents(frames: list[str]) -> list[str]:
    return [f.split("_")[2] for f in frames]


@pytest_twisted.ensureDeferred
async def test_messages_arriving_while_a_login_replays_come_once_in_order(nodes):
    """The seam: a backlog large enough to be replayed in several confirmed chunks, and the sender
    goes on sending during the login; the member gets every message once, in order."""
    node = await nodes.start("a", boss_settings(rate_burst=1000, rate_per_second=1000.0,
                                                send_queue_max_bytes=32 * 1024))
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    alice = await login(node, "1")
    pad = "x" * 400
    for i in range(60):  # ~27 KiB stored while bob is away: replayed in chunks of 16 KiB
        alice.send(f"text_{group}_m{i:03d}{pad}_group_")
    await inputs_done(alice)
    bob = await connect(ws_url(node, "boss", "/entry"))
    bob.send(f"login_2_{ticket('2')}")
    for i in range(60, 120):  # while the login replays
        alice.send(f"text_{group}_m{i:03d}{pad}_group_")
    assert await bob.next() == "ok"
    got = [await bob.next() for _ in range(120)]
    assert [c[:4] for c in contents(got)] == [f"m{i:03d}" for i in range(120)]
    await bob.no_message(0.3)
    # everything confirmed: the cursor is the group's last message, a new login replays nothing
    await wait_until(lambda: _equal(cursor(node, "2", group), last_id(node, group)), what="bob's cursor")
    await bob.close()
    bob = await login(node, "2")
    alice.send(f"text_{group}_live_group_")
    check_delivery(await bob.next(), "text", "1", "live", "group", group, "")
    await alice.close()
    await bob.close()


async def _equal(a, b) -> bool:
    return await a == await b


@pytest_twisted.ensureDeferred
async def test_cursors_confirmed_on_one_node_hold_on_the_other(nodes):
    a = await nodes.start("a", boss_settings())
    b = await nodes.start("b", boss_settings())
    group = await a.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2", "3"])
    assert await cursor(a, "2", group) == 0  # a new member starts at the group's last message
    alice = await login(a, "1")
    bob = await login(b, "2")
    for i in range(5):
        alice.send(f"text_{group}_m{i}_group_")
    assert contents([await bob.next() for _ in range(5)]) == [f"m{i}" for i in range(5)]
    await wait_until(lambda: _equal(cursor(a, "2", group), last_id(a, group)), what="cursor written by node b")
    await bob.close()
    # on the other node: nothing again, and what comes next
    bob = await login(a, "2")
    await bob.no_message(0.3)
    alice.send(f"text_{group}_after_group_")
    check_delivery(await bob.next(), "text", "1", "after", "group", group, "")
    # carol never answers pings: she reads everything, her cursor stays, she gets it all again
    carol = await connect(ws_url(b, "boss", "/entry"), answer_pings=False)
    carol.send(f"login_3_{ticket('3')}")
    assert await carol.next() == "ok"
    assert contents([await carol.next() for _ in range(6)]) == [f"m{i}" for i in range(5)] + ["after"]
    await sleep(0.3)
    assert await cursor(a, "3", group) == 0
    await carol.close()
    carol = await login(a, "3", expect_early=6)
    assert contents(carol.early) == [f"m{i}" for i in range(5)] + ["after"]
    for c in (alice, bob, carol):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_a_removed_member_gets_nothing_after_the_removal_and_a_readded_one_what_follows(nodes):
    a = await nodes.start("a", boss_settings())
    b = await nodes.start("b", boss_settings())
    group = await a.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2", "3"])
    alice = await login(a, "1")
    bob = await login(b, "2")  # online on the other node
    carol = await login(a, "3")
    alice.send(f"text_{group}_before_group_")
    check_delivery(await bob.next(), "text", "1", "before", "group", group, "")
    await carol.next()
    await a.hub.groups.remove_members("boss", group, ["2"])
    alice.send(f"text_{group}_while-out_group_")
    check_delivery(await carol.next(), "text", "1", "while-out", "group", group, "")
    alice.send("text_2_direct_unicast_")  # a later message to bob: nothing of the group before it
    check_delivery(await bob.next(), "text", "1", "direct", "unicast", "1", "")
    assert await cursor(a, "2", group) == -1  # the cursor went with the membership
    # re-added (through node a, bob's connection is on b): what is sent from now on, live
    await a.hub.groups.add_members("boss", group, ["2"])
    await wait_until(lambda: group in b.hub.group_feed.conns.get(_only(b.hub.presence.local("boss", "2")),
                                                                   _NoGroups).groups,
                     what="bob's connection attached again")
    alice.send(f"text_{group}_back_group_")
    check_delivery(await bob.next(), "text", "1", "back", "group", group, "")
    await bob.no_message(0.3)
    # offline: removed, messages, re-added, messages -> only those after the re-adding
    await bob.close()
    await a.hub.groups.remove_members("boss", group, ["2"])
    alice.send(f"text_{group}_gone_group_")
    await inputs_done(alice)
    await a.hub.groups.add_members("boss", group, ["2"])
    alice.send(f"text_{group}_again_group_")
    await inputs_done(alice)
    bob = await login(b, "2", expect_early=1)
    check_delivery(bob.early[0], "text", "1", "again", "group", group, "")
    await bob.no_message(0.3)
    for c in (alice, bob, carol):
        await c.close()


class _NoGroups:
    groups = ()


def _only(conns):
    return next(iter(conns)) if conns else None


@pytest_twisted.ensureDeferred
async def test_the_log_keeps_the_newest_group_log_max_count_messages(nodes):
    node = await nodes.start("a", {**boss_settings(), "messaging": {"group_log_max_count": 5}})
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    alice = await login(node, "1")
    for i in range(8):
        alice.send(f"text_{group}_m{i}_group_")
    await inputs_done(alice)
    assert len(await node.hub.history.latest("boss", f"g:{group}", 100)) == 5
    assert await node.hub.group_log.unread("boss", "2", [group]) == {group: 5}
    bob = await login(node, "2", expect_early=5)
    assert contents(bob.early) == [f"m{i}" for i in range(3, 8)]
    await bob.no_message(0.3)
    # records_ reads the same log
    alice.send(f"records_{group}_0_group")
    answer = await alice.next()
    assert answer.count("text_1_m") == 5
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_a_member_that_never_reads_is_cut_off_and_gets_the_rest_at_its_next_login(nodes):
    node = await nodes.start("a", boss_settings(rate_burst=1000, rate_per_second=1000.0,
                                                send_queue_max_bytes=64 * 1024))
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2", "3"])
    alice = await login(node, "1")
    carol = await login(node, "3")
    bob = await login(node, "2")
    bob.protocol.transport.pauseProducing()  # reads nothing from now on, so confirms nothing
    pad = "y" * 30000
    for i in range(250):  # 7.5 MB: far beyond the sockets' buffers and bob's 64 KiB queue
        alice.send(f"text_{group}_m{i:03d}{pad}_group_")
        if i % 50 == 49:
            await inputs_done(alice)  # within the input queue's bound
    got = [await carol.next() for _ in range(250)]
    assert [c[:4] for c in contents(got)] == [f"m{i:03d}" for i in range(250)]
    await wait_until(lambda: not node.hub.presence.local("boss", "2"), what="bob cut off")
    assert not [c for c in node.hub.group_feed.conns if c.user == "2"]  # nothing kept for him
    assert node.metrics.registry.get_sample_value("heihei_slow_clients_disconnected_total",
                                                  {"realm": "boss"}) == 1
    bob.protocol.transport.abortConnection()
    # his cursor stayed where his client last confirmed: the next login sends the rest, in order
    confirmed = await cursor(node, "2", group)
    rest = [m for m in await node.hub.history.latest("boss", f"g:{group}", 250) if m.id > confirmed]
    assert rest
    bob = await login(node, "2", expect_early=len(rest))
    assert [c[:4] for c in contents(bob.early)] == [f"m{i:03d}" for i in range(250 - len(rest), 250)]
    for c in (alice, bob, carol):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_not_a_member_and_no_such_group_on_the_log_path(nodes):
    node = await nodes.start("a", boss_settings())
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    outsider = await login(node, "9")
    outsider.send(f"text_{group}_hi_group_")
    assert await outsider.next() == f"error_403_not a member of group {group}"
    outsider.send("text_999_hi_group_")
    assert await outsider.next() == "error_404_no such group 999"
    assert await last_id(node, group) == 0  # nothing stored
    await outsider.close()


@pytest_twisted.ensureDeferred
async def test_a_member_that_reads_but_never_confirms_holds_a_bounded_number_of_requests(nodes):
    node = await nodes.start("a", boss_settings(rate_burst=1000, rate_per_second=1000.0))
    group = await node.hub.groups.create("boss", {"creator": "1", "name": "g"}, ["1", "2"])
    alice = await login(node, "1")
    bob = await connect(ws_url(node, "boss", "/entry"), answer_pings=False)
    bob.send(f"login_2_{ticket('2')}")
    assert await bob.next() == "ok"
    for i in range(20):  # each in its own confirmation round (a small group's)
        alice.send(f"text_{group}_m{i}_group_")
        await bob.next()
        await sleep(CONFIRM_SMALL_S + 0.03)
    server_side = [c for c in node.factories["boss"].clients if c.user == "2"]
    assert len(server_side) == 1
    conn = server_side[0]
    assert len(conn._awaiting_pong or ()) <= 4 and len(conn._unconfirmed) <= 1
    assert await cursor(node, "2", group) == 0
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_a_group_of_100000_members_built_through_the_api_in_calls_of_500(nodes):
    from tests.boss.test_groups_api import call

    node = await nodes.start("a", boss_settings())
    code, answer = await call(node, "/creategrp", {"creator": "1", "members": "2,3", "name": "big"})
    assert (code, answer["code"]) == (200, 1)
    group = answer["data"]["groupid"]
    for start in range(4, 100001, 500):
        ids = ",".join(str(i) for i in range(start, min(start + 500, 100001)))
        assert await call(node, "/addmembers", {"groupid": group, "members": ids}) \
            == (200, {"code": 1, "message": "OK"})
    assert await node.hub.groups.count("boss", group) == 100000
    assert await call(node, "/addmembers", {"groupid": group, "members": "100001"}) \
        == (200, {"code": 400, "message": "more than 100000 members"})
    online = [await login(node, str(u)) for u in (2, 50000, 100000)]
    alice = await login(node, "1")
    alice.send(f"text_{group}_hello_group_")
    for client in online:
        check_delivery(await client.next(), "text", "1", "hello", "group", group, "")
    await inputs_done(alice)
    offline = await login(node, "77777", expect_early=1)  # replayed from the cursor
    check_delivery(offline.early[0], "text", "1", "hello", "group", group, "")
    for c in (*online, alice, offline):
        await c.close()
