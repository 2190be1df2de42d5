"""`/api/sys/oss-token` on a real node, the upload with Aliyun's own oss2 SDK to the node's
OSS-compatible resource at /<bucket>/, the file served back; `/api/sys/upload-log`."""

from __future__ import annotations

import json
import os
import re

import oss2
import pytest
import pytest_twisted
import treq
from twisted.internet import threads

from heihei.config import ConfigError
from tests.boss.conftest import mp3_bytes, png_bytes
from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, ok, sign_in

def noise_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (40, 40), os.urandom(40 * 40 * 3)).save(out, "PNG")
    return out.getvalue()


UPLOADS = {"secret": "uploads-secret-for-the-tests-0123456789", "bucket": "hh-test"}


def upload_extra(outside, tmp_path, **more) -> dict:
    return heihei_extra(outside, uploads={**UPLOADS, "storage_dir": str(tmp_path / "shared-uploads"), **more})


class Uploader:
    """oss2, the way the shipped apps' Aliyun SDKs upload: StsAuth with the issued credentials,
    path style on the node's address (the signature covers /<bucket>/<key> whatever the host)."""

    def __init__(self, node) -> None:
        self.endpoint = http_url(node, "").rstrip("/")
        self.sessions: list = []

    def bucket(self, answer: dict) -> tuple[oss2.Bucket, str]:
        c = answer["Credentials"]
        session = oss2.Session()
        # the SDK keeps the connection of an error answer checked out of its pool: have the node
        # close every connection after its answer, so none is left open behind the test
        session.session.headers["Connection"] = "close"
        self.sessions.append(session.session)
        bucket_name, key = answer["FileInfo"]["path"].split("/", 1)
        auth = oss2.StsAuth(c["AccessKeyId"], c["AccessKeySecret"], c["SecurityToken"])
        return oss2.Bucket(auth, self.endpoint, bucket_name, session=session), key

    async def put(self, answer: dict, data: bytes):
        bucket, key = self.bucket(answer)
        return await threads.deferToThread(bucket.put_object, key, data)

    def close(self) -> None:
        for session in self.sessions:
            session.close()


@pytest_twisted.ensureDeferred
async def test_oss_token_then_oss2_upload_then_served(nodes, outside, tmp_path):
    node = await nodes.start("a", upload_extra(outside, tmp_path))
    token, uid = await sign_in(node, outside, "13900000001")
    answer = await ok(node, "/api/sys/oss-token", {"token": token, "format": "mp3", "module": "record"})
    c, f = answer["Credentials"], answer["FileInfo"]
    assert c["AccessKeyId"].startswith("STS.") and c["SecurityToken"] and c["AccessKeySecret"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["Expiration"])
    assert re.fullmatch(rf"\d{{10}}_{uid}_[0-9A-Za-z]{{10}}\.mp3", f["fileName"])
    assert f["path"] == f"hh-test/record/{f['fileName']}" and re.fullmatch(r"[0-9a-f]{32}", f["sign"])
    assert f["uploadUrl"] == f"http://127.0.0.1:8082/hh-test/record/{f['fileName']}"  # [http] public_url
    assert f["url"] == f"http://127.0.0.1:8082/hh-test/record/{f['fileName']}"

    uploader = Uploader(node)
    try:
        sound = mp3_bytes(2.0)
        result = await uploader.put(answer, sound)
        assert result.status == 200
        served = await treq.get(http_url(node, f"/hh-test/record/{f['fileName']}"))
        assert served.code == 200 and served.headers.getRawHeaders("content-type") == ["audio/mpeg"]
        assert await served.content() == sound
        # the credentials allow that one key only, and that format only
        other = await ok(node, "/api/sys/oss-token", {"token": token, "format": "png", "module": "avatar"})
        with pytest.raises(oss2.exceptions.AccessDenied):
            await uploader.put(other, mp3_bytes(1.0))
        bucket, _ = uploader.bucket(other)
        with pytest.raises(oss2.exceptions.AccessDenied):
            await threads.deferToThread(bucket.put_object, "avatar/someone-else.png", png_bytes())
        assert (await uploader.put(other, png_bytes())).status == 200
    finally:
        uploader.close()

    for params, words in [({"format": "gif", "module": "avatar"}, "format"),
                          ({"format": "mp3", "module": "video"}, "module"),
                          ({"format": "png", "module": "record"}, "format (png files cannot be uploaded to record)"),
                          ({"module": "record"}, "format (required)")]:
        r = await api(node, "/api/sys/oss-token", {"token": token, **params})
        assert r["errorcode"] == 700 and words in r["errormsg"], r
    assert (await ok(node, "/api/sys/oss-token", {"token": token, "format": "jepg", "module": "avator"}))[
        "FileInfo"]["path"].startswith("hh-test/avatar/")
    assert (await api(node, "/api/sys/oss-token", {"format": "mp3", "module": "record"}))["errorcode"] == 720


@pytest_twisted.ensureDeferred
async def test_upload_caps_are_the_settings(nodes, outside, tmp_path):
    node = await nodes.start("a", upload_extra(outside, tmp_path, max_avatar_bytes=1000))
    token, _ = await sign_in(node, outside, "13900000002")
    answer = await ok(node, "/api/sys/oss-token", {"token": token, "format": "png", "module": "avatar"})
    uploader = Uploader(node)
    try:
        with pytest.raises(oss2.exceptions.ServerError) as caught:
            await uploader.put(answer, noise_png())
        assert caught.value.code == "EntityTooLarge"
    finally:
        uploader.close()


def test_bad_upload_settings_stop_the_start(tmp_path):
    from heihei.node import Node
    from tests.conftest import node_settings

    for uploads, words in [({"bucket": "api"}, "bucket 'api'"), ({"bucket": "Bad_Bucket"}, "bucket"),
                           ({"provider": "s3"}, "provider"), ({"secret": "short"}, "at least 16 bytes"),
                           ({"provider": "aliyun"}, "aliyun uploads: empty setting")]:
        settings = node_settings(str(tmp_path / "n"), "redis://127.0.0.1:1/0", "x", {"uploads": uploads})
        with pytest.raises(ConfigError, match=re.escape(words)):
            Node(settings)


@pytest_twisted.ensureDeferred
async def test_upload_log_is_kept_bounded_and_rotated(nodes, outside, tmp_path):
    logs = tmp_path / "client-logs"
    node = await nodes.start("a", heihei_extra(outside, social={"client_log_dir": str(logs),
                                                                "client_log_max_bytes": 300,
                                                                "client_log_file_bytes": 600,
                                                                "client_log_files": 2}))
    token, uid = await sign_in(node, outside, "13900000003")
    await ok(node, "/api/sys/upload-log", {"token": token, "log": "crash at MainActivity:42 token=abc"})
    [line] = (logs / "client.log").read_text().splitlines()
    entry = json.loads(line)
    assert entry["user"] == uid and entry["node"] == "a" and entry["log"].startswith("crash at MainActivity")
    too_big = await api(node, "/api/sys/upload-log", {"token": token, "log": "x" * 301})
    assert too_big["errorcode"] == 700 and "log" in too_big["errormsg"]
    assert (await api(node, "/api/sys/upload-log", {"token": token}))["errorcode"] == 700
    assert (await api(node, "/api/sys/upload-log", {"log": "x"}))["errorcode"] == 720
    await ok(node, "/api/sys/upload-log", {"token": token, "log": "y" * 290})
    await ok(node, "/api/sys/upload-log", {"token": token, "log": "z" * 290})
    limited = await api(node, "/api/sys/upload-log", {"token": token, "log": "again"})
    assert limited["errorcode"] == 400  # a burst of 3, then one every 20 s
    other, _ = await sign_in(node, outside, "13900000004")
    for _ in range(3):
        await ok(node, "/api/sys/upload-log", {"token": other, "log": "w" * 290})
    names = sorted(os.listdir(logs))
    assert names == ["client.log", "client.log.1", "client.log.2"]  # rotated, two kept
    assert sum(os.path.getsize(logs / n) for n in names) < 3 * 1000
