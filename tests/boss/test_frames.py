"""The frame grammar and the tickets, as pure functions."""

import json

import pytest

from heihei.protocols import boss_frames as frames
from heihei.protocols.boss_frames import FrameError, Login, Logout, Members, Records, Send, parse, split_type
from heihei.boss.tickets import TicketError, check_ticket, make_ticket


@pytest.mark.parametrize("text, expected", [
    ("text_42_hello_unicast_{}", Send("text", "42", "hello", "unicast", "{}")),
    ("text_42_hello_unicast_", Send("text", "42", "hello", "unicast", "")),
    ("text_42_hello_unicast", Send("text", "42", "hello", "unicast", "")),
    ("text_7_hi_there_group_abc", Send("text", "7", "hi_there", "group", "abc")),
    ("text_7_a_unicast_b_group_{\"x\":1}", Send("text", "7", "a_unicast_b", "group", "{\"x\":1}")),
    # a JSON extension with separators inside its strings: the JSON one wins
    ('text_7_hi_unicast_{"c":"my_group_chat","d":"x_unicast_y"}',
     Send("text", "7", "hi", "unicast", '{"c":"my_group_chat","d":"x_unicast_y"}')),
    ('text_7_a_group_b_unicast_["q_group_"]', Send("text", "7", "a_group_b", "unicast", '["q_group_"]')),
    # an opaque extension: the last separator
    ("emotion_7_[smile]_unicast_eyJhIjoxfQ==", Send("emotion", "7", "[smile]", "unicast", "eyJhIjoxfQ==")),
    ("picture_7_http://x/a_b.jpg_group_x_y", Send("picture", "7", "http://x/a_b.jpg", "group", "x_y")),
    ("audio_user@x.com_u_unicast", Send("audio", "user@x.com", "u", "unicast", "")),
    ("video_7_中文_内容_unicast_{\"会话\":\"老板_群\"}", Send("video", "7", "中文_内容", "unicast", "{\"会话\":\"老板_群\"}")),
    ("login_1000001653", Login("1000001653", None)),
    ("login_5_1700000000." + "a" * 64, Login("5", "1700000000." + "a" * 64)),
    ("logout_5", Logout("5")),
    ("members_10", Members("10")),
    ("records_10_1700000000", Records("10", 1700000000, None)),
    ("records_10_0_unicast", Records("10", 0, "unicast")),
])
def test_parse(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text, code, reason", [
    ("", 400, "malformed frame"),
    ("nonsense", 400, "unknown kind"),
    ("ping_1", 400, "unknown kind"),
    ("text", 400, "malformed text frame"),
    ("text_5", 400, "malformed text frame, no content"),
    ("text_5_hello", 400, "missing type, expected unicast or group"),
    ("text_5_unicast_x", 400, "missing type, expected unicast or group"),
    ("text_5__group", 400, "empty content"),
    ("text__hi_unicast", 400, "bad target id"),
    ("text_-5_hi_unicast", 400, "bad target id"),
    ("login_", 400, "bad user id"),
    ("login_a:b", 400, "bad user id"),
    ("login_5_notaticket", 401, "malformed ticket"),
    ("login_5_17." + "A" * 64, 401, "malformed ticket"),
    ("logout_", 400, "bad user id"),
    ("members_1_2", 400, "bad group id"),
    ("records_1", 400, "malformed records frame, expected id and timet"),
    ("records_1_2_3_4", 400, "malformed records frame, expected id and timet"),
    ("records_1_-2", 400, "malformed records frame, expected id and timet"),
    ("records_1_2_both", 400, "records type must be unicast or group"),
])
def test_refused(text, code, reason):
    with pytest.raises(FrameError) as info:
        parse(text)
    assert (info.value.code, info.value.reason) == (code, reason)


def test_ids_are_bounded():
    assert parse("members_" + "9" * 64) == Members("9" * 64)
    with pytest.raises(FrameError):
        parse("members_" + "9" * 65)


def test_many_separators_cost_a_bounded_number_of_json_tries():
    body = "x" + "_group_{" * 5000 + "_unicast_tail"
    content, type_, extension = split_type(body)
    assert (type_, extension) == ("unicast", "tail")
    assert content.startswith("x_group_{")


def test_a_json_extension_round_trips_through_a_delivery():
    ext = json.dumps({"sender": "a_b", "conversation": "c_group_d"})
    sent = parse(f"text_2_x_y_unicast_{ext}")
    delivered = frames.format_delivery(sent.kind, "1", sent.content, sent.type, "1", 1700000000, sent.extension)
    assert delivered == f"text_1_x_y_unicast_1_1700000000_{ext}"


def test_server_frames():
    assert frames.format_error(403, "not_a member") == "error_403_not a member"
    assert frames.format_heartbeat(3) == "heartbeat_3"
    assert frames.format_members("10", ["1", "2"]) == 'members_10_["1","2"]'
    assert frames.format_records("10", 5, ["a_b"]) == 'records_10_5_["a_b"]'


def test_tickets():
    t = make_ticket("s3cret", "42", 1000)
    check_ticket("s3cret", "42", t, 999.5)
    check_ticket("s3cret", "42", t, 1000)
    for secret, user, ticket, now, message in [
        ("s3cret", "42", t, 1000.5, "ticket expired"),
        ("other", "42", t, 10, "invalid ticket"),
        ("s3cret", "43", t, 10, "invalid ticket"),
        ("s3cret", "42", t.replace("1000.", "2000."), 10, "invalid ticket"),
        ("s3cret", "42", "1000.xyz", 10, "malformed ticket"),
        ("", "42", t, 10, "tickets not configured"),
    ]:
        with pytest.raises(TicketError, match=message):
            check_ticket(secret, user, ticket, now)
