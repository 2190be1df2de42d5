"""make_push_provider / make_push_router: settings to adapters, and each device type to its service."""

from __future__ import annotations

import dataclasses
import json

import pytest
import pytest_twisted
from twisted.internet import reactor

from heihei.config import ConfigError
from heihei.outbound.push_apns import ApnsPush
from heihei.outbound.push_errors import PermanentPushError
from heihei.config import PushSettings
from heihei.outbound import push_apns, push_fcm, push_getui
from heihei.outbound.push_factory import SkipPush, make_push_provider, make_push_router
from heihei.outbound.push_fcm import FcmPush
from heihei.outbound.push_getui import GetuiPush
from tests.outbound.push.fakes import FakeApns, FakeFcm, FakeGetui, serve, service_account


class Recorder:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sent: list[dict] = []
        self.closed = 0

    async def send(self, push):
        self.sent.append(push)

    async def close(self):
        self.closed += 1


@pytest.fixture
def files(tmp_path, apns_key, fcm_key):
    p8 = tmp_path / "AuthKey_KEY1234567.p8"
    p8.write_bytes(apns_key[0])
    sa = tmp_path / "service-account.json"
    sa.write_text(json.dumps(service_account(private_key_pem=fcm_key[0], token_uri="https://oauth2.example/token")))
    return {"p8": str(p8), "sa": str(sa), "dir": tmp_path}


def settings(files, **over) -> PushSettings:
    base = dict(getui_app_id="app", getui_app_key="key", getui_master_secret="secret",
                apns_team_id="TEAM123456", apns_key_id="KEY1234567", apns_key_file=files["p8"],
                apns_topic="cn.wmlive.heihei", fcm_service_account_file=files["sa"])
    return PushSettings(**{**base, **over})


@pytest_twisted.ensureDeferred
async def test_each_adapter_is_built_from_its_keys(files):
    built = [make_push_provider(kind, settings(files), reactor=reactor) for kind in ("getui", "apns", "fcm")]
    assert [type(p) for p in built] == [GetuiPush, ApnsPush, FcmPush]
    assert built[2].project_id == "heihei-test"  # from the service-account file
    for provider in built:
        await provider.close()


@pytest.mark.parametrize("over, words", [
    ({"apns_key_file": ""}, "apns_key_file is not set"),
    ({"apns_key_file": "/nonexistent/AuthKey.p8"}, "cannot read /nonexistent/AuthKey.p8"),
    ({"apns_topic": ""}, "bundle id"),
    ({"getui_click_type": "popup"}, "click_type"),
    ({"getui_master_secret": ""}, "master secret"),
])
def test_settings_problems_are_config_errors_at_start(files, over, words):
    kind = "apns" if "apns" in next(iter(over)) else "getui"
    with pytest.raises(ConfigError, match=words):
        make_push_provider(kind, settings(files, **over), reactor=reactor)


def test_a_key_file_of_the_wrong_kind_is_named_and_not_quoted(files, fcm_key):
    rsa_pem = files["dir"] / "rsa.pem"
    rsa_pem.write_bytes(fcm_key[0])
    with pytest.raises(ConfigError, match=r"\[push\] apns_key_file: the APNs .p8 key is not an EC P-256") as caught:
        make_push_provider("apns", settings(files, apns_key_file=str(rsa_pem)), reactor=reactor)
    assert "PRIVATE KEY" not in str(caught.value)
    with pytest.raises(ConfigError, match="fcm_service_account_file: the FCM service-account file is not JSON"):
        make_push_provider("fcm", settings(files, fcm_service_account_file=files["p8"]), reactor=reactor)
    with pytest.raises(ConfigError, match="one of getui, apns, fcm"):
        make_push_provider("jpush", settings(files), reactor=reactor)


@pytest_twisted.ensureDeferred
async def test_the_router_sends_each_device_type_to_its_provider(files):
    others: dict[str, Recorder] = {}

    def other(kind):
        return others.setdefault(kind, Recorder(kind))

    router = make_push_router(settings(files, provider="log", provider_gcm="webhook", provider_apns="none"),
                              reactor=reactor, other=other)
    await router.send({"pushType": "getui", "clientid": "c"})
    await router.send({"pushType": "gcm", "clientid": "g"})
    await router.send({"pushType": "apns", "clientid": "a"})
    assert [p["clientid"] for p in others["log"].sent] == ["c"]
    assert [p["clientid"] for p in others["webhook"].sent] == ["g"]
    assert isinstance(router.routes["apns"], SkipPush)
    with pytest.raises(PermanentPushError, match="'jpush'"):
        await router.send({"pushType": "jpush"})
    await router.close()
    assert others["log"].closed == 1 and others["webhook"].closed == 1


def test_an_adapter_never_gets_another_services_devices(files):
    with pytest.raises(ConfigError, match="provider_gcm = 'getui' cannot reach gcm devices"):
        make_push_router(settings(files, provider_gcm="getui"), reactor=reactor, other=Recorder)
    router = make_push_router(settings(files, provider="webhook", provider_apns="apns"), reactor=reactor,
                              other=Recorder)
    assert isinstance(router.routes["apns"], ApnsPush)
    assert isinstance(router.routes["getui"], Recorder)


@pytest_twisted.ensureDeferred
async def test_one_router_reaches_all_three_services(files, tls, apns_key, fcm_key, now):
    apns = FakeApns(team_id="TEAM123456", key_id="KEY1234567", public_key=apns_key[1], topic="cn.wmlive.heihei",
                    now_s=now)
    getui = FakeGetui(app_id="app", app_key="key", master_secret="secret", now_s=now)
    fcm = FakeFcm(project_id="heihei-test", client_email="push@heihei-test.iam.gserviceaccount.com",
                  private_key_id="kid-0001", public_key=fcm_key[1], now_s=now)
    servers = [await serve(apns, tls), await serve(getui), await serve(fcm)]
    fcm.token_url = servers[2].url + "/token"
    s = settings(files, apns_base_url=servers[0].url, getui_base_url=servers[1].url, fcm_base_url=servers[2].url,
                 fcm_token_uri=fcm.token_url, provider="log", provider_getui="getui", provider_apns="apns",
                 provider_gcm="fcm")
    router = make_push_router(s, reactor=reactor, other=Recorder, trust_root=tls.trust_root())
    # the adapters keep the real clock; the fakes must agree with it
    now.now = reactor.seconds()
    try:
        push = {"title": "嘿嘿", "text": "你好", "link": "wmlives_heihei://message"}
        await router.send({**push, "pushType": "apns", "clientid": "ab" * 32})
        await router.send({**push, "pushType": "getui", "clientid": "cid-0001"})
        await router.send({**push, "pushType": "gcm", "clientid": "fcm-token"})
        assert len(apns.delivered) == len(getui.pushes) == len(fcm.messages) == 1
    finally:
        await router.close()
        for listening in servers:
            listening.site.drop_all()
            await listening.stop()


def test_the_settings_defaults_are_the_adapters_own():
    names = {f.name for f in dataclasses.fields(PushSettings)}
    assert {"provider_getui", "apns_key_file", "fcm_service_account_file", "getui_master_secret"} <= names
    s = PushSettings()
    assert s.getui_base_url == push_getui.DEFAULT_BASE_URL and s.getui_ttl_s == push_getui.DEFAULT_TTL_S
    assert s.apns_base_url == push_apns.PRODUCTION_URL and s.apns_expiration_s == push_apns.DEFAULT_EXPIRATION_S
    assert s.fcm_base_url == push_fcm.DEFAULT_BASE_URL
