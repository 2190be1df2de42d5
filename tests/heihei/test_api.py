"""WeChat/Weibo sign-in against loopback fakes, /api/init, /api/sys/update and the OpenAPI document."""

from __future__ import annotations

import json

import pytest_twisted
import treq
from openapi_spec_validator import validate

from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, ok

INIT = {"ap": "heihei", "version": "2.0.0", "local": "zh_CN", "uuid": "dev-9", "apiVersion": "1.0",
        "deveiceType": "android"}


@pytest_twisted.ensureDeferred
async def test_wechat_sign_in_against_a_fake(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    body = await ok(node, "/api/user/sign-in", {"accountSource": "Wechat", "accountToken": "wx-token-alice",
                                                "openId": "wx-open-alice"})
    assert body["needRegist"] is True and body["token"]
    info = body["userInfo"]
    assert info["displayName"] == "微信爱丽丝" and info["gender"] == "Female"
    assert info["coverUrl"] == "https://img.example/alice.png"
    path, args = outside.requests[-1]
    assert path == "/sns/userinfo" and args["access_token"] == "wx-token-alice" and args["openid"] == "wx-open-alice"

    again = await ok(node, "/api/user/sign-in", {"accountSource": "Wechat", "accountToken": "wx-token-alice",
                                                 "openId": "wx-open-alice"}, how="json")
    assert again["userInfo"]["id"] == info["id"] and again["token"] != body["token"]

    for token, open_id in (("wx-token-alice", "someone-else"), ("stolen", "wx-open-alice")):
        r = await api(node, "/api/user/sign-in", {"accountSource": "Wechat", "accountToken": token,
                                                  "openId": open_id})
        assert r["errorcode"] == 702 and r["errormsg"].startswith("openid无效"), r
    no_openid = await api(node, "/api/user/sign-in", {"accountSource": "Wechat", "accountToken": "wx-token-alice"})
    assert no_openid == {"errorcode": 700, "errormsg": "参数错误: openId (required)"}
    bad_source = await api(node, "/api/user/sign-in", {"accountSource": "QQ", "accountToken": "t", "openId": "o"})
    assert bad_source["errorcode"] == 700 and "accountSource" in bad_source["errormsg"]


@pytest_twisted.ensureDeferred
async def test_weibo_sign_in_against_a_fake(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    body = await ok(node, "/api/user/sign-in", {"accountSource": "Weibo", "accountToken": "wb-token-bob"})
    info = body["userInfo"]
    assert info["displayName"] == "微博鲍勃" and info["gender"] == "Male" and info["description"] == "hi"
    assert [p for p, _ in outside.requests[-2:]] == ["/2/account/get_uid.json", "/2/users/show.json"]
    same = await ok(node, "/api/user/sign-in", {"accountSource": "Weibo", "accountToken": "wb-token-bob",
                                                "openId": "5550001"})
    assert same["userInfo"]["id"] == info["id"]
    rejected = await api(node, "/api/user/sign-in", {"accountSource": "Weibo", "accountToken": "nope"})
    assert rejected["errorcode"] == 701 and rejected["errormsg"].startswith("weibo token无效")
    mismatch = await api(node, "/api/user/sign-in", {"accountSource": "Weibo", "accountToken": "wb-token-bob",
                                                     "openId": "42"})
    assert mismatch["errorcode"] == 701


@pytest_twisted.ensureDeferred
async def test_an_unreachable_provider_is_not_a_rejection(nodes, outside):
    from heihei.store.embedded import free_loopback_port

    dead = f"http://127.0.0.1:{free_loopback_port()}"
    node = await nodes.start("a", heihei_extra(outside, heihei={"wechat_api_url": dead, "oauth_timeout_s": 2.0}))
    r = await api(node, "/api/user/sign-in", {"accountSource": "Wechat", "accountToken": "t", "openId": "o"})
    assert r["errorcode"] == 400 and "WeChat" in r["errormsg"]


@pytest_twisted.ensureDeferred
async def test_init_is_the_url_map_of_this_server(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside) | {"http": {"public_url": "https://api.example.com/"}})
    body = await ok(node, "/api/init", INIT, how="query")
    assert body["user"]["signIn"] == "https://api.example.com/api/user/sign-in"
    assert body["user"]["getSMSVerificationCode"] == "https://api.example.com/api/user/get-sms-verification-code"
    assert body["message"]["channel"] == "wss://api.example.com/ws/channel"
    assert body["message"]["messageList"] == "https://api.example.com/api/msg/message-list"
    assert body["sys"]["update"] == "https://api.example.com/api/sys/update"
    assert body["live"]["createLive"] == "https://api.example.com/api/live/create-live"
    assert body["imgPath"] == "https://api.example.com" and body["actionCode"] == "0"
    assert body["sys"]["ossToken"] == "https://api.example.com/api/sys/oss-token"
    assert body["topic"]["topicList"] == "https://api.example.com/api/topic/topic-list"
    assert body["record"]["uploadRecord"] == "https://api.example.com/api/record/upload-record"
    # Android 10+, or a denied phone permission, gives no uuid: the map is still served
    no_uuid = await ok(node, "/api/init", {k: v for k, v in INIT.items() if k != "uuid"})
    assert no_uuid["user"]["followUser"] == "https://api.example.com/api/user/follow"
    missing = await api(node, "/api/init", {k: v for k, v in INIT.items() if k != "local"})
    assert missing == {"errorcode": 700, "errormsg": "参数错误: local (required)"}


@pytest_twisted.ensureDeferred
async def test_sys_update_from_the_updates_file(nodes, outside, tmp_path):
    path = tmp_path / "updates.json"
    path.write_text(json.dumps({"android": {"versionCode": "1.0.4", "url": "http://cdn.example.com/heihei-1.0.4.apk",
                                            "force": True, "title": "更新", "text": "新版本来了，更新吧！",
                                            "fileName": "heihei.apk"}}))
    node = await nodes.start("a", heihei_extra(outside, heihei={"updates_file": str(path)}))
    # the shipped client reads `info` only when errorcode is not 0 ([heihei] update_errorcode, 1)
    newer = await api(node, "/api/sys/update", {"versionCode": "1.0.2", "devicesType": "android",
                                                "channel": "xiaomi"})
    assert newer["errorcode"] == 1 and newer["errormsg"] == "有新版本"
    assert newer["info"] == {"force": True, "url": "http://cdn.example.com/heihei-1.0.4.apk", "title": "更新",
                             "text": "新版本来了，更新吧！", "fileName": "heihei.apk", "versionCode": "1.0.4",
                             "channel": "xiaomi"}
    same = await ok(node, "/api/sys/update", {"versionCode": "1.0.4", "devicesType": "android"})
    assert "info" not in same
    assert "info" not in await ok(node, "/api/sys/update", {"versionCode": "1.0.10", "devicesType": "android"})
    assert "info" not in await ok(node, "/api/sys/update", {"versionCode": "0.1", "devicesType": "ios"})
    bad = await api(node, "/api/sys/update", {"versionCode": "1.x", "devicesType": "android"})
    assert bad["errorcode"] == 700 and "versionCode" in bad["errormsg"]
    seed = await nodes.start("b", heihei_extra(outside, heihei={"updates_file": str(path), "update_errorcode": 0}))
    as_seed = await ok(seed, "/api/sys/update", {"versionCode": "1.0.2", "devicesType": "android"})
    assert as_seed["info"]["versionCode"] == "1.0.4"


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_is_valid_and_complete(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    response = await treq.get(http_url(node, "/api/openapi.json"))
    assert response.code == 200
    document = json.loads(await response.text())
    validate(document)
    paths = document["paths"]
    for path in ("/api/init", "/api/sys/update", "/api/user/get-sms-verification-code", "/api/user/sign-in",
                 "/api/user/sign-in-cl-by-phone", "/api/user/sign-out", "/api/user/update", "/api/user/info",
                 "/api/user/block-user", "/api/user/unblock-user", "/api/user/list-blocked-user",
                 "/api/user/bind-phone", "/api/user/push-device-info", "/api/user/get-config",
                 "/api/user/update-config", "/api/msg/send-msg", "/api/msg/message-list", "/api/msg/message-del",
                 "/api/msg/message-read-all", "/api/msg/history-msg", "/api/msg/delete-msg", "/api/msg/read-one-msg",
                 "/api/msg/read-all-msg", "/messageserver/api/msg/send-msg.action",
                 "/messageserver/api/msg/open-room.action", "/messageserver/api/msg/close-room.action",
                 "/messageserver/api/msg/start-live-broadcast.action",
                 "/messageserver/api/msg/stop-live-broadcast.action",
                 # the social half
                 "/api/user/follow", "/api/user/unfollow", "/api/user/list-follower", "/api/user/list-following",
                 "/api/user/list-user-byType", "/api/user/list-active-user", "/api/user/isinlive",
                 "/api/user/report-user", "/api/usr/report-user", "/api/sms/register-phone",
                 "/api/sms/verify-phone", "/api/social/get-banner", "/api/social/gift-resources",
                 "/api/topic/topic-list", "/api/topic/topic-detail", "/api/topic/create-subject",
                 "/api/topic/get-subject", "/api/topic/update-subject", "/api/topic/subject-detail",
                 "/api/topic/listen-subject", "/api/topic/like-subject", "/api/topic/reply-subject",
                 "/api/record/refresh-record", "/api/record/read-record", "/api/record/delete-record",
                 "/api/sys/oss-token", "/api/sys/upload-log"):
        assert set(paths[path]) == {"get", "post"}, path
    info = paths["/api/user/info"]["get"]
    names = {p["name"]: p for p in info["parameters"]}
    assert names["token"]["required"] is True and names["uid"]["schema"] == {"type": "integer", "format": "int64",
                                                                             "minimum": 0}
    assert "710" in info["description"] and "720" in info["description"]
    assert paths["/api/msg/history-msg"]["post"]["deprecated"] is True
    sign_in = paths["/api/user/sign-in"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert sign_in["properties"]["accountSource"]["enum"] == ["Weibo", "Wechat"]
    assert sign_in["required"] == ["accountSource", "accountToken"]
    update = paths["/api/user/update"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert update["schema"]["properties"]["displayName"]["maxLength"] == 20
    signed = {p["name"] for p in paths["/messageserver/api/msg/send-msg.action"]["get"]["parameters"]}
    assert signed == {"data", "signature"}
    assert document["servers"] == [{"url": "http://127.0.0.1:8082"}]
    upload = paths["/api/record/upload-record"]
    assert set(upload) == {"post"}
    form = upload["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary",
                                          "description": form["properties"]["file"]["description"]}
    assert all(code in upload["post"]["description"] for code in ("754", "755", "756"))
    assert "100" in paths["/api/topic/create-subject"]["post"]["description"]
