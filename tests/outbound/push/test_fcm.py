"""FcmPush against FakeFcm (Google's token endpoint verifying our RS256 assertion, and messages:send)."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from heihei.outbound.push_auth import BadKey
from heihei.outbound.push_errors import (
    CredentialsRejected, DeviceGone, PayloadTooLarge, PermanentPushError, RetryablePushError)
from heihei.outbound.push_fcm import (
    ACCESS_TOKEN_MARGIN_S, MAX_PAYLOAD_BYTES, BadServiceAccount, FcmPush, ServiceAccount)
from tests.outbound.push.fakes import FakeFcm, serve, service_account

PROJECT = "heihei-test"
EMAIL = "push@heihei-test.iam.gserviceaccount.com"
KID = "kid-0001"
DEVICE = "fcm-registration-token-" + "x" * 100
OTHER = "fcm-registration-token-other"


def a_push(**over):
    return {"title": "嘿嘿", "text": "小红关注了你", "action": "user", "link": "wmlives_heihei://user?id=42",
            "msgId": 77, "fromUserName": "小红", "fromUserId": 42, "gender": "Female", "data": {},
            "deviceType": "android", "clientid": DEVICE, "pushType": "gcm", **over}


class World:
    def __init__(self, fake, listening, now, key_pem):
        self.fake, self.listening, self.now, self.key_pem = fake, listening, now, key_pem
        self.adapters: list[FcmPush] = []

    def account(self, key_pem=None, **over) -> ServiceAccount:
        info = service_account(private_key_pem=key_pem or self.key_pem, token_uri=self.listening.url + "/token",
                               project_id=PROJECT, client_email=EMAIL, private_key_id=KID)
        info.update(over)
        return ServiceAccount.from_json(json.dumps(info))

    def adapter(self, account=None, *, now_s=None, **kw) -> FcmPush:
        adapter = FcmPush(account or self.account(), base_url=self.listening.url, reactor=reactor,
                          now_s=now_s or self.now, **kw)
        self.adapters.append(adapter)
        return adapter


@pytest_twisted.async_yield_fixture
async def world(now, fcm_key):
    fake = FakeFcm(project_id=PROJECT, client_email=EMAIL, private_key_id=KID, public_key=fcm_key[1], now_s=now)
    listening = await serve(fake)
    fake.token_url = listening.url + "/token"
    w = World(fake, listening, now, fcm_key[0])
    yield w
    for adapter in w.adapters:
        await adapter.close()
    listening.site.drop_all()
    await listening.stop()


@pytest_twisted.ensureDeferred
async def test_a_push_reaches_fcm_with_an_access_token_from_the_service_account(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    [message] = world.fake.messages
    assert world.fake.token_calls == 1
    assert message == {"token": DEVICE, "notification": {"title": "嘿嘿", "body": "小红关注了你"},
                       "data": {"link": "wmlives_heihei://user?id=42", "action": "user", "msgId": "77",
                                "fromUserId": "42", "fromUserName": "小红", "gender": "Female"}}


@pytest_twisted.ensureDeferred
async def test_one_access_token_for_many_pushes_at_once(world):
    adapter = world.adapter()
    await defer.gatherResults([defer.Deferred.fromCoroutine(adapter.send(a_push())) for _ in range(20)])
    assert len(world.fake.messages) == 20
    assert world.fake.token_calls == 1


@pytest_twisted.ensureDeferred
async def test_the_access_token_is_renewed_before_it_expires(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    world.now.advance(world.fake.token_lifetime_s - ACCESS_TOKEN_MARGIN_S - 1)
    await adapter.send(a_push())
    assert world.fake.token_calls == 1
    world.now.advance(1)
    await adapter.send(a_push())
    assert world.fake.token_calls == 2
    assert len(world.fake.messages) == 3


@pytest_twisted.ensureDeferred
async def test_a_revoked_access_token_is_replaced_and_the_push_sent_again(world):
    adapter = world.adapter()
    await adapter.send(a_push())
    world.fake.revoke_tokens()
    await adapter.send(a_push())
    assert world.fake.token_calls == 2
    assert len(world.fake.messages) == 2


@pytest_twisted.ensureDeferred
async def test_unauthenticated_twice_is_a_credentials_error(world):
    adapter = world.adapter()
    world.fake.fail_next += [(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")] * 2
    with pytest.raises(CredentialsRejected, match="UNAUTHENTICATED"):
        await adapter.send(a_push())
    assert world.fake.token_calls == 2


@pytest_twisted.ensureDeferred
async def test_unregistered_and_invalid_tokens_are_gone(world):
    world.fake.unregistered.add(DEVICE)
    world.fake.invalid.add(OTHER)
    adapter = world.adapter()
    with pytest.raises(DeviceGone, match="UNREGISTERED") as caught:
        await adapter.send(a_push())
    assert caught.value.clientid == DEVICE
    with pytest.raises(DeviceGone, match="INVALID_ARGUMENT"):
        await adapter.send(a_push(clientid=OTHER))


@pytest_twisted.ensureDeferred
async def test_a_token_of_another_project_is_permanent_but_not_gone(world):
    world.fake.other_project.add(DEVICE)
    adapter = world.adapter()
    with pytest.raises(PermanentPushError, match="SENDER_ID_MISMATCH") as caught:
        await adapter.send(a_push())
    assert not isinstance(caught.value, DeviceGone)


@pytest_twisted.ensureDeferred
async def test_a_key_google_does_not_know_is_a_clear_credentials_error(world, other_rsa_key):
    adapter = world.adapter(world.account(key_pem=other_rsa_key[0]))
    with pytest.raises(CredentialsRejected, match="invalid_grant") as caught:
        await adapter.send(a_push())
    assert EMAIL in str(caught.value)
    assert world.fake.send_calls == 0


@pytest_twisted.ensureDeferred
async def test_a_wrong_project_is_a_credentials_error(world):
    adapter = world.adapter(project_id="someone-elses")
    with pytest.raises(CredentialsRejected, match="PERMISSION_DENIED"):
        await adapter.send(a_push())


@pytest_twisted.ensureDeferred
async def test_a_clock_far_off_makes_google_refuse_the_assertion(world):
    adapter = world.adapter(now_s=lambda: world.now() - 7200)
    with pytest.raises(CredentialsRejected, match="short-lived"):
        await adapter.send(a_push())


@pytest_twisted.ensureDeferred
async def test_a_long_text_is_shortened_to_fit_4000_bytes(world):
    adapter = world.adapter()
    await adapter.send(a_push(text="长" * 3000))
    [message] = world.fake.messages
    body = message["notification"]["body"]
    assert body.endswith("…")
    size = len(json.dumps({"notification": message["notification"], "data": message["data"]},
                          ensure_ascii=False, separators=(",", ":")).encode())
    assert MAX_PAYLOAD_BYTES - 10 < size <= MAX_PAYLOAD_BYTES


@pytest_twisted.ensureDeferred
async def test_a_push_that_cannot_fit_is_refused_before_sending(world):
    adapter = world.adapter()
    with pytest.raises(PayloadTooLarge):
        await adapter.send(a_push(link="wmlives_heihei://webview?url=" + "x" * 4000))
    assert world.fake.token_calls == 0 and world.fake.send_calls == 0


@pytest_twisted.ensureDeferred
async def test_fcm_busy_is_retryable_with_its_delay(world):
    adapter = world.adapter()
    world.fake.fail_next += [(503, "UNAVAILABLE", "The service is currently unavailable.",
                              {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                               "errorCode": "UNAVAILABLE"}),
                             (429, "RESOURCE_EXHAUSTED", "Quota exceeded",
                              {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                               "errorCode": "QUOTA_EXCEEDED"})]
    with pytest.raises(RetryablePushError, match="UNAVAILABLE"):
        await adapter.send(a_push())
    with pytest.raises(RetryablePushError, match="QUOTA_EXCEEDED"):
        await adapter.send(a_push())
    await adapter.send(a_push())
    assert len(world.fake.messages) == 1


def test_a_service_account_file_is_checked_and_its_key_never_quoted(fcm_key, apns_key):
    good = service_account(private_key_pem=fcm_key[0], token_uri="https://oauth2.googleapis.com/token")
    account = ServiceAccount.from_json(json.dumps(good))
    assert account.project_id == "heihei-test" and account.client_email.endswith("gserviceaccount.com")
    assert "PRIVATE" not in repr(account)
    with pytest.raises(BadServiceAccount, match="not JSON"):
        ServiceAccount.from_json(b"{not json")
    with pytest.raises(BadServiceAccount, match="service_account"):
        ServiceAccount.from_json(json.dumps({**good, "type": "authorized_user"}))
    with pytest.raises(BadServiceAccount, match="private_key_id"):
        ServiceAccount.from_json(json.dumps({**good, "private_key_id": ""}))
    with pytest.raises(BadKey, match="RSA") as caught:
        ServiceAccount.from_json(json.dumps({**good, "private_key": apns_key[0].decode()}))
    assert apns_key[0].decode().splitlines()[1] not in str(caught.value)
    with pytest.raises(ValueError, match="project id"):
        FcmPush(ServiceAccount.from_json(json.dumps({**good, "project_id": ""})), reactor=reactor)
