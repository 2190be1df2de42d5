"""
The live rooms against a real media server: nginx with Debian's RTMP module (libnginx-mod-rtmp), started
with a generated config whose on_publish / on_publish_done / on_play / on_record_done call this node.

A real RTMP publish of a few seconds of generated video (FFmpeg through PyAV, in a child process) to the
address the client's streaming SDK builds from our qiniuObj puts the live on; its end stops the live once the
grace period is over; the recording nginx made is the replay's lookbackAddr. Forged publishes — unsigned, a
viewer's play address, another live's sign — are refused by nginx on heihei's answer and never recorded.

nginx and its RTMP module come from the project's own set-up: tox runs tests/peers/debian-packages.sh, which
installs the Debian packages when they are missing. A missing install is a failure that says so, never a skip.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor, task, threads

from heihei.outbound.streams import pili_publish_url
from heihei.store.embedded import free_loopback_port
from tests.conftest import http_url
from tests.heihei.helpers import api, ok, open_channel
from tests.heihei.livehelpers import CALLBACK_KEY, live_extra, next_msg, user

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtmp_tool.py")
START_TIMEOUT_S = 10.0

CONFIG = """
load_module {module};
{user}
daemon off;
master_process on;
worker_processes 1;
error_log {home}/error.log info;
pid {home}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp};
        chunk_size 4096;
        application live {{
            live on;
            # heihei decides: every callback carries the shared key, a non-2xx answer refuses
            on_publish {hooks};
            on_publish_done {hooks};
            on_play {hooks};
            on_record_done {hooks};
            notify_method post;
            record all;
            record_path {home}/recordings;
            record_unique off;
            record_append on;
        }}
    }}
}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{http};
        location /recordings/ {{ alias {home}/recordings/; }}
    }}
}}
"""


def worker_user() -> str:
    """Started by root, nginx's workers would switch to nobody, who cannot reach pytest's private temporary
    directories: keep them as this user. Anyone else's nginx keeps its own user (and warns about the line)."""
    if os.geteuid() != 0:
        return ""
    import grp
    import pwd

    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    assert found and os.path.exists(RTMP_MODULE), (
        "nginx with Debian's RTMP module is not installed: tox runs tests/peers/debian-packages.sh first "
        "(or run it as root by hand: apt-get install nginx libnginx-mod-rtmp)")
    return found


class Nginx:
    def __init__(self, home, rtmp_port: int, http_port: int, hooks_url: str) -> None:
        self.home = str(home)
        self.rtmp_port, self.http_port = rtmp_port, http_port
        os.makedirs(os.path.join(self.home, "recordings"))
        with open(os.path.join(self.home, "nginx.conf"), "w") as f:
            f.write(CONFIG.format(module=RTMP_MODULE, home=self.home, rtmp=self.rtmp_port, http=self.http_port,
                                  hooks=hooks_url, user=worker_user()))
        self.proc = subprocess.Popen([nginx_binary(), "-p", self.home + "/", "-e", self.home + "/error.log",
                                      "-c", os.path.join(self.home, "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    @property
    def rtmp(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        try:
            with open(os.path.join(self.home, "error.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    async def started(self) -> None:
        import socket

        deadline = time.monotonic() + START_TIMEOUT_S
        for port in (self.rtmp_port, self.http_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError("nginx did not start: " + self.log())
                    await task.deferLater(reactor, 0.05, lambda: None)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


async def rtmp(*args: str) -> int:
    """Run the RTMP tool in a child process (in a thread, so this reactor keeps serving the callbacks)."""
    done = await threads.deferToThread(subprocess.run, [sys.executable, TOOL, *args], capture_output=True,
                                       text=True, timeout=60)
    return done.returncode


async def until(check, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.1, lambda: None)


@pytest.fixture
def media_home(tmp_path):
    nginx_binary()  # fail early and clearly when it is not installed
    home = tmp_path / "nginx"
    home.mkdir()
    return home


@pytest_twisted.ensureDeferred
async def test_a_real_rtmp_publish_through_nginx_rtmp(nodes, outside, media_home):
    # the node first (nginx calls it back), then nginx on ports known before the node's config is final
    rtmp_port, http_port = free_loopback_port(), free_loopback_port()
    node = await nodes.start("a", live_extra(outside, callbacks=True, media={
        "push_rtmp": f"rtmp://127.0.0.1:{rtmp_port}", "pull_rtmp": f"rtmp://127.0.0.1:{rtmp_port}",
        "pull_flv": f"http://127.0.0.1:{http_port}",
        "recording_url": f"http://127.0.0.1:{http_port}/recordings/{{stream}}.flv"},
        lives={"stream_grace_s": 2.0, "sweep_interval_s": 0.2}))
    nginx = Nginx(media_home, rtmp_port, http_port, http_url(node, f"/media/nginx?hook_key={CALLBACK_KEY}"))
    try:
        await nginx.started()
        await _scenario(node, outside, nginx)
    finally:
        nginx.stop()


async def _scenario(node, outside, nginx: Nginx) -> None:
    social = node.operators["channel"]
    a_token, anchor = await user(node, outside, "13800000001", "主播")
    f_token, fan = await user(node, outside, "13800000002", "粉丝")
    await social.follows.follow(fan, anchor)
    fan_channel = await open_channel(node, f_token)
    created = await ok(node, "/api/live/create-live", {"token": a_token, "title": "真的推流"})
    live = created["live"]
    live_id = live["liveId"]

    async def status():
        return (await api(node, "/api/live/get-live", {"token": a_token, "liveId": live_id}))["live"]["status"]

    # forged publishes: nginx asks heihei, heihei says no, nginx drops the publisher
    play_address = live["streamAddr"]
    play_sign = play_address.split("sign=")[1]
    other = (await ok(node, "/api/live/create-live", {"token": f_token, "title": "别人的"}))["live"]
    other_query = other["pushAddr"].split("?", 1)[1]
    for url in (f"{nginx.rtmp}/live/{live_id}",  # unsigned
                f"{nginx.rtmp}/live/{live_id}?sign={play_sign}",  # a viewer's address: no publish proof
                f"{nginx.rtmp}/live/{live_id}?{other_query}"):  # signed, for another live
        assert await rtmp("publish", url, "1") == 3, url
    assert await status() == 0
    assert f"{live_id}.flv" not in os.listdir(os.path.join(nginx.home, "recordings"))

    # the anchor publishes to the address the client's Pili SDK builds from qiniuObj
    url = pili_publish_url(live["qiniuObj"])
    assert url.startswith(f"{nginx.rtmp}/live/{live_id}?key=")
    await ok(node, "/api/live/start-live", {"token": a_token, "liveId": live_id})
    publishing = threads.deferToThread(subprocess.run, [sys.executable, TOOL, "publish", url, "4"],
                                       capture_output=True, text=True, timeout=60)
    await until(lambda: _is(status, 1), what="the live to go on when its stream arrives")
    notice = await next_msg(fan_channel, want=lambda m: m.get("action") == "start-live-notify")
    assert notice["fromUserId"] == int(anchor) and notice["link"] == f"wmlives_heihei://live?id={live_id}"
    await ok(node, "/api/live/join-live", {"token": f_token, "liveId": live_id})
    await ok(node, "/api/msg/send-msg", {"token": f_token, "text": "画面来了", "roomId": live_id})
    # a viewer plays it over RTMP with the signed play address; an unsigned play is refused
    play_rtmp = f"{nginx.rtmp}/live/{live_id}?sign={play_sign}"
    assert await rtmp("play", play_rtmp) == 0
    assert await rtmp("play", f"{nginx.rtmp}/live/{live_id}") == 3
    done = await publishing
    assert done.returncode == 0, done.stdout + done.stderr + nginx.log()

    # the stream is gone: paused at once, stopped when the grace is over
    await next_msg(fan_channel, want=lambda m: m.get("action") == "pause-live")
    end = await next_msg(fan_channel, want=lambda m: m.get("action") == "stop-live", timeout=10)
    assert end["reason"] == "stream"
    replay = (await ok(node, "/api/live/get-live", {"token": f_token, "liveId": live_id}))["live"]
    assert replay["status"] == 2
    assert replay["lookbackAddr"] == f"{nginx.http}/recordings/{live_id}.flv"
    recording = await treq.get(replay["lookbackAddr"])
    body = await recording.content()
    assert recording.code == 200 and body[:3] == b"FLV" and len(body) > 10_000
    # the chat of the replay, timed on the recording: createTime + where in the video it was said
    path = "/" + replay["messageAddr"].split("/", 3)[3]
    archive = zipfile.ZipFile(io.BytesIO(await (await treq.get(http_url(node, path))).content()))
    items = [json.loads(text) for name in archive.namelist() for text in json.loads(archive.read(name))]
    said = [i for i in items if i["msg"].get("text") == "画面来了"]
    create_s = int(datetime.datetime.strptime(replay["createTime"], "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=datetime.timezone(datetime.timedelta(hours=8))).timestamp())
    assert len(said) == 1 and create_s <= said[0]["timeStamp"] <= create_s + 4
    await fan_channel.close()


async def _is(get, value) -> bool:
    return await get() == value
