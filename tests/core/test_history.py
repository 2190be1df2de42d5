"""History, retention, inbox and unread counters against a real Redis."""

import pytest_twisted

from heihei.core.history import History, Inbox, Retention
from heihei.core.model import Message, group_conversation
from twisted.internet import task


def msg(text, ms, cid=None, conv=group_conversation("g1")):
    return Message(realm="r", conversation=conv, sender="s", body={"text": text}, kind="group", target="g1",
                   created_ms=ms, client_id=cid)


@pytest_twisted.ensureDeferred
async def test_paging_time_ranges_and_count_retention(nodes):
    node = await nodes.start()
    history = History(node.store, task.Clock(), Retention(max_count=5))
    base = 1_700_000_000_000
    for i in range(8):
        await history.store_message(msg(f"m{i}", base + i * 1000))
    kept = await history.page("r", "g:g1")
    assert [m.body["text"] for m in kept] == ["m3", "m4", "m5", "m6", "m7"]  # only the newest 5
    ranged = await history.page("r", "g:g1", begin_ms=base + 4000, end_ms=base + 6000)
    assert [m.body["text"] for m in ranged] == ["m4", "m5", "m6"]
    paged = await history.page("r", "g:g1", offset=1, count=2)
    assert [m.body["text"] for m in paged] == ["m4", "m5"]
    newest = await history.page("r", "g:g1", newest_first=True, count=2)
    assert [m.body["text"] for m in newest] == ["m7", "m6"]
    assert [m.body["text"] for m in await history.latest("r", "g:g1", 2)] == ["m6", "m7"]
    removed = await history.remove("r", "g:g1", kept[0].id)
    assert removed.body["text"] == "m3"
    assert len(await history.page("r", "g:g1")) == 4


@pytest_twisted.ensureDeferred
async def test_age_retention_and_ids_that_keep_increasing_when_clocks_go_back(nodes):
    node = await nodes.start()
    history = History(node.store, task.Clock(), Retention(max_age_s=60))
    t = 1_700_000_000_000
    first = (await history.store_message(msg("old", t))).message
    second = (await history.store_message(msg("earlier clock", t - 5000))).message
    assert second.id > first.id  # a node with a slow clock cannot reorder the conversation
    await history.store_message(msg("new", t + 120_000))
    assert [m.body["text"] for m in await history.page("r", "g:g1")] == ["new"]


@pytest_twisted.ensureDeferred
async def test_inbox_and_unread_counters_move_together(nodes):
    node = await nodes.start()
    history = History(node.store, task.Clock(), Retention(inbox_max=3))
    inbox = Inbox(node.store)
    for i in range(5):
        await history.store_message(msg(f"m{i}", 1000 + i), inbox_for=["u1", "u2"])
    await history.store_message(msg("dm", 2000, conv="u:u1:x"), inbox_for=["u1"])
    pending = await inbox.pending("r", "u1")
    assert [m.body["text"] for m in pending] == ["m3", "m4", "dm"]  # bounded, oldest dropped
    assert await inbox.unread("r", "u1") == {"g:g1": 5, "u:u1:x": 1}
    taken = await inbox.take("r", "u1", conversation="u:u1:x")
    assert [m.body["text"] for m in taken] == ["dm"]
    assert await inbox.count("r", "u1") == 2
    await inbox.mark_read("r", "u1", "g:g1")
    assert await inbox.unread("r", "u1") == {"u:u1:x": 1}
    await inbox.mark_read("r", "u1")
    assert await inbox.unread("r", "u1") == {}
    assert await inbox.unread("r", "u2") == {"g:g1": 5}


@pytest_twisted.ensureDeferred
async def test_group_membership(nodes):
    from heihei.core.groups import NoSuchGroup
    import pytest

    node = await nodes.start()
    groups = node.hub.groups
    g1 = await groups.create("r", {"name": "one"}, ["3", "1", "2"])
    g2 = await groups.create("r", {"name": "two"}, ["1"])
    assert int(g2) == int(g1) + 1
    assert await groups.members("r", g1) == ["1", "2", "3"]
    assert await groups.groups_of("r", "1") == [g1, g2]
    await groups.remove_members("r", g1, ["1"])
    assert await groups.groups_of("r", "1") == [g2]
    assert not await groups.is_member("r", g1, "1")
    await groups.update("r", g1, {"notice": "hi"})
    assert (await groups.info("r", g1))["notice"] == "hi"
    with pytest.raises(NoSuchGroup):
        await groups.add_members("r", "999", ["1"])
    with pytest.raises(NoSuchGroup):
        await groups.info("r", "999")
