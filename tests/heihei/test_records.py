"""Voice records over real nodes: the multipart upload checked (MD5, decoded with PyAV, lengths measured),
the file served at recordPath, the browse list, listens, deletion, and the seed's codes 754-757."""

from __future__ import annotations

import hashlib
import io
import json

import pytest_twisted
import treq

from tests.boss.conftest import m4a_bytes, mp3_bytes, png_bytes
from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, name, ok, sign_in
from tests.heihei.test_uploads_api import UPLOADS


def extra(outside, tmp_path, **social) -> dict:
    return heihei_extra(outside, uploads={**UPLOADS, "storage_dir": str(tmp_path / "shared-uploads")},
                        social=social)


async def upload_record(node, token: str | None, data: bytes, md5: str | None = None, **fields) -> dict:
    params = {"fileMd5": md5 if md5 is not None else hashlib.md5(data).hexdigest(), "fileName": "rec.mp3",
              "recordLength": "5", **{k: str(v) for k, v in fields.items()}}
    if token is not None:
        params["token"] = token
    response = await treq.post(http_url(node, "/api/record/upload-record"), data=params,
                               files={"file": ("rec.mp3", "audio/mpeg", io.BytesIO(data))})
    return json.loads(await response.text("utf-8"))


@pytest_twisted.ensureDeferred
async def test_upload_browse_listen_delete_across_two_nodes(nodes, outside, tmp_path):
    a_node = await nodes.start("a", extra(outside, tmp_path))
    b_node = await nodes.start("b", extra(outside, tmp_path))
    ta, a = await sign_in(a_node, outside, "13500000001")
    tb, b = await sign_in(b_node, outside, "13500000002")
    await name(a_node, ta, "录音人")

    sound = mp3_bytes(3.0)
    body = await upload_record(a_node, ta, sound, recordLength=99)
    assert body["errorcode"] == 0, body
    record = body["record"]
    assert record["redordLength"] == 3 and record["recordLength"] == 3 and record["status"] == 1
    assert record["userId"] == int(a) and record["recordPath"].startswith("http://127.0.0.1:8082/hh-test/record/")
    served = await treq.get(http_url(b_node, record["recordPath"].removeprefix("http://127.0.0.1:8082")))
    assert served.code == 200 and await served.content() == sound  # shared storage: any node serves it

    seen = await ok(b_node, "/api/record/refresh-record", {"token": tb, "score": 0})
    [shown] = seen["data"]["records"]
    assert shown["recordId"] == record["recordId"] and shown["timeTip"] == "刚刚"
    assert shown["userInfo"]["displayName"] == "录音人" and shown["userInfo"]["isFollow"] is False
    assert "mine" not in seen["data"]
    own = await ok(a_node, "/api/record/refresh-record", {"token": ta})
    assert own["data"]["records"] == [] and own["data"]["mine"]["recordId"] == record["recordId"]
    older = await ok(b_node, "/api/record/refresh-record", {"token": tb, "score": shown["score"]})
    assert older["data"]["records"] == []

    read = await ok(b_node, "/api/record/read-record", {"token": tb, "recordId": record["recordId"]})
    assert read["record"]["recordPath"] == record["recordPath"]
    assert (await api(a_node, "/api/record/read-record", {"token": tb, "recordId": 999}))["errorcode"] == 757

    # b blocks a: a's record is no longer listed for b
    await ok(b_node, "/api/user/block-user", {"token": tb, "userId": a})
    assert (await ok(b_node, "/api/record/refresh-record", {"token": tb}))["data"]["records"] == []
    await ok(b_node, "/api/user/unblock-user", {"token": tb, "targetId": a})

    # a new upload replaces the old one (and its file)
    second = (await upload_record(a_node, ta, m4a_bytes(2.5)))["record"]
    assert second["recordPath"].endswith(".m4a") and second["redordLength"] == 3
    gone = await treq.get(http_url(a_node, record["recordPath"].removeprefix("http://127.0.0.1:8082")))
    assert gone.code == 404
    await gone.content()
    m4a = await treq.get(http_url(a_node, second["recordPath"].removeprefix("http://127.0.0.1:8082")))
    assert m4a.headers.getRawHeaders("content-type") == ["audio/mp4"]
    await m4a.content()

    refused = await api(b_node, "/api/record/delete-record", {"token": tb, "recordId": second["recordId"]})
    assert refused == {"errorcode": 757, "errormsg": "无法删除不属于自己的录音"}
    await ok(b_node, "/api/record/delete-record", {"token": ta, "recordId": second["recordId"]})
    assert (await api(a_node, "/api/record/delete-record", {"token": ta, "recordId": second["recordId"]})) == \
        {"errorcode": 757, "errormsg": "录音不存在"}
    assert (await ok(b_node, "/api/record/refresh-record", {"token": tb}))["data"]["records"] == []


@pytest_twisted.ensureDeferred
async def test_upload_refusals_have_the_seed_codes(nodes, outside, tmp_path):
    node = await nodes.start("a", extra(outside, tmp_path, record_min_s=2.0, record_max_s=10.0,
                                        record_max_bytes=200_000))
    token, _ = await sign_in(node, outside, "13500000003")
    sound = mp3_bytes(3.0)
    wrong_md5 = await upload_record(node, token, sound, md5="0" * 32)
    assert wrong_md5["errorcode"] == 754 and wrong_md5["errormsg"].startswith("文件损坏,请重新上传。")
    not_audio = await upload_record(node, token, png_bytes())
    assert not_audio["errorcode"] == 754
    html = await upload_record(node, token, b"<html><script>alert(1)</script></html>" * 50)
    assert html["errorcode"] == 754
    short = await upload_record(node, token, mp3_bytes(1.0))
    assert short["errorcode"] == 755 and short["errormsg"].startswith("录音时间太短")
    long = await upload_record(node, token, mp3_bytes(12.0))
    assert long["errorcode"] == 756 and long["errormsg"].startswith("文件太大啦")
    big = await upload_record(node, token, b"\xff\xfb" + b"\0" * 200_001)
    assert big["errorcode"] == 756
    assert (await upload_record(node, token, sound, md5="xyz"))["errorcode"] == 700
    assert (await upload_record(node, None, sound))["errorcode"] == 720
    no_file = await api(node, "/api/record/upload-record", {"token": token, "fileMd5": "0" * 32})
    assert no_file["errorcode"] == 700 and "file" in no_file["errormsg"]
    assert (await upload_record(node, token, sound))["errorcode"] == 0
    assert (await api(node, "/api/record/read-record", {"token": token, "recordId": "x"}))["errorcode"] == 700
