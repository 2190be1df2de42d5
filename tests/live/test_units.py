"""The live realm's decisions as plain functions and small objects (no network)."""

import time

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.logger import formatEvent, globalLogPublisher

from heihei.core.model import Message
from heihei.live.activities import ENDED, OPEN, PENDING, Activity, InvalidActivity, activity_state, valid_id
from heihei.live.mutes import muted_at
from heihei.live.service import local_time
from heihei.live.sessions import is_live
from heihei.live.totals import TotalCoalescer, next_push_at
from heihei.protocols.live import LiveRenderer


def test_activity_state_edges():
    assert activity_state(100, 200, 99.999) == PENDING
    assert activity_state(100, 200, 100) == OPEN
    assert activity_state(100, 200, 199.999) == OPEN
    assert activity_state(100, 200, 200) == ENDED


def test_activity_ids():
    assert valid_id("1001") and valid_id("spring-launch_2024") and valid_id("x" * 64)
    for bad in ("", "x" * 65, "a:b", "a*", "../x", "空", 1001, None):
        assert not valid_id(bad)


def test_activity_round_trip():
    a = Activity.from_fields("9", {"title": "t", "startTime": "1700000000", "endTime": 1700000100})
    assert a.start_s == 1700000000 and a.details == "" and a.share_pic == ""
    assert Activity.from_json(a.to_json()) == a
    with pytest.raises(InvalidActivity):
        Activity.from_fields("9", {"title": "t", "startTime": "17e8", "endTime": 1700000100})


def test_token_and_mute_expiry_edges():
    assert is_live(1000, 999) and not is_live(1000, 1000)
    assert muted_at(0, 10**15)
    assert muted_at(1000, 999) and not muted_at(1000, 1000)


def test_local_time_format():
    ts = 1_497_326_769
    assert local_time(ts * 1000) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    assert len(local_time(ts * 1000)) == 19


class FakeClient:
    def __init__(self, user):
        self.user = user


def test_renderer_has_two_variants():
    renderer = LiveRenderer()
    message = Message(realm="live", conversation="r:1", sender="o-a",
                      body={"userName": "A", "headPic": "p", "msg": "hi", "time": "2017-06-13 04:06:09"})
    assert renderer.variant(message, FakeClient("o-a")) == "1"
    assert renderer.variant(message, FakeClient("o-b")) == "0"
    assert renderer.variant(message, FakeClient(None)) == "0"
    assert renderer.render(message, "1") == (
        '{"code":1,"msg":"hi","cmd":"Message","data":{"userName":"A","headPic":"p","my":"1",'
        '"time":"2017-06-13 04:06:09","msg":"hi"}}').encode()


def test_next_push_at():
    assert next_push_at(10.0, 1.0) == 11.0


class Pushes:
    def __init__(self):
        self.calls = []
        self.gate: defer.Deferred | None = None

    async def push(self, room):
        self.calls.append(room)
        if self.gate is not None:
            await self.gate


def test_coalescer_leading_and_trailing_edge():
    clock, pushes = task.Clock(), Pushes()
    c = TotalCoalescer(clock, 1.0, pushes.push)
    c.changed("r")
    assert pushes.calls == ["r"]  # at once
    for _ in range(50):
        c.changed("r")
    clock.advance(0.5)
    assert pushes.calls == ["r"]
    clock.advance(0.5)
    assert pushes.calls == ["r", "r"]  # one trailing push for the 50 changes
    clock.advance(1.0)
    assert pushes.calls == ["r", "r"] and c.pending() == 0  # quiet: forgotten
    c.changed("r")
    assert pushes.calls == ["r", "r", "r"]
    c.changed("other")
    assert pushes.calls[-1] == "other"  # rooms are independent
    c.stop()
    assert clock.getDelayedCalls() == []
    c.changed("r")
    assert len(pushes.calls) == 4


def test_coalescer_waits_for_a_slow_push():
    clock, pushes = task.Clock(), Pushes()
    pushes.gate = defer.Deferred()
    c = TotalCoalescer(clock, 1.0, pushes.push)
    c.changed("r")
    c.changed("r")
    clock.advance(5)
    assert pushes.calls == ["r"]  # the first push has not finished: no second one yet
    gate, pushes.gate = pushes.gate, None
    gate.callback(None)
    assert pushes.calls == ["r"]
    clock.advance(0)  # more than an interval passed already: due at once
    assert pushes.calls == ["r", "r"]
    c.stop()


def test_coalescer_survives_a_failing_push():
    clock = task.Clock()
    calls = []

    async def push(room):
        calls.append(room)
        raise RuntimeError("redis down")

    c = TotalCoalescer(clock, 1.0, push)
    c.changed("r")
    c.changed("r")
    clock.advance(1)
    assert calls == ["r", "r"]
    c.stop()


@pytest_twisted.ensureDeferred
async def test_generated_admin_token_file_is_named_in_the_log_but_not_the_token(nodes):
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        node = await nodes.start("a")
    finally:
        globalLogPublisher.removeObserver(events.append)
    token = open(f"{node.data_dir}/admin-token").read().strip()
    texts = [formatEvent(e) for e in events]
    assert any("admin-token" in t and node.data_dir in t for t in texts)
    assert not any(token in t for t in texts)


@pytest.mark.parametrize("live, message", [
    ({"rate": 0}, "[live] rate must be greater than 0"),
    ({"burst": 0}, "[live] burst must be at least 1"),
    ({"max_chars": 0}, "[live] max_chars must be at least 1"),
    ({"wechat_api": "ftp://x"}, "[live] wechat_api must be an http"),
    ({"token_ttl": -1.0}, "[live] token_ttl must be greater than 0"),
])
def test_bad_live_settings_stop_start_up(tmp_path, live, message):
    from heihei.config import ConfigError
    from heihei.node import Node
    from tests.conftest import node_settings

    with pytest.raises(ConfigError) as info:
        Node(node_settings(str(tmp_path), "redis://127.0.0.1:1/0", "x", {"live": live}))
    assert message in str(info.value)
