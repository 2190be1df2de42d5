"""Offline pushes end to end: an IM to a user with no channel, through a node's [push] router, to the
loopback Getui, APNs (HTTP/2 over TLS) and FCM fakes, which check what the real services check; a device
the service calls dead is unregistered."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor

from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import item, name, ok, open_channel, send_im, sign_in
from tests.outbound.push.fakes import (FakeApns, FakeFcm, FakeGetui, FakeTime, ThrowawayTLS, ec_p256_pem,
                                       rsa_pem, serve, service_account)

APNS_DEVICE = "ab" * 32
DEAD_APNS_DEVICE = "cd" * 32


class WallTime(FakeTime):
    """The fakes judge token ages by the time the node's adapters sign with: the real clock."""

    def __call__(self) -> float:
        return reactor.seconds()


class PushWorld:
    async def start(self, tmp_path) -> None:
        now = WallTime()
        self.tls = ThrowawayTLS.make()
        apns_pem, apns_public = ec_p256_pem()
        fcm_pem, fcm_public = rsa_pem()
        self.apns = FakeApns(team_id="TEAM123456", key_id="KEY1234567", public_key=apns_public,
                             topic="cn.wmlive.heihei", now_s=now)
        self.getui = FakeGetui(app_id="app-id", app_key="app-key", master_secret="master-secret", now_s=now)
        self.fcm = FakeFcm(project_id="heihei-test", client_email="push@heihei-test.iam.gserviceaccount.com",
                           private_key_id="kid-0001", public_key=fcm_public, now_s=now)
        self.servers = [await serve(self.apns, self.tls), await serve(self.getui), await serve(self.fcm)]
        self.fcm.token_url = self.servers[2].url + "/token"
        p8 = tmp_path / "AuthKey_KEY1234567.p8"
        p8.write_bytes(apns_pem)
        ca = tmp_path / "fake-apns-ca.pem"
        ca.write_bytes(self.tls.cert_pem)
        account = tmp_path / "service-account.json"
        account.write_text(json.dumps(service_account(private_key_pem=fcm_pem, token_uri=self.fcm.token_url)))
        self.settings = {
            "provider": "log", "provider_getui": "getui", "provider_apns": "apns", "provider_gcm": "fcm",
            "getui_app_id": "app-id", "getui_app_key": "app-key", "getui_master_secret": "master-secret",
            "getui_base_url": self.servers[1].url,
            "apns_team_id": "TEAM123456", "apns_key_id": "KEY1234567", "apns_key_file": str(p8),
            "apns_topic": "cn.wmlive.heihei", "apns_base_url": self.servers[0].url, "apns_ca_file": str(ca),
            "fcm_service_account_file": str(account), "fcm_base_url": self.servers[2].url,
        }

    async def stop(self) -> None:
        for listening in self.servers:
            listening.site.drop_all()
            await listening.stop()


async def wait_until(check, timeout_s: float = 5.0) -> None:
    """Until `check()` is true (the pushes run in the background of the sending node)."""
    from twisted.internet import task

    waited = 0.0
    while not check():
        if waited > timeout_s:
            raise AssertionError("timed out")
        await task.deferLater(reactor, 0.05, lambda: None)
        waited += 0.05


@pytest_twisted.ensureDeferred
async def test_an_im_to_an_offline_user_reaches_getui_apns_and_fcm(nodes, outside, tmp_path):
    world = PushWorld()
    await world.start(tmp_path)
    try:
        a_node = await nodes.start("a", heihei_extra(outside, push=world.settings))
        b_node = await nodes.start("b", heihei_extra(outside, push=world.settings))
        ta, a = await sign_in(a_node, outside, "13300000001")
        tb, b = await sign_in(b_node, outside, "13300000002")
        await name(a_node, ta, "发送者")
        # b's phones: the Android app (Getui cid), an iPhone (APNs), a phone with FCM, and a dead iPhone
        devices = [("android-1", "getui", "cid-0001", "android"), ("iphone-1", "apns", APNS_DEVICE, "ios"),
                   ("pixel-1", "gcm", "fcm-token-1", "android"), ("iphone-2", "apns", DEAD_APNS_DEVICE, "ios")]
        for uuid, kind, push_token, device_type in devices:
            await ok(b_node, "/api/user/push-device-info", {"token": tb, "uuid": uuid, "apnsType": kind,
                                                            "apnsToken": push_token, "deveiceType": device_type})
        world.apns.unregistered.add(DEAD_APNS_DEVICE)

        sender = await open_channel(a_node, ta)
        send_im(sender, b, "text", {"text": "在吗？"})
        await item(sender)  # the echo: stored
        await wait_until(lambda: world.getui.pushes and world.apns.delivered and world.fcm.messages)
        await sender.close()

        [getui] = world.getui.pushes
        assert getui["audience"] == {"cid": ["cid-0001"]}
        notification = getui["push_message"]["notification"]
        assert notification["title"] == "发送者" and notification["body"] == "在吗？"
        assert notification["click_type"] == "payload"
        payload = json.loads(notification["payload"])
        assert payload["link"] == "wmlives_heihei://message" and payload["fromUserId"] == int(a)
        [apns] = world.apns.delivered
        assert apns["device"] == APNS_DEVICE
        assert apns["payload"]["aps"]["alert"] == {"title": "发送者", "body": "在吗？"}
        assert apns["payload"]["link"] == "wmlives_heihei://message"
        [fcm] = world.fcm.messages
        assert fcm["token"] == "fcm-token-1" and fcm["notification"] == {"title": "发送者", "body": "在吗？"}
        assert fcm["data"]["link"] == "wmlives_heihei://message" and fcm["data"]["fromUserId"] == a

        # APNs said the second iPhone is gone: it is unregistered (once the push's work is done), for every node
        await a_node.operators["channel"].pusher.drain()
        alive = {"android-1", "iphone-1", "pixel-1"}
        assert set(await b_node.operators["channel"].devices.of(b)) == alive
        assert set(await a_node.operators["channel"].devices.of(b)) == alive
    finally:
        for node in list(nodes.nodes):
            await nodes.stop(node)
        await world.stop()


@pytest_twisted.ensureDeferred
async def test_a_device_that_registered_again_is_not_dropped(nodes, outside, redis):
    node = await nodes.start("a", heihei_extra(outside))
    token, uid = await sign_in(node, outside, "13300000003")
    await ok(node, "/api/user/push-device-info", {"token": token, "uuid": "dev", "apnsType": "getui",
                                                  "apnsToken": "new-cid", "deveiceType": "android"})
    devices = node.operators["channel"].devices
    assert await devices.unregister_device(uid, "dev", "old-cid") is False  # the token it had is not the dead one
    assert await devices.unregister_device(uid, "dev", "new-cid") is True
    assert await devices.of(uid) == {}
