"""Uploads /upload/writev1..3: real media made in the test, measured and served back."""

import hashlib
import io
import json
import os
import socket
from urllib.parse import urlencode

import av
import pytest_twisted
import treq
from PIL import Image
from twisted.internet.threads import deferToThread

from tests.boss.conftest import API_KEY, boss_settings, jpeg_bytes, m4a_bytes, mp3_bytes, mp4_bytes, png_bytes, ticket
from tests.conftest import http_url

KEY = {"X-Api-Key": API_KEY}


async def upload(node, endpoint, data, *, filename="f.bin", field="file", headers=KEY, params=None, prefix="",
                 query=None):
    url = http_url(node, f"{prefix}/upload/{endpoint}", listener="boss")
    if query:
        url += "?" + urlencode(query)
    response = await treq.post(url, data=params or {}, files={field: (filename, "application/octet-stream",
                                                                        io.BytesIO(data))}, headers=headers)
    return response.code, json.loads(await response.content())


async def get(url):
    response = await treq.get(url)
    return response.code, response.headers, await response.content()


def media_files(node):
    root = os.path.join(node.data_dir, "boss-media")
    found = []
    for folder, _, names in os.walk(root):
        found.extend(os.path.relpath(os.path.join(folder, n), root) for n in names)
    return sorted(found)


def audio_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        assert container.format.name == "mp3"
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.codec_context.sample_rate


@pytest_twisted.ensureDeferred
async def test_mp3_is_stored_as_is_with_its_duration(nodes):
    node = await nodes.start("a", boss_settings())
    data = mp3_bytes(2.6)
    code, answer = await upload(node, "writev1", data, filename="voice.mp3")
    md5 = hashlib.md5(data).hexdigest()
    base = http_url(node, "", listener="boss")
    assert (code, answer) == (200, {"code": 0, "message": "OK", "data": f"{base}/emopic/{md5}-3.mp3"})
    code, headers, body = await get(answer["data"])
    assert code == 200 and body == data and headers.getRawHeaders("content-type") == ["audio/mpeg"]
    # the same file again: the same name, stored once
    assert (await upload(node, "writev1", data))[1]["data"] == answer["data"]
    assert media_files(node) == sorted(["emopic/default.jpg", f"emopic/{md5}-3.mp3"])


@pytest_twisted.ensureDeferred
async def test_m4a_is_transcoded_to_mp3(nodes):
    node = await nodes.start("a", boss_settings())
    code, answer = await upload(node, "writev1", m4a_bytes(1.3), filename="voice.m4a")
    assert code == 200 and answer["code"] == 0 and answer["message"] == "OK"
    name = answer["data"].rsplit("/", 1)[1]
    assert answer["data"].endswith("-1.mp3") and "/emopic/" in answer["data"]
    code, _, body = await get(answer["data"])
    assert code == 200
    assert hashlib.md5(body).hexdigest() == name.split("-")[0]  # named after what is stored
    assert abs(audio_seconds(body) - 1.3) < 0.1


@pytest_twisted.ensureDeferred
async def test_images_and_audio_on_writev2(nodes):
    node = await nodes.start("a", boss_settings())
    data = jpeg_bytes((746, 750))
    code, answer = await upload(node, "writev2", data, filename="photo.jpg")
    md5 = hashlib.md5(data).hexdigest()
    base = http_url(node, "", listener="boss")
    assert answer == {"code": 0, "message": "OK", "data": f"{base}/emopic/{md5}-746x750.jpg"}
    code, headers, body = await get(answer["data"])
    assert body == data and headers.getRawHeaders("content-type") == ["image/jpeg"]
    # a PNG becomes a JPEG with its size in the name
    code, answer = await upload(node, "writev2", png_bytes(size=(40, 30)), filename="x.png")
    assert answer["data"].endswith("-40x30.jpg")
    image = Image.open(io.BytesIO((await get(answer["data"]))[2]))
    assert image.format == "JPEG" and image.size == (40, 30)
    # audio is allowed here too
    code, answer = await upload(node, "writev2", mp3_bytes(1.0))
    assert answer["code"] == 0 and answer["data"].endswith("-1.mp3")


@pytest_twisted.ensureDeferred
async def test_mp4_video_on_writev3(nodes):
    node = await nodes.start("a", boss_settings())
    data = mp4_bytes((64, 48))
    code, answer = await upload(node, "writev3", data, filename="clip.mp4", prefix="/wsim")
    md5 = hashlib.md5(data).hexdigest()
    base = http_url(node, "", listener="boss")
    assert answer == {"code": 0, "message": "Succeeded", "data": f"{base}/wsim/emovideo/{md5}-64x48.mp4"}
    code, headers, body = await get(answer["data"])
    assert code == 200 and body == data and headers.getRawHeaders("content-type") == ["video/mp4"]
    # ranges work (players seek)
    response = await treq.get(answer["data"], headers={"Range": "bytes=0-9"})
    assert response.code == 206 and await response.content() == data[:10]


@pytest_twisted.ensureDeferred
async def test_wrong_corrupt_and_oversize_uploads_are_refused_and_leave_nothing(nodes):
    node = await nodes.start("a", boss_settings(max_upload_bytes=200_000, max_media_seconds=5.0))
    before = media_files(node)
    garbage = os.urandom(5000)
    cases = [
        ("writev1", jpeg_bytes(), 415, "expected an audio file, got an image"),
        ("writev1", garbage, 415, "not a readable audio file (Invalid data found when processing input)"),
        ("writev1", mp4_bytes(), 415, "expected an audio file, got a video"),
        ("writev1", mp3_bytes(6.0), 415, "audio longer than 5 seconds"),
        ("writev1", m4a_bytes(6.0), 415, "audio longer than 5 seconds"),
        ("writev2", garbage, 415, "expected an image or an audio file"),
        ("writev2", mp4_bytes(), 415, "expected an image or an audio file"),
        ("writev2", jpeg_bytes()[:300], 415, None),  # a truncated JPEG
        ("writev3", m4a_bytes(1.0), 415, "not a video (no video stream)"),
        ("writev3", jpeg_bytes(), 415, "expected an MP4 video, got an image"),
        ("writev3", b"<svg/>" * 10, 415, None),
        ("writev3", mp4_bytes()[:800], 415, None),  # truncated
        ("writev3", b"", 400, "empty file"),
        ("writev1", b"x" * 200_001, 413, "file larger than 200000 bytes"),
        ("writev9", mp3_bytes(1.0), 404, "no such upload endpoint"),
    ]
    for endpoint, data, code, message in cases:
        status, answer = await upload(node, endpoint, data)
        assert status == 200 and answer["code"] == code, (endpoint, message, answer)
        if message is not None:
            assert answer["message"] == message
        else:
            assert answer["message"]
    # no file field at all
    status, answer = await upload(node, "writev1", mp3_bytes(1.0), field="other")
    assert answer == {"code": 400, "message": "missing multipart field file"}
    assert media_files(node) == before  # nothing left behind, not even in tmp/
    # a body far over the site's cap never reaches us: a clear 413 from the site
    response = await treq.post(http_url(node, "/upload/writev1", listener="boss"),
                               data=b"z" * 1_200_000, headers={**KEY, "Content-Type": "application/octet-stream"})
    assert response.code == 413
    await response.content()


@pytest_twisted.ensureDeferred
async def test_uploads_need_a_key_or_a_ticket(nodes):
    node = await nodes.start("a", boss_settings())
    status, answer = await upload(node, "writev1", mp3_bytes(1.0), headers={})
    assert answer == {"code": 403, "message": "api_key or userid and ticket required"}
    status, answer = await upload(node, "writev1", mp3_bytes(1.0), headers={},
                                  query={"userid": "5", "ticket": ticket("5")})
    assert answer["code"] == 0
    status, answer = await upload(node, "writev1", mp3_bytes(1.0), headers={},
                                  query={"userid": "5", "ticket": ticket("6")})
    assert answer == {"code": 403, "message": "invalid ticket"}
    # credentials inside the multipart form come after the body they should let in: not enough
    status, answer = await upload(node, "writev1", mp3_bytes(1.0), headers={},
                                  params={"userid": "5", "ticket": ticket("5")})
    assert answer == {"code": 403, "message": "api_key or userid and ticket required"}


@pytest_twisted.ensureDeferred
async def test_an_upload_without_credentials_is_refused_before_its_body_is_read(nodes):
    """A 20 MiB upload announced without a key is answered from its headers alone, before a byte
    of the body is sent (issue 16: the node's RSS went 87 -> 342 MB for one such request)."""
    node = await nodes.start("a", boss_settings())
    host, port = node.listeners["boss"].address()
    reader = socket.create_connection((host, port))
    try:
        reader.sendall(b"POST /upload/writev1 HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                       b"boundary=b\r\nContent-Length: %d\r\n\r\n" % (20 * 1024 * 1024))
        reader.settimeout(5)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = await deferToThread(reader.recv, 4096)
            if not chunk:
                break
            answer += chunk
    finally:
        reader.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in answer
    assert answer.endswith(b'{"code":403,"message":"api_key or userid and ticket required"}')


@pytest_twisted.ensureDeferred
async def test_uploads_larger_than_the_sites_general_body_cap(nodes):
    """[http] max_body_bytes (1 MiB) does not apply to uploads: the boss site takes max_upload_bytes."""
    node = await nodes.start("a", boss_settings())
    noise = Image.frombytes("RGB", (900, 900), os.urandom(900 * 900 * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=97)
    data = out.getvalue()
    assert len(data) > node.settings.http.max_body_bytes
    code, answer = await upload(node, "writev2", data)
    assert answer["code"] == 0 and answer["data"].endswith("-900x900.jpg")
    assert (await get(answer["data"]))[2] == data
