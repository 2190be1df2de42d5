"""
Live-realm fixtures: a fake WeChat OAuth2 API on loopback, clock-driven
nodes with the live protocol, and a page-like WebSocket viewer.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.conftest import ws_url
from tests.helpers import sleep
from tests.wsclient import connect

#: a short real wait for loopback I/O (Redis, pub/sub) to land where nothing tells when it has
IO_SETTLE_S = 0.05

APPID = "wx-test-appid"
SECRET = "wx-test-secret"
#: the fake clock starts here (2023-11-14), so activity times look real
T0 = 1_700_000_000

USERS = {
    "code-alice": {"openid": "o-alice", "nickname": "Alice", "headimgurl": "https://img.example/alice.png"},
    "code-bob": {"openid": "o-bob", "nickname": "鲍勃", "headimgurl": "https://img.example/bob.png"},
    "code-carol": {"openid": "o-carol", "nickname": "Carol", "headimgurl": "https://img.example/carol.png"},
}


class FakeWeChat(Resource):
    """WeChat's web OAuth2 endpoints, with a failure mode chosen by the `code`.

    `code-<name>` of USERS succeeds; `hang` never answers; `badjson` answers
    HTML; `http500` fails at HTTP level; `huge` answers 200 KB; `userinfo-error`
    gets a token but an errcode from userinfo; anything else gets WeChat's
    errcode 40029 (invalid code)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hanging: list = []
        self.aborted: list = []
        self.url = ""

    def render_GET(self, request):
        path = request.path.decode()
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.requests.append((path, args))
        request.setHeader(b"content-type", b"text/plain")  # as WeChat does
        if path == "/sns/oauth2/access_token":
            return self._access_token(request, args)
        if path == "/sns/userinfo":
            return self._userinfo(args)
        request.setResponseCode(404)
        return b"not found"

    def _access_token(self, request, args):
        code = args.get("code", "")
        if args.get("appid") != APPID or args.get("secret") != SECRET:
            return _json({"errcode": 40125, "errmsg": "invalid appsecret"})
        if args.get("grant_type") != "authorization_code":
            return _json({"errcode": 40002, "errmsg": "invalid grant_type"})
        if code == "hang":
            self.hanging.append(request)
            request.notifyFinish().addErrback(lambda _: self.aborted.append(request))
            return NOT_DONE_YET
        if code == "badjson":
            return b"<html>502 Bad Gateway</html>"
        if code == "http500":
            request.setResponseCode(500)
            return b"{}"
        if code == "huge":
            return b'{"x": "' + b"a" * 200_000 + b'"}'
        if code == "userinfo-error":
            return _json({"access_token": "AT-userinfo-error", "expires_in": 7200, "openid": "o-x",
                          "scope": "snsapi_userinfo"})
        if code in USERS:
            return _json({"access_token": "AT-" + code, "expires_in": 7200, "refresh_token": "RT",
                          "openid": USERS[code]["openid"], "scope": "snsapi_userinfo"})
        return _json({"errcode": 40029, "errmsg": "invalid code"})

    def _userinfo(self, args):
        code = args.get("access_token", "")[3:]
        if code not in USERS or args.get("openid") != USERS[code]["openid"] or args.get("lang") != "zh_CN":
            return _json({"errcode": 40003, "errmsg": "invalid openid"})
        return _json({**USERS[code], "sex": 0, "province": "", "city": "", "country": "CN", "privilege": []})


def _json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


@pytest_twisted.async_yield_fixture
async def wechat():
    fake = FakeWeChat()
    site = Site(fake)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    fake.url = f"http://127.0.0.1:{port.getHost().port}"
    yield fake
    await port.stopListening()


@pytest.fixture
def clock():
    c = task.Clock()
    c.advance(T0)
    return c


def live_extra(wechat: FakeWeChat, **live) -> dict:
    # these tests jump the node's clock by minutes, where a real page would have answered the
    # liveness pings: liveness is off unless a test asks for it (tests/conformance checks it)
    return {"live": {"wechat_appid": APPID, "wechat_secret": SECRET, "wechat_api": wechat.url,
                     "auto_ping_interval_s": 0, **live}}


async def start_live(nodes, wechat, clock, name: str = "a", *, extra: dict | None = None, **live):
    merged = live_extra(wechat, **live)
    for section, values in (extra or {}).items():
        merged.setdefault(section, {}).update(values)
    return await nodes.start(name, merged, clock=clock)


async def put_activity(node, activity_id: str = "1001", **fields):
    values = {"title": "发布会直播", "details": "详情", "shareTitle": "分享", "shareDigest": "摘要",
              "sharePic": "https://img.example/share.png", "liveStreamingPath": "rtmp://live.example/1001",
              "startTime": T0 - 60, "endTime": T0 + 3600, **fields}
    return await node.operators["live"].put_activity(activity_id, values)


class Viewer:
    """A page: sends `{"cmd", "data"}` frames, reads decoded answers."""

    def __init__(self, client) -> None:
        self.client = client

    @classmethod
    async def connect(cls, node, path: str = "/") -> "Viewer":
        return cls(await connect(ws_url(node, "live", path)))

    def send(self, cmd: str, **data) -> None:
        self.client.send(json.dumps({"cmd": cmd, "data": data}, ensure_ascii=False))

    def send_raw(self, text: str | bytes, binary: bool = False) -> None:
        self.client.send(text, binary=binary)

    async def next(self, timeout: float = 5.0) -> dict:
        return json.loads(await self.client.next(timeout))

    async def call(self, cmd: str, **data) -> dict:
        self.send(cmd, **data)
        return await self.next()

    @property
    def pending(self) -> int:
        return len(self.client.messages.pending)

    async def no_message(self, wait: float = 0.2) -> None:
        await self.client.no_message(wait)

    async def close(self) -> None:
        await self.client.close()

    async def open(self, activity_id: str = "1001") -> dict:
        """Open the activity; returns the Open answer (the Total push that follows is left queued)."""
        answer = await self.call("Open", activityId=activity_id)
        assert answer["code"] == 1, answer
        return answer

    async def login(self, code: str = "code-alice") -> str:
        answer = await self.call("Login", activityId="1001", code=code, type="wechat")
        assert answer["code"] == 1, answer
        return answer["data"]["token"]


async def next_advancing(viewer: Viewer, clock, step_s: float = 1.0, max_steps: int = 10) -> dict:
    """The viewer's next frame, advancing the clock one interval at a time until it comes
    (for pushes that wait on a timer and on a pub/sub hop from another node)."""
    for _ in range(max_steps):
        if viewer.pending:
            break
        await sleep(IO_SETTLE_S)
        if viewer.pending:
            break
        clock.advance(step_s)
        await sleep(IO_SETTLE_S)
    return await viewer.next()
