"""heihei.web.kit.readers.parse_form answers what twisted.web's parse_qs(qs, keep_blank_values=1) does."""

from __future__ import annotations

import random

from twisted.web.http import parse_qs

from heihei.web.kit.readers import parse_form

CASES = [
    b"", b"a=1", b"a=1&b=2", b"a=1&a=2", b"a=", b"=v", b"a", b"a&b=1", b"a=1;b=2", b"a=1&&b=2", b"a=b=c",
    b"token=abc-DEF_123.~&liveId=42&giftId=101&amount=3&gift_uuid=combo-9",
    b"name=%E4%B8%AD%E6%96%87&text=a+b+c", b"k%20ey=v%2Bw", b"a=%zz", b"a=%", b"a=1%2", b"%41=%42",
    b"a=1;b", b"+=+", b"a+b=c%3Dd&e=%26",
]


def test_parse_form_is_twisted_s_parse_qs_with_blank_values():
    for qs in CASES:
        assert parse_form(qs) == parse_qs(qs, 1), qs
    rnd = random.Random(19)
    alphabet = b"ab=&;%+2F0z"
    for _ in range(5000):
        qs = bytes(rnd.choice(alphabet) for _ in range(rnd.randrange(12)))
        assert parse_form(qs) == parse_qs(qs, 1), qs
