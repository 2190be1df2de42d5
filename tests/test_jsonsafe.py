import pytest

from heihei.jsonsafe import BadJSON, decode_json, decode_json_object, encode_json


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xfe", "not valid JSON"),
    ('"\ud800"', "not valid UTF-8"),
    (b'"\\ud800"', "not valid JSON"),
    (b"[" * 2000 + b"]" * 2000, "not valid JSON"),
    (b"[" * 100 + b"]" * 100, "nesting deeper than"),
    (b"1" + b"0" * 400, "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"x" * 5000, "larger than"),
])
def test_every_kind_of_bad_input_becomes_bad_json(data, reason):
    with pytest.raises(BadJSON) as info:
        decode_json(data, max_bytes=4096)
    assert reason in info.value.reason


def test_size_is_checked_before_parsing():
    with pytest.raises(BadJSON, match="larger than 10 bytes"):
        decode_json(b'{"a": "valid but long"}', max_bytes=10)


def test_good_input_round_trips():
    value = {"cmd": "Message", "data": {"msg": "你好_world", "n": 2 ** 62}}
    assert decode_json(encode_json(value), max_bytes=1000) == value
    assert "你好".encode() in encode_json(value)


def test_object_required():
    with pytest.raises(BadJSON, match="expected a JSON object"):
        decode_json_object(b"[1]", max_bytes=100)
