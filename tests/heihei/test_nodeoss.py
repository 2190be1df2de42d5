"""The node provider's checks without HTTP: requests signed offline by oss2's own signers (V1, V4),
then altered one way at a time; and the object store's write-once rules."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import time

import oss2
import pytest

from heihei.web.oss_signing import Grant, NodeOss, OssDenied, SignedRequest
from heihei.web.oss_store import Body, ObjectStore
from tests.boss.conftest import mp3_bytes, png_bytes

SECRET = "uploads-test-secret-0123456789abcdef"
BUCKET = "heihei-test"
KEY = "record/2017020812_10468_vHPCMkYp29.mp3"


def node() -> NodeOss:
    return NodeOss(SECRET, bucket=BUCKET, site_url="http://127.0.0.1:1")


def signed(credentials, *, version=oss2.AUTH_VERSION_1, key=KEY, method="PUT", headers=None, secret=None,
           params=None) -> SignedRequest:
    """A request as oss2 would send it, signed by oss2 itself (wall-clock time, as the SDK does)."""
    auth = oss2.StsAuth(credentials.access_key_id, secret or credentials.access_key_secret,
                        credentials.security_token, auth_version=version)
    request = oss2.http.Request(method, f"http://127.0.0.1:1/{BUCKET}/{key}", params=params,
                                headers={"Content-Type": "audio/mpeg", **(headers or {})},
                                region="cn-hangzhou", product="oss")
    auth._sign_request(request, BUCKET, key)
    sent = {name.lower(): value for name, value in request.headers.items() if value is not None}
    query = "&".join(f"{k}={v}" if v else k for k, v in (params or {}).items()).encode()
    return SignedRequest(method=method, bucket=BUCKET, key=key, query=query, headers=sent)


def issue(n: NodeOss, now_s: float, ttl_s: int = 3600, max_bytes: int = 1 << 20):
    return n.credentials_for(f"{BUCKET}/{KEY}", ttl_s=ttl_s, max_bytes=max_bytes, now_s=now_s)


def denied(n: NodeOss, request: SignedRequest, now_s: float) -> OssDenied:
    with pytest.raises(OssDenied) as info:
        n.check_put(request, now_s)
    return info.value


@pytest.mark.parametrize("version", [oss2.AUTH_VERSION_1, oss2.AUTH_VERSION_4])
def test_signed_requests_pass_and_altered_ones_fail(version):
    n, now = node(), time.time()
    c = issue(n, now)
    grant = n.check_put(signed(c, version=version), now)
    assert (grant.bucket, grant.key, grant.max_bytes, grant.access_key_id) == (BUCKET, KEY, 1 << 20, c.access_key_id)
    # another node with the same secret checks it too: nothing is stored anywhere
    assert node().check_put(signed(c, version=version), now) == grant

    request = signed(c, version=version)
    for name, value in [("content-type", "image/png"), ("x-oss-meta-added", "1")]:
        altered = SignedRequest(request.method, request.bucket, request.key, request.query,
                                {**request.headers, name: value})
        assert denied(n, altered, now).code == "SignatureDoesNotMatch"
    other_key = SignedRequest("PUT", BUCKET, "record/2017020812_10468_vHPCMkYp28.mp3", b"", request.headers)
    assert denied(n, other_key, now).code == "SignatureDoesNotMatch"
    # the client's clock is 16 minutes off ours
    assert denied(n, signed(c, version=version), now + 16 * 60).code == "RequestTimeTooSkewed"
    assert denied(n, signed(c, version=version), now + 3600).code == "SecurityTokenExpired"
    # signed properly for another key, but the token allows one key only
    other = signed(c, version=version, key="record/2017020812_10468_vHPCMkYp28.mp3")
    assert (denied(n, other, now).status, denied(n, other, now).code) == (403, "AccessDenied")
    # a token of another secret is not ours
    foreign = NodeOss("another-secret-0123456789abcdef", bucket=BUCKET, site_url="http://x")
    assert denied(foreign, signed(c, version=version), now).code == "InvalidSecurityToken"


def test_what_is_refused_before_any_signature_is_computed():
    n, now = node(), time.time()
    c = issue(n, now)
    good = signed(c)
    h = good.headers

    def variant(**changes) -> SignedRequest:
        fields = {"method": good.method, "bucket": good.bucket, "key": good.key, "query": good.query,
                  "headers": h, **changes}
        return SignedRequest(**fields)

    cases = [
        (variant(headers={k: v for k, v in h.items() if k != "authorization"}), 403, "AccessDenied"),
        (variant(headers={**h, "authorization": "OSS2 AccessKeyId:x,Signature:y"}), 403, "AccessDenied"),
        (variant(headers={**h, "authorization": "Bearer x"}), 400, "InvalidArgument"),
        (variant(headers={**h, "authorization": "OSS nocolon"}), 400, "InvalidArgument"),
        (variant(headers={**h, "authorization": "OSS4-HMAC-SHA256 Credential=a/b, Signature=zz"}), 400,
         "InvalidArgument"),
        (variant(query=b"acl"), 403, "AccessDenied"),
        (variant(method="POST"), 403, "AccessDenied"),
        (variant(headers={k: v for k, v in h.items() if k != "x-oss-security-token"}), 403, "InvalidAccessKeyId"),
        (variant(headers={**h, "x-oss-security-token": "HH1.e30.AAAA"}), 403, "InvalidSecurityToken"),
        (variant(headers={**h, "x-oss-security-token": "x" * 5000}), 403, "InvalidSecurityToken"),
        (variant(headers={k: v for k, v in h.items() if k != "date"}), 403, "AccessDenied"),
        (variant(headers={**h, "date": "yesterday"}), 403, "AccessDenied"),
    ]
    for request, status, code in cases:
        e = denied(n, request, now)
        assert (e.status, e.code) == (status, code), request.headers.get("authorization")
    # the token of one issue with the key id of another
    other = issue(n, now)
    mixed = variant(headers={**h, "x-oss-security-token": other.security_token})
    assert denied(n, mixed, now).code == "InvalidAccessKeyId"


def test_v4_scope_is_checked():
    n, now = node(), time.time()
    c = issue(n, now)
    request = signed(c, version=oss2.AUTH_VERSION_4)
    auth = request.headers["authorization"]
    for before, after in [("/oss/", "/s3/"), ("aliyun_v4_request", "aws4_request"), ("/cn-hangzhou/", "/CN_X/")]:
        altered = SignedRequest("PUT", BUCKET, KEY, b"", {**request.headers, "authorization": auth.replace(before,
                                                                                                          after)})
        assert denied(n, altered, now).code == "AccessDenied"
    no_date = SignedRequest("PUT", BUCKET, KEY, b"", {k: v for k, v in request.headers.items() if k != "x-oss-date"})
    assert denied(n, no_date, now).code == "AccessDenied"


def test_issue_refuses_paths_of_other_buckets_or_not_ours():
    n = node()
    for path in (f"other-bucket/{KEY}", f"{BUCKET}/record/x.mp3", f"{BUCKET}/{KEY}/.."):
        with pytest.raises(ValueError):
            n.credentials_for(path, ttl_s=60, max_bytes=10, now_s=0)
    with pytest.raises(ValueError):
        n.credentials_for(f"{BUCKET}/{KEY}", ttl_s=0, max_bytes=10, now_s=0)
    c = n.credentials_for(f"{BUCKET}/{KEY}", ttl_s=60, max_bytes=10, now_s=0)
    assert c.expiration == "1970-01-01T00:01:00Z" and c.expires_at_s == 60
    assert c.access_key_secret not in repr(c) and c.security_token not in repr(c)


# -- the store ------------------------------------------------------------------------------------


def grant(key=KEY, max_bytes=1 << 20, sha256=None) -> Grant:
    return Grant("STS.x", BUCKET, key, 0, max_bytes, sha256)


def test_store_bodies_from_memory_and_from_a_spool_file(tmp_path):
    store = ObjectStore(str(tmp_path))
    store.prepare()
    data = mp3_bytes(0.5)
    small = Body(io.BytesIO(data))
    assert small.read_at(0, 4) == data[:4] and small.size == len(data)
    spool = tempfile.TemporaryFile()
    spool.write(data)
    body = Body(spool)
    spool.close()  # what Twisted does when the client goes away: our descriptor stays usable
    stored = store.put(grant(), body, content_md5=base64.b64encode(hashlib.md5(data).digest()).decode())
    body.close()
    assert stored.created and stored.size == len(data)
    assert open(store.path_of(KEY), "rb").read() == data
    assert oct(os.stat(store.path_of(KEY)).st_mode & 0o777) == "0o644"
    assert store.put(grant(), Body(io.BytesIO(data)), content_md5=None).created is False
    assert os.listdir(store.tmp) == []


def test_store_checks(tmp_path):
    store = ObjectStore(str(tmp_path))
    store.prepare()
    data = png_bytes()
    key = "avatar/2017020812_10468_vHPCMkYp29.png"
    cases = [
        (grant(key, max_bytes=len(data) - 1), None, "EntityTooLarge"),
        (grant(key, sha256="0" * 64), None, "InvalidArgument"),
        (grant(key), base64.b64encode(b"x" * 16).decode(), "InvalidDigest"),
        (grant(key), "AAAA", "InvalidDigest"),
        (grant(KEY), None, "AccessDenied"),  # a PNG where an mp3 was promised
    ]
    for g, md5, code in cases:
        with pytest.raises(OssDenied) as info:
            store.put(g, Body(io.BytesIO(data)), content_md5=md5)
        assert info.value.code == code
    assert store.path_of(key) is None and os.listdir(store.tmp) == []
    assert store.put(grant(key, sha256=hashlib.sha256(data).hexdigest()), Body(io.BytesIO(data)),
                     content_md5=None).created
    # a crash leaves a partial file in .tmp: start-up sweeps it
    (tmp_path / ".tmp" / "partial").write_bytes(b"x")
    store.prepare()
    assert os.listdir(store.tmp) == [] and store.path_of(key) is not None
    for bad in ("", "..", "../x", ".tmp/partial", "avatar", "avatar/", key + "/", "/" + key, None):
        assert store.path_of(bad) is None
