"""Uploads: file names like the seed's, paths, the sign (verified, forged), the module/format table,
and the answer's shape, with the node's own provider (no network)."""

from __future__ import annotations

import re

import pytest
import pytest_twisted

from heihei.web.oss_signing import NodeOss
from heihei.heihei.uploads import (
    DEFAULT_MAX_BYTES,
    UploadRefused,
    Uploads,
    derive_key,
    parse_file_name,
    split_path,
)

SECRET = "uploads-test-secret-0123456789abcdef"
BUCKET = "ycl-bucket-01"
# 2017-02-08 04:51:21 UTC = 12:51 in Beijing: the seed's example was issued in the 12 o'clock hour
NOW = 1486529481


def uploads(secret: str = SECRET, **kw) -> Uploads:
    provider = NodeOss(secret, bucket=BUCKET, site_url="https://api.example.com",
                       public_base_url="http://cdn.wmlives.com/data")
    options = {"ttl_s": 900, "max_bytes": DEFAULT_MAX_BYTES, "random_text": lambda n: "vHPCMkYp29"[:n], **kw}
    return Uploads(provider, bucket=BUCKET, secret=secret, **options)


@pytest_twisted.ensureDeferred
async def test_issue_names_the_file_like_the_seed_and_answers_its_shape():
    issued = await uploads().issue("10468", "mp3", "record", NOW)
    f = issued.file
    assert f.file_name == "2017020812_10468_vHPCMkYp29.mp3"
    assert f.path == "ycl-bucket-01/record/2017020812_10468_vHPCMkYp29.mp3"
    assert re.fullmatch(r"[0-9a-f]{32}", f.sign)
    assert f.upload_url == "https://api.example.com/ycl-bucket-01/record/2017020812_10468_vHPCMkYp29.mp3"
    assert f.url == "http://cdn.wmlives.com/data/record/2017020812_10468_vHPCMkYp29.mp3"
    body = issued.as_json()
    assert set(body) == {"Credentials", "FileInfo"}
    c = body["Credentials"]
    assert set(c) == {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}
    assert c["Expiration"] == "2017-02-08T05:06:21Z"  # NOW + 900 s
    assert re.fullmatch(r"STS\.[0-9A-Za-z]{25}", c["AccessKeyId"])
    assert set(body["FileInfo"]) == {"fileName", "path", "sign", "uploadUrl", "url"}
    # the secret stays out of reprs
    assert c["AccessKeySecret"] not in repr(issued) and c["SecurityToken"] not in repr(issued)


@pytest_twisted.ensureDeferred
async def test_random_part_differs_per_issue():
    u = Uploads(NodeOss(SECRET, bucket=BUCKET, site_url="http://x"), bucket=BUCKET, secret=SECRET, ttl_s=60,
                max_bytes=DEFAULT_MAX_BYTES)
    names = {(await u.issue("7", "png", "avatar", NOW)).file.file_name for _ in range(20)}
    assert len(names) == 20
    assert all(parse_file_name(n) is not None for n in names)


@pytest_twisted.ensureDeferred
async def test_sign_verifies_and_forgeries_fail():
    u = uploads()
    issued = await u.issue("10468", "mp3", "record", NOW)
    name, sign = issued.file.file_name, issued.file.sign
    assert u.verify_sign(name, sign)
    assert u.verify_sign(name, sign.upper())
    assert u.verify_sign(name, sign, user="10468")
    assert not u.verify_sign(name, sign, user="10469")  # someone else's file
    other = name.replace("vHPCMkYp29", "vHPCMkYp28")
    assert not u.verify_sign(other, sign)  # the sign of another name
    assert not u.verify_sign(name, "d4c422e57b6d422bb0462c5e77295b9c")  # the seed's (another secret)
    assert not u.verify_sign(name, sign[:-1] + ("0" if sign[-1] != "0" else "1"))
    for bad_sign in ("", sign[:31], sign + "0", None, 12, "é" * 32, sign[:31] + "☃"):
        assert not u.verify_sign(name, bad_sign)
    for bad_name in ("", "x.mp3", "../" + name, name + "/", None):
        assert not u.verify_sign(bad_name, sign)
    # any node with the same secret verifies; another secret does not
    assert uploads().verify_sign(name, sign)
    assert not uploads("another-secret-0123456789abcdef").verify_sign(name, sign)


def test_format_and_module_are_checked():
    u = uploads()
    assert u.check("jpg", "avatar") == ("jpg", "avatar")
    assert u.check("jepg", "avator") == ("jpeg", "avatar")  # the seed's own spellings
    for fmt, module, field in [("gif", "avatar", "format"), ("mp3", "video", "module"), (None, "record", "format"),
                               ("mp3", 3, "module"), ("png", "record", "format"), ("mp3", "avatar", "format")]:
        with pytest.raises(UploadRefused) as info:
            u.check(fmt, module)
        assert info.value.field == field
    assert u.max_bytes("record", "mp3") == DEFAULT_MAX_BYTES["record"]["mp3"]
    assert u.max_bytes("avatar", "mp3") is None


@pytest_twisted.ensureDeferred
async def test_bad_user_ids_never_reach_a_file_name():
    u = uploads()
    for user in ("", "a/b", "../1", "1_2", "x" * 33):
        with pytest.raises(ValueError):
            await u.issue(user, "mp3", "record", NOW)


def test_paths_and_configuration():
    assert split_path("ycl-bucket-01/record/2017020812_10468_vHPCMkYp29.mp3") == (
        "ycl-bucket-01", "record/2017020812_10468_vHPCMkYp29.mp3")
    for bad in ("ycl-bucket-01/record/../x.mp3", "Bucket/record/2017020812_1_abcdefghij.mp3",
                "ycl-bucket-01/record/2017020812_10468_vHPCMkYp29.text", "ycl-bucket-01//2017020812_1_abcdefghij.mp3"):
        with pytest.raises(ValueError):
            split_path(bad)
    with pytest.raises(ValueError):
        derive_key("short", "x")
    assert derive_key(SECRET, "a") != derive_key(SECRET, "b")
    with pytest.raises(ValueError):
        uploads(max_bytes={"record": {"gif": 10}})
    with pytest.raises(ValueError):
        uploads(max_bytes={"record": {"mp3": 0}})
    with pytest.raises(ValueError):
        Uploads(NodeOss(SECRET, bucket=BUCKET, site_url="http://x"), bucket="Not_A_Bucket", secret=SECRET,
                ttl_s=60, max_bytes={})
    assert uploads().public_url("record", "2017020812_10468_vHPCMkYp29.mp3") == (
        "http://cdn.wmlives.com/data/record/2017020812_10468_vHPCMkYp29.mp3")
