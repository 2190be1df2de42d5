"""Accounts: SMS sign-in through a loopback SMS gateway, tokens, profiles, blocks, devices, config."""

from __future__ import annotations

import json

import pytest_twisted
import treq
from twisted.internet import task

from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, channel_url, ok, sign_in
from tests.wsclient import WSError, connect

T0 = 1_700_000_000


@pytest_twisted.ensureDeferred
async def test_phone_sign_in_with_the_http_sms_provider(nodes, outside):
    clock = task.Clock()
    clock.advance(T0)
    node = await nodes.start("a", heihei_extra(outside), clock=clock)
    body = await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13800000001"})
    assert body["timeout"] == 60
    [sent] = await outside.wait_for("sms", 1)
    assert sent["phoneNo"] == "13800000001"
    code = sent["code"]
    assert len(code) == 6 and code.isdigit()
    assert code in sent["text"] and "5分钟" in sent["text"]

    again = await api(node, "/api/user/get-sms-verification-code", {"phoneNo": "13800000001"})
    assert again["errorcode"] == 400 and again["errormsg"] == "短信发送太频繁"
    assert len(outside.sms) == 1

    wrong = "000000" if code != "000000" else "111111"
    bad = await api(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13800000001", "verifyCode": wrong})
    assert bad == {"errorcode": 401, "errormsg": "验证码错误"}

    body = await ok(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13800000001", "verifyCode": code})
    assert body["needRegist"] is True
    info = body["userInfo"]
    assert info["id"] == 10001 and info["heiNum"] == 1000001
    assert {"displayName", "coverUrl", "gender", "birthDay", "lastModified", "userType"} <= set(info)
    token = body["token"]
    assert len(token) >= 32

    # a code works once
    reused = await api(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13800000001", "verifyCode": code})
    assert reused["errorcode"] == 401

    me = await ok(node, "/api/user/info", {"token": token, "uid": 10001})
    assert me["result"]["id"] == 10001 and me["result"]["attribute"] == {"push_enable": "1"}

    # the same phone signs in to the same account; the profile completes the registration
    await ok(node, "/api/user/update", {"token": token, "displayName": "小明", "gender": "Male",
                                        "birthDay": "1999-12-31", "description": "hello"})
    clock.advance(59)
    assert (await api(node, "/api/user/get-sms-verification-code", {"phoneNo": "13800000001"}))["errorcode"] == 400
    clock.advance(1)
    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13800000001"})
    code = (await outside.wait_for("sms", 2))[-1]["code"]
    body = await ok(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13800000001", "verifyCode": code})
    assert body["needRegist"] is False and body["userInfo"]["displayName"] == "小明"
    assert body["userInfo"]["id"] == 10001
    token2 = body["token"]
    assert token2 != token

    # sign-out kills that token only, everywhere
    await ok(node, "/api/user/sign-out", {"token": token})
    gone = await api(node, "/api/user/info", {"token": token, "uid": 10001})
    assert gone == {"errorcode": 720, "errormsg": "token无效"}
    await ok(node, "/api/user/info", {"token": token2, "uid": 10001})




@pytest_twisted.ensureDeferred
async def test_codes_expire_burn_after_five_wrong_tries_and_tokens_expire(nodes, outside):
    clock = task.Clock()
    clock.advance(T0)
    node = await nodes.start("a", heihei_extra(outside, heihei={"token_ttl_s": 1000.0}), clock=clock)

    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13900000002"})
    code = (await outside.wait_for("sms", 1))[-1]["code"]
    clock.advance(300)  # kept 5 minutes
    expired = await api(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13900000002", "verifyCode": code})
    assert expired["errorcode"] == 401

    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13900000002"})
    code = (await outside.wait_for("sms", 2))[-1]["code"]
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        r = await api(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13900000002", "verifyCode": wrong})
        assert r["errorcode"] == 401
    burnt = await api(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13900000002", "verifyCode": code})
    assert burnt["errorcode"] == 401

    clock.advance(60)
    token, uid = await sign_in(node, outside, "13900000002")
    # sliding expiry: used at 600 s keeps it alive past 1000 s
    clock.advance(600)
    await ok(node, "/api/user/get-config", {"token": token})
    clock.advance(900)
    await ok(node, "/api/user/get-config", {"token": token})
    clock.advance(1001)
    assert (await api(node, "/api/user/get-config", {"token": token}))["errorcode"] == 720
    with_error = await api(node, "/api/user/get-config", {})
    assert with_error["errorcode"] == 720


@pytest_twisted.ensureDeferred
async def test_sms_gateway_failure_is_400_and_may_be_retried_at_once(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    outside.sms_status = 500
    r = await api(node, "/api/user/get-sms-verification-code", {"phoneNo": "13700000003"})
    assert r == {"errorcode": 400, "errormsg": "短信发送失败"}
    outside.sms_status = 200
    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13700000003"})


@pytest_twisted.ensureDeferred
async def test_parameters_from_query_form_or_json_and_700_names_the_parameter(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13600000004")
    for how in ("query", "form", "json"):
        body = await ok(node, "/api/user/info", {"token": token, "uid": int(uid)}, how=how)
        assert body["result"]["id"] == int(uid)
    missing = await api(node, "/api/user/get-sms-verification-code", {})
    assert missing == {"errorcode": 700, "errormsg": "参数错误: phoneNo (required)"}
    bad = await api(node, "/api/user/info", {"token": token, "uid": "12x"})
    assert bad["errorcode"] == 700 and "uid" in bad["errormsg"]
    gender = await api(node, "/api/user/update", {"token": token, "displayName": "x", "gender": "M",
                                                  "birthDay": "2000-01-01"})
    assert gender["errorcode"] == 700 and "gender" in gender["errormsg"]
    date = await api(node, "/api/user/update", {"token": token, "displayName": "x", "gender": "Male",
                                                "birthDay": "2000-02-31"})
    assert date["errorcode"] == 700 and "birthDay" in date["errormsg"]
    too_long = await api(node, "/api/user/update", {"token": token, "displayName": "名" * 21, "gender": "Male",
                                                    "birthDay": "2000-01-01"})
    assert too_long == {"errorcode": 447, "errormsg": "名字太长"}
    illegal = await api(node, "/api/user/update", {"token": token, "displayName": "   ", "gender": "Male",
                                                   "birthDay": "2000-01-01"})
    assert illegal["errorcode"] == 445
    control = await api(node, "/api/user/update", {"token": token, "displayName": "a\u0007b", "gender": "Male",
                                                   "birthDay": "2000-01-01"})
    assert control["errorcode"] == 445
    updated = await ok(node, "/api/user/update", {"token": token, "displayName": "名" * 20, "gender": "Male",
                                                  "birthDay": "2000-01-01"}, how="json")
    assert updated["userId"] == int(uid)
    # a JSON body that is not an object, and unknown paths, still answer the envelope
    response = await treq.post(http_url(node, "/api/user/info"), data=b"[1,2]",
                               headers={b"Content-Type": [b"application/json"]})
    assert json.loads(await response.text())["errorcode"] == 700
    response = await treq.get(http_url(node, "/api/user/nope"))
    assert response.code == 404 and json.loads(await response.text())["errorcode"] == 404


@pytest_twisted.ensureDeferred
async def test_user_info_blocks_and_bind_phone(nodes, outside):
    clock = task.Clock()
    clock.advance(T0)
    node = await nodes.start("a", heihei_extra(outside), clock=clock)
    a_token, a = await sign_in(node, outside, "13500000001")
    b_token, b = await sign_in(node, outside, "13500000002")
    other = await ok(node, "/api/user/info", {"token": a_token, "uid": b})
    assert other["result"]["isBlocked"] is False and "attribute" not in other["result"]
    assert (await api(node, "/api/user/info", {"token": a_token, "uid": 99999}))["errorcode"] == 710

    await ok(node, "/api/user/block-user", {"token": a_token, "userId": b})
    assert (await ok(node, "/api/user/info", {"token": a_token, "uid": b}))["result"]["isBlocked"] is True
    refused = await api(node, "/api/user/info", {"token": b_token, "uid": a})
    assert refused == {"errorcode": 736, "errormsg": "无法查看该用户信息"}
    listed = await ok(node, "/api/user/list-blocked-user", {"token": a_token})
    assert listed["totalSize"] == 1 and [u["id"] for u in listed["result"]] == [int(b)]
    assert (await api(node, "/api/user/block-user", {"token": a_token, "userId": 99999}))["errorcode"] == 710
    assert (await api(node, "/api/user/block-user", {"token": a_token, "userId": a}))["errorcode"] == 700
    assert (await api(node, "/api/user/list-blocked-user", {"token": a_token, "limit": 21}))["errorcode"] == 700
    await ok(node, "/api/user/unblock-user", {"token": a_token, "targetId": b})
    assert (await ok(node, "/api/user/list-blocked-user", {"token": a_token}))["totalSize"] == 0

    # bind-phone: a code for the phone, and the phone must be free
    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13500000009"})
    code = [r for r in await outside.wait_for("sms", 3) if r["phoneNo"] == "13500000009"][-1]["code"]
    await ok(node, "/api/user/bind-phone", {"token": a_token, "phone": "13500000009", "verifyCode": code})
    # b cannot take it: 403 (with a right code for it)
    clock.advance(60)
    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": "13500000009"})
    code = (await outside.wait_for("sms", 4))[-1]["code"]
    taken = await api(node, "/api/user/bind-phone", {"token": b_token, "phone": "13500000009", "verifyCode": code})
    assert taken == {"errorcode": 403, "errormsg": "手机号已被其他账户绑定"}
    # and signing in with that phone is signing in as a
    clock.advance(60)
    assert (await sign_in(node, outside, "13500000009"))[1] == a


@pytest_twisted.ensureDeferred
async def test_config_and_push_devices(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13400000001")
    config = await ok(node, "/api/user/get-config", {"token": token})
    assert config["configuration"]["user"] == {"push_enable": "1"}
    assert config["configuration"]["sys"]["channel"].endswith("/ws/channel")
    await ok(node, "/api/user/update-config", {"token": token, "push_enable": "0"})
    assert (await ok(node, "/api/user/get-config", {"token": token}))["configuration"]["user"]["push_enable"] == "0"
    assert (await api(node, "/api/user/update-config", {"token": token, "push_enable": "2"}))["errorcode"] == 700
    await ok(node, "/api/user/push-device-info", {"token": token, "uuid": "dev-1", "apnsType": "getui",
                                                  "apnsToken": "cid-1", "deveiceType": "android"})
    await ok(node, "/api/user/push-device-info", {"token": token, "uuid": "dev-2", "apnsType": "apns",
                                                  "apnsToken": "apns-2", "deviceType": "ios"})
    devices = await node.operators["channel"].devices.of(uid)
    assert {u: (d["apnsType"], d["apnsToken"], d["deviceType"]) for u, d in devices.items()} == {
        "dev-1": ("getui", "cid-1", "android"), "dev-2": ("apns", "apns-2", "ios")}
    bad = await api(node, "/api/user/push-device-info", {"token": token, "uuid": "dev-3", "apnsType": "x",
                                                         "apnsToken": "t", "deveiceType": "android"})
    assert bad["errorcode"] == 700 and "apnsType" in bad["errormsg"]
    # a device belongs to the last user who registered it; sign-out unregisters the session's device
    other_token, other = await sign_in(node, outside, "13400000002")
    await ok(node, "/api/user/push-device-info", {"token": other_token, "uuid": "dev-1", "apnsType": "getui",
                                                  "apnsToken": "cid-1", "deveiceType": "android"})
    assert set(await node.operators["channel"].devices.of(uid)) == {"dev-2"}
    await ok(node, "/api/user/sign-out", {"token": other_token})
    assert await node.operators["channel"].devices.of(other) == {}


@pytest_twisted.ensureDeferred
async def test_channel_handshake_refusals(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13300000001")
    for bad in (None, "", "nope", "x" * 500):
        response = await treq.get(channel_url(node, bad).replace("ws://", "http://"), headers={
            b"Upgrade": [b"websocket"], b"Connection": [b"Upgrade"], b"Sec-WebSocket-Version": [b"13"],
            b"Sec-WebSocket-Key": [b"dGhlIHNhbXBsZSBub25jZQ=="]})
        assert response.code == 401, bad
        await response.content()
        try:
            await connect(channel_url(node, bad))
        except WSError:
            pass
        else:  # pragma: no cover - the assertion below explains
            raise AssertionError(f"token {bad!r} was accepted")
    client = await connect(channel_url(node, token))
    await client.close()
    await ok(node, "/api/user/sign-out", {"token": token})
    try:
        await connect(channel_url(node, token))
        raise AssertionError("a signed-out token was accepted")
    except WSError:
        pass
