"""Harness helpers: message stamps, delivery counting, statistics, and that the peers'
frames are the size of heihei's (no server, no timing)."""

from bench import common, roomload, unicast
from heihei.protocols.boss_frames import format_delivery
from heihei.core.model import Message
from heihei.protocols.live import LiveRenderer


def test_room_stamps_round_trip_and_other_frames_are_not_messages():
    text = roomload.message_text(42, 1234567890123)
    assert len(text) == roomload.TEXT_CHARS and text.startswith("~42~1234567890123~")
    assert roomload.parse_stamp(roomload.peer_message(text)) == (42, 1234567890123)
    assert roomload.parse_stamp(b'{"code":1,"msg":"\xe6\x88\x90\xe5\x8a\x9f","cmd":"Total","data":{"total":3}}') is None


def test_peers_broadcast_exactly_the_frame_heihei_delivers():
    text = roomload.message_text(7, 10**18)
    body = {"userName": roomload.SENDER_CODE, "headPic": roomload.HEAD_PIC, "msg": text,
            "time": roomload.TIME_SHAPE}
    message = Message(realm="live", conversation="r:bench", sender="o-bench-sender", body=body, kind="room")
    heihei = LiveRenderer().render(message, "0")
    assert roomload.peer_message(text) == heihei


def test_tally_counts_every_delivery_and_completes_each_message_once():
    tally = roomload.Tally(expected=3, groups=2)
    completed = []
    tally.on_complete = lambda seq, t: completed.append(seq)
    frame = lambda seq, ts: roomload.peer_message(roomload.message_text(seq, ts))  # noqa: E731
    spans_a, spans_b = tally.spans_sink_for(0), tally.spans_sink_for(1)

    def a(payload, t):  # a read of one whole frame
        spans_a(payload, ((0, len(payload)),), t)

    def b(payload, t):
        spans_b(payload, ((0, len(payload)),), t)

    a(frame(1, 100), 150)
    b(frame(1, 100), 170)
    a(frame(2, 200), 230)
    b(b'{"code":1,"msg":"ok","cmd":"Total","data":{"total":3}}', 240)
    assert completed == []
    a(frame(1, 100), 190)
    assert completed == [1] and tally.counts == {b"2": 1}
    assert list(tally.group_latencies[0]) == [50, 30, 90] and list(tally.group_latencies[1]) == [70]
    assert sorted(tally.latencies) == [30, 50, 70, 90]
    assert tally.deliveries == 4 and tally.others == 1 and tally.last_t == 190
    tally.reset()
    assert tally.deliveries == 0 and len(tally.latencies) == 0 and tally.counts == {b"2": 1}


def test_unicast_stamps_survive_the_boss_delivery_format():
    content = unicast.content(9, 123456789)
    frame = format_delivery("text", "bs1", content, "unicast", "bs1", 1700000000, "{}").encode()
    assert unicast.parse_delivery(frame) == (9, 123456789)
    assert unicast.parse_delivery(b"heartbeat_3") is None
    assert unicast.parse_delivery(b"text_bs1_no stamp here_unicast_bs1_1_") is None


def test_median_range_over_runs():
    assert common.median_range([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": [3.0, 1.0, 2.0]}
    assert common.median_range([4, 1, 3, 2])["median"] == 2.5
    assert common.median_range([None, 5.0, float("nan")])["median"] == 5.0
    assert common.median_range([None])["median"] is None


def test_latency_summary_in_milliseconds():
    ns = [i * 1_000_000 for i in range(1, 101)]  # 1..100 ms
    assert common.latency_summary(ns) == {"p50_ms": 51.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert common.latency_summary([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None}


def test_fake_wechat_checks_the_app_and_names_users_after_their_code():
    token = common.FakeWeChat.answer(f"/sns/oauth2/access_token?appid={common.WECHAT_APPID}"
                                     f"&secret={common.WECHAT_SECRET}&code=bob&grant_type=authorization_code")
    assert token["openid"] == "o-bob" and token["access_token"] == "AT-bob"
    info = common.FakeWeChat.answer("/sns/userinfo?access_token=AT-bob&openid=o-bob&lang=zh_CN")
    assert info["nickname"] == "bob"
    assert common.FakeWeChat.answer("/sns/oauth2/access_token?appid=x&secret=y&code=bob")["errcode"] == 40125


def test_bench_config_lifts_rate_limits_and_parses_as_heihei_settings(tmp_path):
    from heihei.config import load_settings

    path = tmp_path / "bench.toml"
    path.write_text(common.heihei_config("http://127.0.0.1:1234"))
    settings = load_settings(str(path))
    assert settings.admin.token == common.ADMIN_TOKEN
    assert settings.live.wechat_api == "http://127.0.0.1:1234" and settings.live.rate >= 1e6
    assert settings.boss.insecure_login and settings.boss.rate_per_second >= 1e6
    assert settings.live.max_connections > 10001 and settings.boss.max_connections > 10001


def test_tally_takes_a_whole_read_in_place_pings_and_other_frames_included(monkeypatch):
    import asyncio
    from types import SimpleNamespace

    from bench import wsload
    from bench.wsload import OP_PING, OP_TEXT

    class Transport:
        def __init__(self):
            self.written = []

        def write(self, data):
            self.written.append(data)

    monkeypatch.setattr(wsload, "time", SimpleNamespace(monotonic_ns=lambda: 1000))  # every read at t=1000

    async def scenario():
        tally = roomload.Tally(expected=2)
        completed = []
        tally.on_complete = lambda seq, t: completed.append(seq)
        client = wsload.WSClient("127.0.0.1", 1, "/", None)
        client.connection_made(Transport())
        client.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        client.on_texts = tally.spans_sink_for(0)
        def message(seq, ts):
            return wsload.server_frame(OP_TEXT, roomload.peer_message(roomload.message_text(seq, ts)))

        read = (message(1, 100) + wsload.server_frame(OP_PING, b"p") + message(2, 200)
                + wsload.server_frame(OP_TEXT, b'{"code":1,"msg":"ok","cmd":"Total","data":{"total":3}}')
                + message(1, 100))
        cut = message(2, 200)
        client.data_received(read + cut[:10])
        assert completed == [1] and tally.counts == {b"2": 1}
        assert tally.deliveries == 3 and tally.others == 1 and list(tally.latencies) == [900, 800, 900]
        client.data_received(cut[10:])  # the rest of a frame cut by the network completes message 2
        assert completed == [1, 2] and tally.counts == {} and tally.deliveries == 4
        assert list(tally.latencies)[-1] == 1000 - 200
        assert [frame[0] & 0x0F for frame in client.transport.written[1:]] == [wsload.OP_PONG]

    asyncio.run(scenario())


def test_the_client_parse_timer_counts_every_frame_it_feeds(capsys):
    from bench import client_parse

    assert client_parse.main(["--reads", "50", "--runs", "1", "--frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "read of 3 frames" in out and "read of 1 frame" in out
