"""Fast tests of the pure parts: parameter declarations, IM checks, signatures, links."""

from __future__ import annotations

import pytest
import pytest_twisted

from heihei.core.errors import Refused
from heihei.heihei.im import ImError, item_of, parse_client_im, preview
from heihei.web.api.base import HEIHEI
from heihei.web.api.errors import of_refusal
from heihei.web.kit.params import BadParameter, Endpoint, integer, json_object, long, string, validate
from heihei.web.messageserver import canonical, sign
from heihei.heihei.push import link_for

EP = Endpoint("/x", "x", (
    string("name", max_length=5, too_long_code=447),
    string("kind", required=False, enum=("a", "b"), default="a"),
    long("id", required=False, minimum=0),
    integer("n", required=False, maximum=10),
    string("openId", required=False, required_if=("kind", "b"), aliases=("openid",)),
    json_object("data", required=False, max_length=50),
), auth="open")


def test_conversion_and_defaults():
    got = validate(EP, {"name": "abc", "id": "9223372036854775807", "n": 3, "ignored": "x"})
    assert got == {"name": "abc", "kind": "a", "id": 2 ** 63 - 1, "n": 3, "openId": None, "data": None}
    assert validate(EP, {"name": 12, "kind": "b", "openid": "o"})["openId"] == "o"
    assert validate(EP, {"name": "x", "data": '{"a": [1]}'})["data"] == {"a": [1]}
    assert validate(EP, {"name": "x", "data": {"a": 1}})["data"] == {"a": 1}


@pytest.mark.parametrize("raw, code, needle", [
    ({}, 700, "name (required)"),
    ({"name": ""}, 700, "name (required)"),
    ({"name": "toolong"}, 447, ""),
    ({"name": True}, 700, "name (must be a string)"),
    ({"name": "x", "kind": "c"}, 700, "kind (must be one of a, b)"),
    ({"name": "x", "id": "-1"}, 700, "id (must be at least 0)"),
    ({"name": "x", "id": "9223372036854775808"}, 700, "id (out of range)"),
    ({"name": "x", "id": "1e3"}, 700, "id (must be an integer)"),
    ({"name": "x", "id": 1.5}, 700, "id (must be an integer)"),
    ({"name": "x", "n": 11}, 700, "n (must be at most 10)"),
    ({"name": "x", "n": 2 ** 31}, 700, "n (out of range)"),
    ({"name": "x", "kind": "b"}, 700, "openId (required)"),
    ({"name": "x", "data": "[1]"}, 700, "data (must be a JSON object)"),
    ({"name": "x", "data": "{"}, 700, "data (not valid JSON"),
    ({"name": "x", "data": '{"k": "' + "x" * 60 + '"}'}, 700, "data (larger than 50 bytes)"),
])
def test_refusals_name_the_parameter(raw, code, needle):
    with pytest.raises(BadParameter) as info:
        validate(EP, raw)
    error = HEIHEI.translate(info.value)  # in the heihei app's words
    assert error.code == code
    assert needle in error.errormsg


def test_client_im_checks():
    m = parse_client_im({"msgType": "IM", "msg": {"toUserId": "10002", "msgType": "gift",
                                                   "content": {"giftId": 3, "x": 1}, "clientMsgId": 7}}, 100)
    assert (m.to, m.msg_type, m.content, m.client_msg_id) == ("10002", "gift", {"giftId": 3}, "7")
    jump = parse_client_im({"msgType": "IM", "msg": {"toUserId": 1, "msgType": "sysnotify", "content": {"text": "t"},
                                                      "jump": {"text": "查看", "link": "wmlivesheihei://topic/1"}}}, 100)
    assert jump.jump == {"text": "查看", "link": "wmlivesheihei://topic/1"}
    for bad in ([], {"msgType": "IM"}, {"msgType": "IM", "msg": {"toUserId": True, "msgType": "text"}},
                {"msgType": "IM", "msg": {"toUserId": "1x", "msgType": "text", "content": {"text": "a"}}},
                {"msgType": "IM", "msg": {"toUserId": 1, "msgType": "dueChat", "content": {"chatStatus": -1,
                                                                                           "chatLength": 1}}},
                {"msgType": "IM", "msg": {"toUserId": 1, "msgType": "video", "content": {"video": "x" * 2000}}},
                {"msgType": "IM", "msg": {"toUserId": 1, "msgType": "text", "content": {"text": "a"},
                                          "clientMsgId": "c" * 65}}):
        with pytest.raises(ImError) as info:
            parse_client_im(bad, 100)
        assert of_refusal(info.value.reason).code == 700


def test_items_and_previews():
    body = {"t": "im", "msg": {"msgType": "image", "content": {"img": "http://x"}},
            "users": {"s": {"1": "sender view"}, "r": {"1": "receiver view"}}}
    assert item_of(body, 5000, True) == {"msgType": "IM", "msg": body["msg"], "users": {"1": "sender view"},
                                         "timeStamp": 5}
    assert item_of(body, 5000, False)["users"] == {"1": "receiver view"}
    assert item_of({"t": "other"}, 0, False) is None
    assert preview(body["msg"]) == "[图片]"
    assert preview({"msgType": "action", "comment": "约你私聊"}) == "约你私聊"


def test_signature_is_over_sorted_canonical_parameters():
    import hashlib
    import hmac

    params = {"roomId": "5", "liveId": "9", "signature": "ignored"}
    expected = hmac.new(b"k", b"liveId=9&roomId=5", hashlib.sha256).hexdigest()
    assert sign("k", params) == expected
    assert canonical({"b": 1, "a": "中"}) == '{"a":"中","b":1}'
    assert canonical(5) == "5" and canonical(True) == "true"


def test_links_follow_the_seed_table():
    assert link_for("live", id=5) == "wmlives_heihei://live?id=5"
    assert link_for("message") == "wmlives_heihei://message"
    assert link_for("homepage") == "wmlives_heihei://homepage"
    assert link_for("user", id=7) == "wmlives_heihei://user?id=7"
    assert link_for("replay", id=8) == "wmlives_heihei://replay?id=8"
    assert link_for("webview", url="http://a/b?c=1", type=1) == \
        "wmlives_heihei://webview?url=http%3A%2F%2Fa%2Fb%3Fc%3D1&type=1"
    # a chat invite, as the shipped client parses it: userName and an int gender; the seed's text on request
    assert link_for("duechat", chatId=9, type=0, userId=5, fromUserName="李 四", gender="Female") == \
        "wmlives_heihei://acceptchat?chatId=9&type=0&userId=5&fromUserName=%E6%9D%8E%20%E5%9B%9B" \
        "&userName=%E6%9D%8E%20%E5%9B%9B&gender=1"
    assert link_for("duechat", chatId=9, userId=5, fromUserName="x", gender="Unspecified", msgId=77).endswith(
        "&gender=-1&msgId=77")
    assert link_for("duechat", gender_text=True, chatId=9, userId=5, fromUserName="x", gender="Male").endswith(
        "&gender=Male")


@pytest.mark.parametrize("extra, message", [
    ({"sms": {"provider": "pigeon"}}, "[sms] provider"),
    ({"sms": {"provider": "http"}}, "[sms] url"),
    ({"push": {"provider": "pigeon"}}, "[push] a provider must be one of"),
    ({"push": {"provider": "getui"}}, "[push] getui"),
    ({"push": {"provider_apns": "getui"}}, "[push] provider_apns = 'getui' cannot reach apns devices"),
    ({"push": {"provider_getui": "apns", "apns_ca_file": "/nonexistent.pem"}}, "apns_ca_file"),
    ({"push": {"provider": "webhook"}}, "[push] webhook_url"),
    ({"heihei": {"token_ttl_s": 0.0}}, "token_ttl_s"),
])
def test_bad_provider_settings_stop_the_node_from_being_built(tmp_path, extra, message):
    from heihei.config import ConfigError
    from heihei.node import Node
    from tests.conftest import node_settings

    with pytest.raises(ConfigError) as info:
        Node(node_settings(str(tmp_path), "redis://127.0.0.1:1/0", "x", extra))
    assert message in str(info.value)


def test_a_bad_updates_file_stops_the_node_from_being_built(tmp_path):
    from heihei.config import ConfigError
    from heihei.node import Node
    from tests.conftest import node_settings

    path = tmp_path / "updates.json"
    path.write_text('{"android": {"versionCode": "1.x"}}')
    with pytest.raises(ConfigError, match="versionCode"):
        Node(node_settings(str(tmp_path), "redis://127.0.0.1:1/0", "x", {"heihei": {"updates_file": str(path)}}))


@pytest_twisted.ensureDeferred
async def test_a_provider_that_stalls_mid_body_is_unreachable_within_the_timeout():
    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    from heihei.heihei.oauth import WeChat
    from heihei.outbound.http import HttpClient
    from heihei.outbound.wechat import WeChatClient

    class Stall(Resource):
        isLeaf = True

        def render_GET(self, request):
            request.setHeader(b"content-length", b"1000")
            request.write(b'{"partial": ')  # headers and a little body, then nothing
            self.request = request
            return NOT_DONE_YET

    resource = Stall()
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    http = HttpClient(reactor)
    try:
        wechat = WeChat(WeChatClient(http, f"http://127.0.0.1:{port.getHost().port}", timeout_s=0.5))
        started = reactor.seconds()
        with pytest.raises(Refused) as info:
            await wechat.verify("token", "openid")
        error = of_refusal(info.value.reason, info.value.detail)
        assert error.code == 400 and "WeChat" in error.errormsg
        assert reactor.seconds() - started < 3
    finally:
        await http.close()
        if not resource.request.channel.transport.disconnected:
            resource.request.channel.transport.abortConnection()
        await port.stopListening()


def test_a_catalog_document_without_its_key_or_with_others_is_refused_not_taken_as_empty():
    # found by schemathesis: PUT /admin/heihei/gift-resources with any object emptied the catalog
    import pytest

    from heihei.heihei.catalogs import CatalogError, check_banners, check_gift_resources

    for doc in ({}, {"other": []}, {"resources": [], "extra": 1}, {"history": []}):
        with pytest.raises(CatalogError):
            check_gift_resources(doc)
    for doc in ({"banners": [], "body": {}}, {"body": {"banners": []}}):
        with pytest.raises(CatalogError):
            check_banners(doc)
    assert check_gift_resources({"resources": []}) == {"resources": [], "history": []}
