"""Helpers for the boss realm's tests: logins, a fake profile back end, media made on the spot."""

from __future__ import annotations

import array
import io
import json
import math
import re
import time

import av
import pytest_twisted
from PIL import Image
from twisted.internet import defer, reactor
from twisted.web import resource, server

from heihei.boss.tickets import make_ticket
from tests.conftest import ws_url
from tests.wsclient import connect

SECRET = "test-login-secret"
API_KEY = "test-api-key"


def boss_settings(**values) -> dict:
    """`extra` for nodes.start: a [boss] section (tickets on, api key set) plus `values`."""
    section = {"login_secret": SECRET, "api_key": API_KEY}
    section.update(values)
    return {"boss": section}


def ticket(user: str, expiry: int = 4_000_000_000, secret: str = SECRET) -> str:
    return make_ticket(secret, user, expiry)


async def login(node, user: str, *, path: str = "/entry", plain: bool = False, expect_early: int = 0):
    """A connected, logged-in client; `client.early` holds the stored messages sent after `ok`."""
    client = await connect(ws_url(node, "boss", path))
    client.send(f"login_{user}" if plain else f"login_{user}_{ticket(user)}")
    answer = await client.next()
    assert answer == "ok", answer
    client.early = [await client.next() for _ in range(expect_early)]
    return client


async def inputs_done(client) -> None:
    """Every frame `client` sent so far has been handled: the server handles a connection's frames
    in order, so the answer to this one comes after all of them (a message needs no answer)."""
    client.send("members_404")
    assert await client.next() == "error_404_no such group 404"


def check_delivery(frame: str, kind: str, sender: str, content: str, type_: str, group: str, extension: str,
                   timet: int | None = None) -> int:
    """`frame` is exactly `kind_sender_content_type_group_<timet>_extension`; returns timet."""
    pattern = re.escape(f"{kind}_{sender}_{content}_{type_}_{group}_") + r"([0-9]+)_" + re.escape(extension)
    m = re.fullmatch(pattern, frame, re.S)
    assert m is not None, f"unexpected frame {frame!r}"
    got = int(m.group(1))
    if timet is None:
        assert abs(got - time.time()) < 30, got
    else:
        assert got == timet
    return got


# -- a fake app back end: profile lookups in the original's style, avatars ----------------------


class _Lookup(resource.Resource):
    isLeaf = True

    def __init__(self, backend, field):
        super().__init__()
        self.backend = backend
        self.field = field

    def render_GET(self, request):
        ids = request.args.get(b"ids", [b""])[0].decode().split(",")
        self.backend.calls.append((self.field, ids))
        table = self.backend.avatars if self.field == "snap" else self.backend.nicknames
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"result": {i: table[i] for i in ids if i in table}}).encode()


class _Avatar(resource.Resource):
    isLeaf = True

    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    def render_GET(self, request):
        name = request.postpath[0].decode() if request.postpath else ""
        data = self.backend.images.get(name)
        if data is None:
            request.setResponseCode(404)
            return b"no"
        request.setHeader(b"content-type", b"image/png")
        return data


class FakeBackend:
    def __init__(self):
        self.avatars: dict[str, str] = {}
        self.nicknames: dict[str, str] = {}
        self.images: dict[str, bytes] = {}
        self.calls: list = []
        root = resource.Resource()
        root.putChild(b"avatar", _Lookup(self, "snap"))
        root.putChild(b"nick", _Lookup(self, "nickname"))
        root.putChild(b"img", _Avatar(self))
        site = server.Site(root)
        site.timeOut = None
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    def settings(self) -> dict:
        return {"profile_avatar_url": f"{self.base}/avatar?ids=", "profile_nickname_url": f"{self.base}/nick?ids=",
                "profile_timeout_s": 3.0}

    def add_user(self, user: str, nickname: str, color: tuple[int, int, int]) -> None:
        self.nicknames[user] = nickname
        self.images[f"{user}.png"] = png_bytes(color, (80, 60))
        self.avatars[user] = f"{self.base}/img/{user}.png"


@pytest_twisted.async_yield_fixture
async def backend():
    fake = FakeBackend()
    yield fake
    await defer.maybeDeferred(fake.port.stopListening)


# -- media made in the test ------------------------------------------------------------------------


def png_bytes(color=(200, 30, 30), size=(40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(size=(64, 48), color=(10, 120, 200)) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, color)
    for x in range(size[0]):  # some detail so it is a real picture
        image.putpixel((x, x % size[1]), (255, 255, 255))
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def tone(container_format: str, codec: str, seconds: float, rate: int = 44100, layout: str = "mono") -> bytes:
    """A 440 Hz tone encoded with PyAV in memory."""
    out_buf = io.BytesIO()
    with av.open(out_buf, "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        sample_format = stream.codec_context.format
        total = int(seconds * rate)
        step = 1152
        for start in range(0, total, step):
            count = min(step, total - start)
            values = [math.sin(2 * math.pi * 440 * (start + i) / rate) * 0.5 for i in range(count)]
            frame = av.AudioFrame(format="fltp" if sample_format.is_planar else "flt", layout=layout, samples=count)
            data = array.array("f", values * (1 if sample_format.is_planar or layout == "mono" else 2)).tobytes()
            for plane in frame.planes:
                plane.update(data)
            frame.rate = rate
            frame.pts = start
            resampler = av.AudioResampler(format=sample_format.name, layout=layout, rate=rate)
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return out_buf.getvalue()


def mp3_bytes(seconds: float = 2.6) -> bytes:
    return tone("mp3", "libmp3lame", seconds)


def m4a_bytes(seconds: float = 1.3) -> bytes:
    return tone("ipod", "aac", seconds, rate=22050)


def mp4_bytes(size=(64, 48), frames: int = 12, fps: int = 12) -> bytes:
    out_buf = io.BytesIO()
    with av.open(out_buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", size, (i * 20 % 255, 80, 160)))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return out_buf.getvalue()
