"""
The Aliyun provider against a fake STS on loopback that checks every
AssumeRole request the way STS does: the RPC signature v1 recomputed with
Aliyun's own signer (aliyun-python-sdk-core's rpc_signature_composer), the
access key, the nonce, the policy's grammar and DurationSeconds' bounds; and
answers with Aliyun's JSON, errors included.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
from aliyunsdkcore.auth.algorithm import sha_hmac1
from aliyunsdkcore.auth.composer import rpc_signature_composer
from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from heihei.heihei.uploads import DEFAULT_MAX_BYTES, Uploads
from heihei.outbound.aliyun_oss import (
    AliyunOss,
    StsCredentials,
    StsRejected,
    StsUnavailable,
    object_policy,
    percent_encode,
    rpc_signature,
)
from tests.outbound.conftest import real_wait

AK_ID = "LTAI-test-access-key"
AK_SECRET = "test-access-key-secret-0123456789"
ROLE = "acs:ram::1234567890123456:role/heihei-uploads"
BUCKET = "ycl-bucket-01"
PATH = f"{BUCKET}/record/2017020812_10468_vHPCMkYp29.mp3"
SECRET = "uploads-test-secret-0123456789abcdef"
_compose = getattr(rpc_signature_composer, "__compose_string_to_sign")


class FakeSts(Resource):
    """AssumeRole as Aliyun STS answers it. `mode`: "ok", "http500", "garbage", "huge", "stall", "nocreds"."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.requests: list[dict[str, str]] = []
        self.nonces: set[str] = set()
        self.hanging: list = []
        self.url = ""

    def render_GET(self, request):
        params = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.requests.append(params)
        request.setHeader(b"content-type", b"application/json;charset=utf-8")
        if self.mode == "http500":
            request.setResponseCode(500)
            return json.dumps({"RequestId": "r", "Code": "InternalError", "Message": "oops"}).encode()
        if self.mode == "garbage":
            return b"<html>gateway</html>"
        if self.mode == "huge":
            return b'{"x": "' + b"a" * (200 * 1024) + b'"}'
        if self.mode == "stall":
            request.write(b"")
            self.hanging.append(request)
            return NOT_DONE_YET
        error = self._check(params)
        if error is not None:
            status, code, message = error
            request.setResponseCode(status)
            return json.dumps({"RequestId": "6894B13B-6D71-4EF5-88FA-F32781734A7F", "HostId": "sts.aliyuncs.com",
                               "Code": code, "Message": message, "Recommend": "https://next.api.aliyun.com"}).encode()
        if self.mode == "nocreds":
            return json.dumps({"RequestId": "r"}).encode()
        issued = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        expiration = issued + timedelta(seconds=int(params["DurationSeconds"]))
        return json.dumps({
            "RequestId": "964CBA6A-C5C4-4F39-9F36-2D77D4FB3F43",
            "AssumedRoleUser": {"Arn": f"{ROLE}/{params['RoleSessionName']}",
                                "AssumedRoleId": f"344584339364951186:{params['RoleSessionName']}"},
            "Credentials": {"SecurityToken": "CAISuwJ1q6Ft5B2yfSjIqfHtJMKAn7ts463ZVEnB0VpkSu1+26z4lDz2IH",
                            "AccessKeyId": "STS.H2Xox4rdMTo2Vop5Z1FbR4iSv",
                            "AccessKeySecret": "25Lgj3nKCahqq8Uqo85TJqVAJzZzSHDxC56WaC8Hc8y4",
                            "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }).encode()

    def _check(self, params: dict[str, str]):
        signature = params.pop("Signature", "")
        for name in ("Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion",
                     "SignatureNonce", "Timestamp", "RoleArn", "RoleSessionName"):
            if not params.get(name):
                return 400, "MissingParameter", f"The input parameter \"{name}\" that is mandatory is not supplied."
        if params["AccessKeyId"] != AK_ID:
            return 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        if (params["SignatureMethod"], params["SignatureVersion"]) != ("HMAC-SHA1", "1.0"):
            return 400, "InvalidParameter", "SignatureMethod"
        expected = sha_hmac1.get_sign_string(_compose("GET", params), AK_SECRET + "&")
        if signature != expected:
            return 400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
        if params["SignatureNonce"] in self.nonces:
            return 400, "SignatureNonceUsed", "Specified signature nonce was used already."
        self.nonces.add(params["SignatureNonce"])
        if (params["Action"], params["Version"], params["Format"]) != ("AssumeRole", "2015-04-01", "JSON"):
            return 400, "InvalidParameter", "Action/Version/Format"
        if not re.fullmatch(r"[A-Za-z0-9.@_-]{2,64}", params["RoleSessionName"]):
            return 400, "InvalidParameter.RoleSessionName", "RoleSessionName"
        if not 900 <= int(params.get("DurationSeconds", "3600")) <= 3600:
            return 400, "InvalidParameter.DurationSeconds", "The Min/Max value of DurationSeconds is 15min/1hr."
        try:
            policy = json.loads(params.get("Policy", "{}"))
            assert policy["Version"] == "1" and policy["Statement"]
        except (ValueError, KeyError, AssertionError):
            return 400, "InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check."
        return None


@pytest_twisted.async_yield_fixture
async def sts():
    fake = FakeSts()
    site = Site(fake)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    fake.url = f"http://127.0.0.1:{port.getHost().port}"
    yield fake
    for request in fake.hanging:
        if getattr(request, "channel", None) is not None:
            request.channel.transport.abortConnection()
    await port.stopListening()


def provider(http, sts, **kw) -> AliyunOss:
    options = {"access_key_id": AK_ID, "access_key_secret": AK_SECRET, "role_arn": ROLE, "bucket": BUCKET,
               "oss_endpoint": "https://oss-cn-beijing.aliyuncs.com", "sts_base_url": sts.url, "timeout_s": 5,
               **kw}
    return AliyunOss(http, **options)


@pytest_twisted.ensureDeferred
async def test_assume_role_for_exactly_one_object(http, sts, clock):
    p = provider(http, sts)
    c = await p.issue_credentials(PATH, ttl_s=1800, max_bytes=1024, now_s=clock.seconds())
    assert isinstance(c, StsCredentials)
    assert c.access_key_id == "STS.H2Xox4rdMTo2Vop5Z1FbR4iSv"
    assert c.expires_at_s == int(clock.seconds()) + 1800
    assert c.expiration == datetime.fromtimestamp(c.expires_at_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert c.access_key_secret not in repr(c) and c.security_token not in repr(c)
    assert AK_SECRET not in repr(p)
    [sent] = sts.requests
    assert sent["RoleArn"] == ROLE and sent["RoleSessionName"] == "2017020812_10468_vHPCMkYp29"
    assert sent["Timestamp"] == datetime.fromtimestamp(int(clock.seconds()), timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert json.loads(sent["Policy"]) == {"Version": "1", "Statement": [{
        "Effect": "Allow", "Action": ["oss:PutObject"],
        "Resource": ["acs:oss:*:*:ycl-bucket-01/record/2017020812_10468_vHPCMkYp29.mp3"]}]}
    assert AK_SECRET not in json.dumps(sent)


@pytest_twisted.ensureDeferred
async def test_lifetime_is_clamped_into_what_sts_accepts(http, sts, clock):
    p = provider(http, sts)
    short = await p.issue_credentials(PATH, ttl_s=60, max_bytes=1, now_s=clock.seconds())
    long = await p.issue_credentials(PATH, ttl_s=86400, max_bytes=1, now_s=clock.seconds())
    assert [r["DurationSeconds"] for r in sts.requests] == ["900", "3600"]
    assert long.expires_at_s - short.expires_at_s == 2700


@pytest_twisted.ensureDeferred
async def test_the_whole_issue_with_the_aliyun_provider(http, sts, clock):
    p = provider(http, sts, public_base_url="http://cdn.wmlives.com/data")
    uploads = Uploads(p, bucket=BUCKET, secret=SECRET, ttl_s=3600, max_bytes=DEFAULT_MAX_BYTES)
    issued = await uploads.issue("10468", "mp3", "record", clock.seconds())
    body = issued.as_json()
    assert body["Credentials"]["AccessKeyId"] == "STS.H2Xox4rdMTo2Vop5Z1FbR4iSv"
    name = issued.file.file_name
    assert issued.file.upload_url == f"https://ycl-bucket-01.oss-cn-beijing.aliyuncs.com/record/{name}"
    assert issued.file.url == f"http://cdn.wmlives.com/data/record/{name}"
    assert uploads.verify_sign(name, issued.file.sign)
    assert json.loads(sts.requests[-1]["Policy"])["Statement"][0]["Resource"] == [f"acs:oss:*:*:{issued.file.path}"]


@pytest_twisted.ensureDeferred
async def test_sts_refusals_are_rejections(http, sts, clock):
    for kw, code in [({"access_key_secret": "wrong-secret"}, "SignatureDoesNotMatch"),
                     ({"access_key_id": "LTAI-unknown"}, "InvalidAccessKeyId.NotFound")]:
        with pytest.raises(StsRejected) as info:
            await provider(http, sts, **kw).issue_credentials(PATH, ttl_s=900, max_bytes=1, now_s=clock.seconds())
        assert info.value.code == code and info.value.message
        assert "wrong-secret" not in info.value.reason and AK_SECRET not in info.value.reason


@pytest_twisted.ensureDeferred
async def test_no_usable_answer_is_unavailable(http, sts, clock):
    p = provider(http, sts)
    for mode, words in [("http500", "HTTP 500"), ("garbage", "not a JSON object"), ("huge", "larger than"),
                        ("nocreds", "without Credentials")]:
        sts.mode = mode
        with pytest.raises(StsUnavailable) as info:
            await p.issue_credentials(PATH, ttl_s=900, max_bytes=1, now_s=clock.seconds())
        assert words in info.value.reason, mode
        assert AK_SECRET not in info.value.reason and "Signature" not in info.value.reason


@pytest_twisted.ensureDeferred
async def test_a_silent_sts_times_out_on_the_injected_clock(http, sts, clock):
    sts.mode = "stall"
    p = provider(http, sts, timeout_s=3)
    d = defer.Deferred.fromCoroutine(p.issue_credentials(PATH, ttl_s=900, max_bytes=1, now_s=clock.seconds()))
    while not sts.hanging:
        await real_wait(0.02)
    clock.advance(3)
    with pytest.raises(StsUnavailable, match="no answer within 3"):
        await d


def test_signature_and_encoding_match_aliyuns_signer():
    params = {"Action": "AssumeRole", "RoleSessionName": "a b*c~d", "Policy": object_policy(BUCKET, "record/x.mp3"),
              "Text": "黑黑/+=&", "Timestamp": "2017-02-08T04:51:21Z"}
    signature, to_sign = rpc_signature("GET", params, AK_SECRET)
    assert to_sign == _compose("GET", params)
    assert signature == sha_hmac1.get_sign_string(to_sign, AK_SECRET + "&")
    assert percent_encode("a b*c~d") == "a%20b%2Ac~d"


def test_configuration_is_checked():
    with pytest.raises(ValueError, match="role_arn"):
        AliyunOss(None, access_key_id=AK_ID, access_key_secret=AK_SECRET, role_arn="", bucket=BUCKET,
                  oss_endpoint="https://oss-cn-beijing.aliyuncs.com")
    with pytest.raises(ValueError):
        AliyunOss(None, access_key_id=AK_ID, access_key_secret=AK_SECRET, role_arn=ROLE, bucket="Bad_Bucket",
                  oss_endpoint="https://oss-cn-beijing.aliyuncs.com")
    p = AliyunOss(None, access_key_id=AK_ID, access_key_secret=AK_SECRET, role_arn=ROLE, bucket=BUCKET,
                  oss_endpoint="https://oss-cn-beijing.aliyuncs.com")
    with pytest.raises(ValueError):
        p.upload_url("other-bucket/record/x.mp3")
