"""
Our signed addresses against a real Node-Media-Server (npm `node-media-server`).

The server runs with `auth.publish` and `auth.play` on and its `notify.url`
webhook pointed at a recorder here, so every verdict is NMS's own: a publish
it admits posts `postPublish`, one it refuses posts only `prePublish`. The
publisher is FFmpeg (PyAV) sending to exactly the URL the client's Pili SDK
builds from our qiniuObj; the player is an HTTP-FLV GET.

Node-Media-Server comes from the project's own set-up: tests/peers/package.json
pins it and tox runs tests/peers/setup.sh (npm ci) before the tests (node >= 18 and npm are
on the machine, docs/architecture.md). A missing install is a failure that
says so, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import pytest

from heihei.outbound.streams import MediaSigner, SignRefused, nms_sign, pili_publish_url
from heihei.store.embedded import free_loopback_port

NMS_VERSION = "4.4.3"
SECRET = "nms-live-test-secret"
START_TIMEOUT_S = 20.0
EVENT_TIMEOUT_S = 10.0


PEERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers")


def nms_app_js() -> str:
    app = os.path.join(PEERS, "node_modules", "node-media-server", "bin", "app.js")
    assert os.path.exists(app), (f"node-media-server@{NMS_VERSION} is not installed in {PEERS}: "
                                 f"tox runs tests/peers/setup.sh first (or run it by hand)")
    assert shutil.which("node"), "node is needed to run Node-Media-Server"
    return app


class Webhook:
    """Records NMS's notify posts; answers 200 so NMS never closes a session on our account."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.changed = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.changed:
                    hook.events.append(json.loads(body))
                    hook.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/nms"

    def wait_for(self, action: str, sign: str) -> dict:
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        with self.changed:
            while True:
                for event in self.events:
                    if event["action"] == action and event["query"].get("sign") == sign:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"NMS posted no {action} for that sign: {self.events}")
                self.changed.wait(left)

    def signs_of(self, action: str) -> set[str]:
        with self.changed:
            return {e["query"].get("sign") for e in self.events if e["action"] == action}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def nms(tmp_path_factory):
    app = nms_app_js()
    home = tmp_path_factory.mktemp("nms")
    hook = Webhook()
    rtmp_port, http_port = free_loopback_port(), free_loopback_port()
    config = {"bind": "127.0.0.1", "notify": {"url": hook.url},
              "auth": {"play": True, "publish": True, "secret": SECRET},
              "rtmp": {"port": rtmp_port}, "http": {"port": http_port},
              "webadmin": {"enable": False}, "store": {"path": "./data"}}
    (home / "config.json").write_text(json.dumps(config))
    log = open(home / "nms.log", "wb")
    proc = subprocess.Popen(["node", app, "-c", str(home / "config.json"), "--no-admin"], cwd=home,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        for port in (http_port, rtmp_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("Node-Media-Server did not start: "
                                           + (home / "nms.log").read_text(errors="replace")[-2000:])
                    time.sleep(0.05)
        yield {"hook": hook, "rtmp": f"rtmp://127.0.0.1:{rtmp_port}", "http": f"http://127.0.0.1:{http_port}"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        hook.close()


def media_signer(nms, **kw) -> MediaSigner:
    return MediaSigner(secret=SECRET, push_rtmp=nms["rtmp"], pull_flv=nms["http"], **kw)


def publish(url: str) -> bool:
    """Send a second of silence in AAC over RTMP to `url`, as an encoder would.

    False when the connection broke under FFmpeg: a server that refuses a
    publish may close the connection before or after FFmpeg is done, so the
    verdict that counts is NMS's webhook, not this.
    """
    try:
        out = av.open(url, mode="w", format="flv", timeout=5)
    except av.FFmpegError:
        return False
    try:
        stream = out.add_stream("aac", rate=44100, layout="mono")
        for index in range(8):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.sample_rate = 44100
            frame.pts = index * 1024
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        out.close()
        return True
    except av.FFmpegError:
        try:
            out.close()
        except av.FFmpegError:
            pass
        return False


def play_flv(url: str) -> bytes:
    """The first bytes NMS sends an HTTP-FLV player: b"FLV" when admitted, nothing when refused."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read(3)


def test_the_clients_qiniu_obj_publishes_and_nms_admits_it(nms):
    signer = media_signer(nms)
    now = time.time()
    obj = signer.qiniu_obj("1577899525", now_s=now)
    push = signer.push("1577899525", now_s=now)
    assert publish(pili_publish_url(obj))
    event = nms["hook"].wait_for("postPublish", push.sign)
    assert (event["app"], event["name"]) == ("live", "1577899525")
    # What a heihei callback on NMS's notify would do with the same post.
    checked = signer.verify(f"/{event['app']}/{event['name']}", event["query"]["sign"], now_s=time.time())
    assert checked.stream == "1577899525"


def test_nms_refuses_forged_and_expired_publishes(nms):
    signer = media_signer(nms, push_ttl_s=60)
    now = time.time()
    stream = "refused_1"
    forged = nms_sign(f"/live/{stream}", int(now) + 60, "not-the-secret")
    other_stream = signer.sign("another_stream", expires_at_s=int(now) + 60)
    expired = signer.push(stream, now_s=now - 120).sign
    for sign, reason in ((forged, "forged"), (other_stream, "forged"), (expired, "expired")):
        with pytest.raises(SignRefused) as refused:
            signer.verify(f"/live/{stream}", sign, now_s=now)
        assert refused.value.reason == reason
        publish(f"{nms['rtmp']}/live/{stream}?sign={sign}")
        nms["hook"].wait_for("prePublish", sign)
    good = signer.push(stream, now_s=now)
    assert publish(good.rtmp)
    nms["hook"].wait_for("postPublish", good.sign)
    admitted = nms["hook"].signs_of("postPublish")
    assert good.sign in admitted
    assert not admitted & {forged, other_stream, expired}


def test_nms_plays_only_signed_http_flv(nms):
    signer = media_signer(nms, pull_ttl_s=60)
    now = time.time()
    good = signer.pull("1577899525", now_s=now)
    assert good.flv.startswith(f"{nms['http']}/live/1577899525.flv?sign=")
    assert play_flv(good.flv) == b"FLV"
    expired = signer.pull("1577899525", now_s=now - 120)
    assert play_flv(expired.flv) == b""
    stranger = signer.pull("another_stream", now_s=now)
    assert play_flv(f"{nms['http']}/live/1577899525.flv?sign={stranger.sign}") == b""
    assert play_flv(f"{nms['http']}/live/1577899525.flv?sign={nms_sign('/live/1577899525', int(now) + 60, 'x')}") \
        == b""
    assert play_flv(f"{nms['http']}/live/1577899525.flv") == b""
