"""Busy-room lanes under a synthetic overload: gifts and system items never dropped nor held back, chat in
full up to the room's budget and sampled beyond it (the sender always sees its own), likes coalesced with a
count; and the same across two nodes, where the budget is the room's, not each node's."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor, task

from heihei.heihei.lanes import CHAT, LIKE, PRIORITY, SAMPLED_OUT, SENT, WAITING, Lanes, admitted, lane_of
from tests.heihei.helpers import ok, open_channel
from tests.heihei.livehelpers import live_extra, start_live, user


class CountingStore:
    """The one Redis call the lanes make (a counter per room and second), in memory."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}

    async def eval(self, source, keys, args):
        self.counters[keys[0]] = self.counters.get(keys[0], 0) + 1
        return self.counters[keys[0]]

    def deadline_ms(self) -> int:
        """Scripts carry their caller's deadline (heihei.store.scripts); in memory nothing is late."""
        return 2 ** 62


def make_lanes(clock, **kw):
    sent, told = [], []
    urgent = []  # per batch: did it ask for the priority path

    async def broadcast_items(room, items, *, sender="0", priority=False):
        sent.append((room, [i["msg"] for i in items], sender))
        urgent.append(priority)

    async def notify_user(uid, item):
        told.append((uid, item["msg"]))

    settings = {"budget_per_s": 20, "sample_every": 10, "flush_s": 0.1, "like_interval_s": 1.0, **kw}
    lanes = Lanes(broadcast_items=broadcast_items, notify_user=notify_user, store=CountingStore(), clock=clock,
                  **settings)
    lanes.urgent_batches = urgent
    return lanes, sent, told


def test_lane_rules():
    assert [lane_of({"msgType": t}) for t in ("text", "barrage", "like", "gift", "system", "toast", "action", "?")] \
        == [CHAT, CHAT, LIKE, PRIORITY, PRIORITY, PRIORITY, PRIORITY, PRIORITY]
    delivered = [n for n in range(1, 1001) if admitted(n, 20, 10)]
    assert delivered[:20] == list(range(1, 21))  # the budget in full
    assert delivered[20:] == list(range(30, 221, 10))  # then one in ten, up to the budget again
    assert [n for n in range(1, 100) if admitted(n, 5, 0)] == [1, 2, 3, 4, 5]  # no sampling


@pytest_twisted.ensureDeferred
async def test_a_synthetic_overload_of_one_room():
    clock = task.Clock()
    clock.advance(1_700_000_000)
    lanes, sent, told = make_lanes(clock)
    outcomes = {SENT: 0, WAITING: 0, SAMPLED_OUT: 0}
    for n in range(1000):  # 1000 chat items, 50 gifts and 500 likes within one second
        clock.advance(0.0009)
        outcome = await lanes.send("r1", {"msgType": "text" if n % 2 else "barrage", "text": f"t{n}",
                                          "fromUserId": n}, sender=str(n % 7 + 1))
        outcomes[outcome] += 1
        if n % 20 == 0:
            outcomes[await lanes.send("r1", {"msgType": "gift", "giftId": n})] += 1
        if n % 2 == 0:
            lanes.like("r1", {"msgType": "like", "fromUserId": n})
    clock.advance(1.5)
    await lanes.stop()
    msgs = [m for _, batch, _ in sent for m in batch]
    gifts = [m for m in msgs if m["msgType"] == "gift"]
    chat = [m for m in msgs if m["msgType"] in ("text", "barrage")]
    likes = [m for m in msgs if m["msgType"] == "like"]
    assert [g["giftId"] for g in gifts] == list(range(0, 1000, 20))  # every gift, in order
    assert outcomes == {SENT: 50, WAITING: 40, SAMPLED_OUT: 960}
    assert len(chat) == 40 and [m["text"] for m in chat[:20]] == [f"t{n}" for n in range(20)]
    # each sampled-out item went back to its own sender, and only to them
    assert len(told) == 960 and all(msg["fromUserId"] % 7 + 1 == int(uid) for uid, msg in told)
    # 500 likes became one item per interval carrying their count
    assert sum(m["count"] for m in likes) == 500 and len(likes) <= 2
    # the chat rode along with the gifts and the flushes: far fewer frames than items
    assert len(sent) <= 50 + 12 and len(msgs) == 50 + 40 + len(likes)
    # a gift is never held back: it leaves in the call that brought it
    before = len(sent)
    await lanes.send("r1", {"msgType": "system", "text": "公告"})
    assert len(sent) == before + 1 and sent[-1][1][-1]["msgType"] == "system"
    # batches with a priority item ask for the urgent path; chat and like flushes do not
    assert lanes.urgent_batches == [any(m["msgType"] in ("gift", "system") for m in batch) for _, batch, _ in sent]


@pytest_twisted.ensureDeferred
async def test_chat_waits_at_most_one_flush_and_likes_one_interval():
    clock = task.Clock()
    lanes, sent, _ = make_lanes(clock)
    await lanes.send("r", {"msgType": "text", "text": "a"}, sender="1")
    assert sent == []
    clock.advance(0.1)
    await task.deferLater(reactor, 0, lambda: None)
    assert [m["text"] for _, batch, _ in sent for m in batch] == ["a"]
    lanes.like("r", {"msgType": "like"})
    lanes.like("r", {"msgType": "like"}, count=4)
    clock.advance(0.1)
    await task.deferLater(reactor, 0, lambda: None)
    assert sent[-1][1][-1] == {"msgType": "like", "count": 5}
    lanes.like("r", {"msgType": "like"})  # within the interval: waits for its end
    clock.advance(0.5)
    await task.deferLater(reactor, 0, lambda: None)
    assert len(sent) == 2
    clock.advance(0.5)
    await task.deferLater(reactor, 0, lambda: None)
    assert sent[-1][1][-1]["count"] == 1
    # chat that arrives while likes wait for their interval still leaves after one flush
    lanes.like("r", {"msgType": "like"})
    await lanes.send("r", {"msgType": "text", "text": "b"}, sender="1")
    clock.advance(0.1)
    await task.deferLater(reactor, 0, lambda: None)
    assert [m.get("text") for m in sent[-1][1]] == ["b"]
    clock.advance(0.9)
    await task.deferLater(reactor, 0, lambda: None)
    assert sent[-1][1][-1]["count"] == 1
    lanes.forget("r")
    assert not clock.getDelayedCalls()


@pytest_twisted.ensureDeferred
async def test_two_nodes_share_one_budget_and_every_gift_arrives(nodes, outside):
    extra = live_extra(outside, lives={"chat_budget_per_s": 10, "chat_sample_every": 0, "lane_flush_s": 0.05})
    a = await nodes.start("a", extra)
    b = await nodes.start("b", extra)
    a_token, anchor = await user(a, outside, "13700000001", "主播")
    tokens = [await user(b if n % 2 else a, outside, f"1370000001{n}", f"观众{n}") for n in range(4)]
    live_id = str((await start_live(a, a_token))["liveId"])
    channels = []
    for n, (token, _) in enumerate(tokens):
        node = b if n % 2 else a
        await ok(node, "/api/live/join-live", {"token": token, "liveId": live_id})
        channels.append(await open_channel(node, token))
    for channel in channels:  # the joiner's own count first
        assert json.loads(await channel.next())[0]["msg"]["action"] == "live-users"
    lanes = {"a": a.operators["channel"].lives.lanes, "b": b.operators["channel"].lives.lanes}
    sender = tokens[0][1]
    for n in range(60):  # 60 chat items in a burst, half through each node, 12 gifts
        node = "a" if n % 2 else "b"
        await lanes[node].send(live_id, {"msgType": "text", "text": f"c{n}"}, sender=sender)
        if n % 5 == 0:
            await lanes[node].send(live_id, {"msgType": "gift", "giftId": n})
    got = []
    for channel in channels:
        items = []
        while True:
            try:
                frame = json.loads(await channel.next(0.5))
            except Exception:
                break
            items += [i["msg"] for i in frame if i["msg"].get("action") != "live-users"]
        got.append(items)
    for n, items in enumerate(got):
        gifts = [m["giftId"] for m in items if m["msgType"] == "gift"]
        chat = [m["text"] for m in items if m["msgType"] == "text"]
        assert sorted(gifts) == list(range(0, 60, 5)), n
        if n == 0:  # the sender also gets back what the room did not take
            assert sorted(chat) == sorted(f"c{k}" for k in range(60)), n
        else:
            assert len(chat) == 10, (n, chat)  # the room's budget, not 10 per node
    for channel in channels:
        await channel.close()


@pytest_twisted.ensureDeferred
async def test_one_node_batches_a_rooms_chat_and_another_takes_over_when_it_goes(nodes, outside):
    import time

    extra = live_extra(outside, lives={"lane_flush_s": 0.5})
    a = await nodes.start("a", extra)
    b = await nodes.start("b", extra)
    a_token, anchor = await user(a, outside, "13700000101", "主播")
    v_token, viewer = await user(b, outside, "13700000102", "观众")
    live_id = str((await start_live(a, a_token))["liveId"])
    await ok(b, "/api/live/join-live", {"token": v_token, "liveId": live_id})
    channel = await open_channel(b, v_token)
    assert json.loads(await channel.next())[0]["msg"]["action"] == "live-users"
    lanes = {"a": a.operators["channel"].lives.lanes, "b": b.operators["channel"].lives.lanes}
    assert await lanes["a"].leader(live_id) == await lanes["b"].leader(live_id)  # one leader for the room
    # just after a flush tick (the grid is the same on every node): 6 items through both nodes
    await task.deferLater(reactor, 0.5 - time.time() % 0.5 + 0.02, lambda: None)
    for n in range(6):
        await lanes["a" if n % 2 else "b"].send(live_id, {"msgType": "text", "text": f"t{n}"}, sender="1")
    frame = [i["msg"] for i in json.loads(await channel.next(2))]
    assert sorted(m["text"] for m in frame) == [f"t{n}" for n in range(6)]  # one batch, one frame
    # likes through both nodes end up in the leader's like items
    for n in range(10):
        lanes["a" if n % 2 else "b"].like(live_id, {"msgType": "like", "fromUserId": n})
    counted = 0
    while counted < 10:
        counted += sum(i["msg"]["count"] for i in json.loads(await channel.next(4)) if i["msg"]["msgType"] == "like")
    assert counted == 10
    # the leader goes: forwarding reaches nobody, the other node batches the room itself
    leader = await lanes["b"].leader(live_id)
    await nodes.stop(a if leader == "a" else b)
    survivor = lanes["b" if leader == "a" else "a"]
    if leader == "b":  # the viewer was on b: follow the room on a instead
        await channel.close()
        await ok(a, "/api/live/join-live", {"token": v_token, "liveId": live_id})
        channel = await open_channel(a, v_token)
        json.loads(await channel.next())
    await survivor.send(live_id, {"msgType": "text", "text": "still here"}, sender="1")
    msgs = []
    while not any(m.get("text") == "still here" for m in msgs):
        msgs = [i["msg"] for i in json.loads(await channel.next(3))]
    await channel.close()


def test_a_priority_batch_is_urgent_for_the_channel_and_renders_the_same():
    from heihei.core.model import Message
    from heihei.protocols.channel import ChannelRenderer
    items = [{"msg": {"msgType": "gift", "giftId": 1}, "timeStamp": 1}]
    plain = Message(realm="heihei", conversation="r", sender="0", body={"t": "items", "items": items}, kind="room")
    urgent = Message(realm="heihei", conversation="r", sender="0", body={"t": "items", "items": items, "p": 1},
                     kind="room")
    renderer = ChannelRenderer()
    assert renderer.urgent(urgent) and not renderer.urgent(plain)
    assert renderer.render(urgent, ("r", True)) == renderer.render(plain, ("r", True))


def test_a_batch_without_v2_items_renders_alike_for_every_viewer_and_one_with_them_does_not():
    from heihei.core.model import Message
    from heihei.protocols.channel import ChannelRenderer
    renderer = ChannelRenderer()
    variants = [(side, v2) for side in ("s", "r") for v2 in (False, True)]

    def batch(*items):
        return Message(realm="heihei", conversation="r", sender="7", kind="room",
                       body={"t": "items", "items": [{"msg": m, "timeStamp": 1} if "msgType" not in m else m
                                                     for m in items]})

    plain = batch({"msgType": "gift", "giftId": 1}, {"msgType": "text", "text": "hi"})
    assert renderer.renders_alike(plain)
    assert len({renderer.render(plain, v) for v in variants}) == 1

    with_im = batch({"msgType": "text", "text": "hi"}, {"msgType": "IM", "msg": {"text": "v2"}})
    assert not renderer.renders_alike(with_im)
    assert len({renderer.render(with_im, v) for v in variants}) == 2  # v1 apps do not get the IM item

    one_im = Message(realm="heihei", conversation="c", sender="7", kind="user",
                     body={"t": "im", "msg": {"msgType": "text", "text": "x"}})
    assert not renderer.renders_alike(one_im)  # IM `users` differ for sender and receiver


def lanes_on_the_grid():
    """Lanes on a clock at 1000 s: on the grid of flush_s (0.1) and like_interval_s (1.0)."""
    clock = task.Clock()
    clock.advance(1000.0)
    lanes, sent, _ = make_lanes(clock)
    return clock, lanes, sent


async def _turn():
    await task.deferLater(reactor, 0, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_busy_rooms_chat_and_due_like_ride_its_next_gift_but_wait_at_most_two_flushes():
    clock, lanes, sent = lanes_on_the_grid()
    lanes.like("r", {"msgType": "like"})
    clock.advance(0.1)  # the room's first like item: the first in its interval, at once
    await _turn()
    assert sent == [("r", [{"msgType": "like", "count": 1}], "0")]
    clock.advance(0.81)  # 1000.91
    await lanes.send("r", {"msgType": "gift", "giftId": 1})
    clock.advance(0.02)
    await lanes.send("r", {"msgType": "text", "text": "a"}, sender="1")
    lanes.like("r", {"msgType": "like"}, count=3)
    clock.advance(0.07)  # 1001.0: the flush; a gift left 0.09 s ago, the chat waited 0.07 s
    await _turn()
    assert len(sent) == 2  # it waits for the next gift
    clock.advance(0.05)
    await lanes.send("r", {"msgType": "gift", "giftId": 2})
    assert [m.get("text") or m["msgType"] for m in sent[-1][1]] == ["a", "like", "gift"]
    assert sent[-1][1][1]["count"] == 3 and lanes.urgent_batches[-1] is True
    clock.advance(0.1)  # 1001.15 -> past the 1001.1 flush: nothing waited
    await _turn()
    assert len(sent) == 3

    # no gift comes: the chat leaves at the second flush (it waited at least flush_s by then)
    await lanes.send("r", {"msgType": "text", "text": "b"}, sender="1")  # 1001.15, a gift left 0.1 s ago
    await lanes.send("r", {"msgType": "gift", "giftId": 3})  # carries "b"
    assert [m.get("text") or m["msgType"] for m in sent[-1][1]] == ["b", "gift"]
    clock.advance(0.01)
    await lanes.send("r", {"msgType": "text", "text": "c"}, sender="1")  # 1001.16
    clock.advance(0.04)  # 1001.2: postponed (gift 0.05 s ago, "c" waited 0.04 s)
    await _turn()
    assert len(sent) == 4
    clock.advance(0.1)  # 1001.3: "c" waited 0.14 s: it leaves in a frame of its own
    await _turn()
    assert [m["text"] for m in sent[-1][1]] == ["c"] and lanes.urgent_batches[-1] is False
    lanes.forget("r")
    assert not clock.getDelayedCalls()


@pytest_twisted.ensureDeferred
async def test_a_quiet_rooms_chat_leaves_at_the_first_flush_after_an_old_gift():
    clock, lanes, sent = lanes_on_the_grid()
    await lanes.send("r", {"msgType": "gift", "giftId": 1})
    clock.advance(0.35)
    await lanes.send("r", {"msgType": "text", "text": "a"}, sender="1")
    clock.advance(0.06)  # past 1000.4: the last gift is 0.4 s old
    await _turn()
    assert [m.get("text") for m in sent[-1][1]] == ["a"]


def test_the_next_grid_time_is_always_ahead_even_where_floor_rounds_down():
    clock = task.Clock()
    lanes, _, _ = make_lanes(clock)
    for n in range(10200, 10300):  # grid points near 1000 s, some of which floor() rounds down
        clock.rightNow = n * 0.1
        assert lanes._until_next(0.1) > 0


@pytest_twisted.ensureDeferred
async def test_a_due_like_alone_waits_one_flush_for_a_gift_then_goes_in_its_own_frame():
    clock, lanes, sent = lanes_on_the_grid()
    lanes.like("r", {"msgType": "like"})
    clock.advance(0.1)
    await _turn()
    assert len(sent) == 1  # the first like item
    clock.advance(0.85)  # 1000.95
    await lanes.send("r", {"msgType": "gift", "giftId": 1})
    lanes.like("r", {"msgType": "like"}, count=2)
    clock.advance(0.05)  # 1001.0: due, a gift 0.05 s ago: it waits
    await _turn()
    assert len(sent) == 2
    clock.advance(0.1)  # 1001.1: it waited a flush: it goes, alone
    await _turn()
    assert sent[-1][1] == [{"msgType": "like", "count": 2}] and lanes.urgent_batches[-1] is False


@pytest_twisted.ensureDeferred
async def test_a_like_rides_a_gift_only_on_the_node_that_still_leads_the_room():
    clock, lanes, sent = lanes_on_the_grid()
    lanes.node_id = "A"
    lanes._leaders["r"] = ("A", clock.seconds() - 0.01)  # learned more than a third of a lease ago
    lanes.like("r", {"msgType": "like"}, count=3)
    await lanes.send("r", {"msgType": "gift", "giftId": 1})
    assert [m["msgType"] for m in sent[-1][1]] == ["gift"]  # the flush asks who leads now
    lanes._leaders["r"] = ("A", clock.seconds() + 1.0)
    await lanes.send("r", {"msgType": "gift", "giftId": 2})
    assert [m["msgType"] for m in sent[-1][1]] == ["like", "gift"] and sent[-1][1][0]["count"] == 3
    lanes._leaders["r"] = ("B", clock.seconds() + 1.0)
    lanes.like("r", {"msgType": "like"})
    clock.advance(1.0)
    await lanes.send("r", {"msgType": "gift", "giftId": 3})
    assert [m["msgType"] for m in sent[-1][1]] == ["gift"]  # B batches the likes
    lanes.forget("r")


@pytest_twisted.ensureDeferred
async def test_pruning_keeps_rooms_with_anything_waiting():
    from heihei.heihei.lanes import PRUNE_FLOOR
    clock, lanes, sent = lanes_on_the_grid()
    for i in range(PRUNE_FLOOR - 2):
        await lanes.send(f"r{i}", {"msgType": "gift", "giftId": i})
    clock.advance(1.05)  # all of them idle now
    await lanes.send("chat", {"msgType": "text", "text": "waits"}, sender="1")
    lanes.like("liked", {"msgType": "like"})
    lanes.like("liked", {"msgType": "like"})
    await lanes.send("fresh-gift", {"msgType": "gift", "giftId": 0})  # the map is full: prunes
    assert set(lanes._rooms) == {"chat", "liked", "fresh-gift"}
    await lanes.stop()
    texts = [m.get("text") for _, batch, _ in sent for m in batch]
    assert "waits" in texts and any(m.get("count") == 2 for _, batch, _ in sent for m in batch)
    assert not clock.getDelayedCalls()


@pytest_twisted.ensureDeferred
async def test_stop_skips_rooms_pruned_while_an_earlier_final_flush_was_under_way():
    from twisted.internet import defer
    from twisted.logger import globalLogPublisher

    from heihei.heihei.lanes import PRUNE_FLOOR
    failures = []

    def observe(event):
        if event.get("log_failure") is not None:
            failures.append(event)

    clock, lanes, sent = lanes_on_the_grid()
    gate = defer.Deferred()
    plain = lanes.broadcast_items

    async def slow_for_one_room(room, items, *, sender="0", priority=False):
        await plain(room, items, sender=sender, priority=priority)
        if any(item["msg"].get("text") == "y" for item in items):
            await gate

    lanes.broadcast_items = slow_for_one_room
    await lanes.send("slow", {"msgType": "text", "text": "x"}, sender="1")  # first in the map
    for i in range(PRUNE_FLOOR - 1):
        await lanes.send(f"idle{i}", {"msgType": "gift", "giftId": i})
    clock.advance(5.0)
    await _turn()
    await lanes.send("slow", {"msgType": "text", "text": "y"}, sender="1")  # its final flush waits
    globalLogPublisher.addObserver(observe)
    try:
        stopping = defer.Deferred.fromCoroutine(lanes.stop())
        await lanes.send("late", {"msgType": "gift", "giftId": 1})  # a request still in flight: prunes
        gate.callback(None)
        await stopping
    finally:
        globalLogPublisher.removeObserver(observe)
    assert failures == []
    assert [m.get("text") for _, batch, _ in sent for m in batch if m.get("text")] == ["x", "y"]


@pytest_twisted.ensureDeferred
async def test_a_due_like_waits_one_flush_at_most_even_when_the_nodes_leadership_goes_stale_meanwhile():
    class LeaderStore(CountingStore):
        async def eval(self, source, keys, args):
            if "lanelead" in keys[0]:
                return "A"  # this node leads the room
            return await super().eval(source, keys, args)

    clock, lanes, sent = lanes_on_the_grid()
    lanes.store = LeaderStore()
    lanes.node_id = "A"
    lanes.like("r", {"msgType": "like"})
    clock.advance(0.1)
    await _turn()
    assert sent[-1][1] == [{"msgType": "like", "count": 1}]
    lanes._leaders["r"] = ("A", 1001.03)  # its belief that it leads runs out at 1001.03
    clock.advance(0.87)  # 1000.97
    await lanes.send("r", {"msgType": "gift", "giftId": 1})
    lanes.like("r", {"msgType": "like"}, count=2)  # due at 1001.0
    clock.advance(0.03)  # 1001.0: a gift 0.03 s ago: the like waits for the next one
    await _turn()
    clock.advance(0.05)  # 1001.05: a gift, but the belief is stale: the like does not ride it
    await lanes.send("r", {"msgType": "gift", "giftId": 2})
    assert [m["msgType"] for m in sent[-1][1]] == ["gift"]
    clock.advance(0.03)  # 1001.08: chat forwarded by another node arrives; it would wait for a gift
    lanes.received("lanes:A", json.dumps({"room": "r", "item": {"msg": {"msgType": "text", "text": "c"},
                                                                 "timeStamp": 1001}}).encode())
    clock.advance(0.04)  # past 1001.1: the like has waited a flush: it goes, and the chat with it
    await _turn()
    assert [m.get("text") or m["msgType"] for m in sent[-1][1]] == ["c", "like"]
    assert sent[-1][1][1]["count"] == 2
    lanes.forget("r")
