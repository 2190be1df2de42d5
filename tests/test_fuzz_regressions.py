"""
Crashes the fuzzers found in the wire parsers (bench/fuzz.py), and the same
defect on the HTTP surfaces: a check that accepts any Unicode digit
(`str.isdigit()`: "²", "١") followed by `int()`, which reads only some of them,
so a client's input ends in a ValueError instead of the parser's refusal.
"""

import json

import pytest
import pytest_twisted
import treq

from heihei.core.errors import Refused
from heihei.heihei.im import parse_client_im
from heihei.protocols.jim import BadRequest, as_int
from tests.conftest import http_url

ADMIN_TOKEN = "fuzz-admin-token"
JIM_KEY = "fuzz-jim-key"


@pytest.mark.parametrize("text", ["²", "²1", "-²", "--5", "1²3"])
def test_jim_as_int_refuses_what_int_cannot_read(text):
    # found by bench/fuzz/jim_frames.py: {"cmd": 17, "type": "²1", "userId": "u1"} made cmd_get_user
    # log "internal error"; {"cmd": "²"} raises out of _handle itself (as_int of cmd catches only
    # BadRequest), so the client gets no answer at all
    with pytest.raises(BadRequest):
        as_int(text, "type")


def test_heihei_im_refuses_a_to_user_id_of_other_digits():
    # found by bench/fuzz/heihei_im.py: [{"msgType": "IM", "msg": {"toUserId": "100²34", ...}}] raised
    # ValueError out of parse_client_im (ChannelProtocol._send_im only catches Refused)
    item = {"msgType": "IM", "msg": {"toUserId": "100²34", "msgType": "text", "content": {"text": "hi"}}}
    with pytest.raises(Refused):
        parse_client_im(item, 500)


@pytest_twisted.ensureDeferred
async def test_vanke_choice_with_a_unicode_digit_is_a_400(nodes):
    # heihei/web/vanke.py _choice: "²".isdigit() then int("²")
    node = await nodes.start("a", {"jim": {"api_key": JIM_KEY}})
    response = await treq.post(http_url(node, "/im/vanke/initUser"), data=json.dumps({"senderId": "a", "type": "²"}),
                               headers={"X-Api-Key": [JIM_KEY]})
    answer = json.loads(await response.content())
    assert (response.code, answer["code"]) == (400, 400), answer
    assert "type must be one of" in answer["msg"]


@pytest_twisted.ensureDeferred
async def test_admin_messages_count_with_a_unicode_digit_is_a_400(nodes):
    # heihei/web/admin.py _count: "²".isdigit() then int("²")
    node = await nodes.start("a", {"admin": {"token": ADMIN_TOKEN}})
    response = await treq.get(http_url(node, "/admin/live/activities/a1/messages?count=%C2%B2"),
                              headers={"Authorization": [f"Bearer {ADMIN_TOKEN}"]})
    answer = json.loads(await response.content())
    assert response.code == 400 and "count" in answer["error"], (response.code, answer)
