"""Pure parts of the live rooms: timers' leases in Redis, a replay's chat timing and zip, LiveInfo rendering."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from heihei.core.errors import Refused
from heihei.heihei import liveinfo
from heihei.heihei.deadlines import Deadlines
from heihei.heihei.errors import BAD_PARAMETER
from heihei.heihei.livecore import settle, together
from heihei.heihei.replays import build_zip, parse_segments, position_ms, replay_stamp


@pytest_twisted.ensureDeferred
async def test_deadlines_lease_rearm_and_fire_at_least_once(nodes):
    node = await nodes.start("a")
    clock = task.Clock()
    clock.advance(1000)
    one = Deadlines(node.store, clock, "hh:test:timers", lease_s=30)
    other = Deadlines(node.store, clock, "hh:test:timers", lease_s=30)  # another node, same timers
    await one.set("a|1", 1_005_000)
    await one.set("v|1|7", 1_010_000)
    armed = []
    one.on_armed = armed.append
    assert await one.claim() == [] and one.next_due_ms == 1_005_000  # what is due next, cluster-wide
    clock.advance(6)
    claimed = await one.claim()
    # the lease's score: now + lease, half a millisecond off the grid re-arms use
    assert claimed == [("a|1", 1_036_000.5)] and one.next_due_ms == 1_010_000
    assert await other.claim() == []  # leased: not twice at once
    assert await one.still_claimed("a|1", 1_036_000.5)
    await one.set("a|1", 1_050_000)  # a heart-beat re-armed it meanwhile: the claim is void
    assert armed == [1_050_000]
    assert not await one.still_claimed("a|1", 1_036_000.5)
    assert not await one.done("a|1", 1_036_000.5)
    assert await one.due_at("a|1") == 1_050_000
    clock.advance(5)
    (member, claim), = await other.claim()
    assert member == "v|1|7"
    # the claimer dies without `done`: after the lease the timer is due again, for anyone
    clock.advance(31)
    assert [m for m, _ in await one.claim()] == ["v|1|7"]
    clock.advance(20)
    (member, claim), = await one.claim()
    assert member == "a|1" and await one.done("a|1", claim)
    await one.cancel("v|1|7")
    clock.advance(100)
    assert await one.claim() == [] and one.next_due_ms is None


def test_replay_timing_follows_the_recording():
    # published 100.0-110.0 s, gone 110-130, back 130-140 (ms below); created at 95.5 s
    segments = parse_segments(["100000|110000", "130000|", "bad"])
    assert segments == [(100000, 110000), (130000, None)]
    assert position_ms(90000, segments) == 0  # before the stream: at the start
    assert position_ms(105000, segments) == 5000
    assert position_ms(120000, segments) == 10000  # said during the gap: when it came back
    assert position_ms(135000, segments) == 15000
    assert replay_stamp(135000, segments, 95500) == 95 + 15
    assert replay_stamp(135000, [], 95500) == 135  # never published: its own time


def test_the_zip_is_files_of_json_arrays_of_strings():
    items = [{"msg": {"msgType": "text", "text": f"{n}"}, "timeStamp": n} for n in range(2500)]
    archive = zipfile.ZipFile(io.BytesIO(build_zip("42", items)))
    names = sorted(archive.namelist())
    assert names == ["message_42_0.txt", "message_42_1.txt", "message_42_2.txt"]
    read = []
    for name in names:
        strings = json.loads(archive.read(name))
        assert all(isinstance(s, str) for s in strings)
        read += [json.loads(s) for s in strings]
    assert read == items
    assert zipfile.ZipFile(io.BytesIO(build_zip("43", []))).namelist() == ["message_43_0.txt"]


def test_live_info_has_what_the_client_reads_and_hides_credentials():
    live = {"liveId": "1000000001", "userId": "10001", "title": "t", "status": "1", "visible": "1",
            "createTime": "1473418024000", "startTime": "1473418030000", "endTime": "", "city": "北京",
            "totalTickets": "15"}
    anchor = {"displayName": "主播", "gender": "Female", "birthDay": "2000-01-01", "coverUrl": "c"}
    addresses = liveinfo.Addresses(stream="flv", push="rtmp", qiniu_obj={"id": "z1"})
    common = dict(counts=liveinfo.Counts(online=3, total=9), addresses=addresses, share_addr="s",
                  lookback_addr="", message_addr="", utc_offset_h=8.0)
    mine = liveinfo.live_info(live, anchor, for_anchor=True, **common)
    theirs = liveinfo.live_info(live, anchor, for_anchor=False, **common)
    assert mine["pushAddr"] == "rtmp" and mine["qiniuObj"] == {"id": "z1"}
    assert theirs["pushAddr"] == "" and "qiniuObj" not in theirs
    assert theirs["createTime"] == "2016-09-09 18:47:04"  # UTC+8, as the seed's examples
    assert theirs["roomId"] == theirs["liveId"] == 1000000001
    assert (theirs["onlineUsers"], theirs["totalUsers"], theirs["livetotalticket"]) == (3, 9, 15)
    assert theirs["userName"] == theirs["creatorName"] == "主播" and theirs["liveCity"] == "北京"
    assert theirs["length"] is None
    share = liveinfo.share(title="嘿嘿直播", anchor_name="主播", url="u", cover_url="c", status=1)
    assert set(share) == {"weibo", "wechat", "friend"} and share["weibo"]["content"] == "主播 正在直播"


@pytest_twisted.ensureDeferred
async def test_together_gives_results_in_order_and_raises_the_first_failure():
    later = defer.Deferred()

    async def value(v):
        return v

    async def waits():
        return await later

    async def fails():
        raise Refused(BAD_PARAMETER, "no")

    reactor.callLater(0, later.callback, "late")
    assert await together(value(1), waits(), value(3)) == [1, "late", 3]
    with pytest.raises(Refused):
        await together(value(1), fails())
    failed = defer.fail(RuntimeError("unused"))
    pending = defer.Deferred()
    reactor.callLater(0, pending.errback, RuntimeError("also unused"))
    await settle(failed, pending)  # neither raises nor is left unhandled
