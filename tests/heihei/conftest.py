"""
Fixtures for seed 001 (heihei): a loopback "outside world" — an SMS gateway
sink, a push webhook sink, fake WeChat and Weibo APIs — and nodes wired to it.
"""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

SECRET = "test-server-secret"

WECHAT_USERS = {
    "wx-token-alice": {"openid": "wx-open-alice", "nickname": "微信爱丽丝", "sex": 2,
                       "headimgurl": "https://img.example/alice.png", "unionid": "u-alice"},
}
WEIBO_USERS = {
    "wb-token-bob": {"id": 5550001, "screen_name": "微博鲍勃", "gender": "m",
                     "avatar_large": "https://img.example/bob.png", "description": "hi"},
}


class Outside(Resource):
    """Everything heihei calls out to, recording what it got."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.sms: list[dict] = []
        self.pushes: list[dict] = []
        self.push_headers: list = []
        self.requests: list[tuple[str, dict]] = []
        self.sms_status = 200
        self.url = ""
        self._waiters: list[tuple[str, defer.Deferred]] = []

    def _wake(self, kind: str) -> None:
        for waiter in list(self._waiters):
            if waiter[0] == kind:
                self._waiters.remove(waiter)
                waiter[1].callback(None)

    async def wait_for(self, kind: str, count: int, timeout: float = 5.0) -> list[dict]:
        records = self.sms if kind == "sms" else self.pushes
        while len(records) < count:
            d = defer.Deferred()
            self._waiters.append((kind, d))
            d.addTimeout(timeout, reactor)
            await d
        return records

    def render_POST(self, request):
        path = request.path.decode()
        body = json.loads(request.content.read())
        if path == "/sms":
            self.sms.append(body)
            self._wake("sms")
            request.setResponseCode(self.sms_status)
            return b"{}"
        if path == "/push":
            self.pushes.append(body)
            self.push_headers.append(request.getHeader("x-heihei-signature"))
            self._wake("push")
            return b"{}"
        request.setResponseCode(404)
        return b"{}"

    def render_GET(self, request):
        path = request.path.decode()
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.requests.append((path, args))
        request.setHeader(b"content-type", b"application/json")
        if path == "/sns/userinfo":
            user = WECHAT_USERS.get(args.get("access_token"))
            if user is None or user["openid"] != args.get("openid"):
                return json.dumps({"errcode": 40003, "errmsg": "invalid openid"}).encode()
            return json.dumps(user, ensure_ascii=False).encode()
        if path == "/2/account/get_uid.json":
            user = WEIBO_USERS.get(args.get("access_token"))
            if user is None:
                request.setResponseCode(400)
                return json.dumps({"error": "invalid_access_token", "error_code": 21332}).encode()
            return json.dumps({"uid": user["id"]}).encode()
        if path == "/2/users/show.json":
            user = WEIBO_USERS.get(args.get("access_token"))
            if user is None or str(user["id"]) != args.get("uid"):
                request.setResponseCode(400)
                return json.dumps({"error": "invalid_access_token", "error_code": 21332}).encode()
            return json.dumps(user, ensure_ascii=False).encode()
        request.setResponseCode(404)
        return b"{}"


@pytest_twisted.async_yield_fixture
async def outside():
    resource = Outside()
    site = Site(resource)
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    resource.url = f"http://127.0.0.1:{port.getHost().port}"
    yield resource
    await port.stopListening()


def heihei_extra(outside, **sections) -> dict:
    """Settings pointing a node at the loopback outside world."""
    extra = {
        "heihei": {"server_secret": SECRET, "wechat_api_url": outside.url, "weibo_api_url": outside.url},
        "sms": {"provider": "http", "url": outside.url + "/sms"},
        "push": {"provider": "webhook", "webhook_url": outside.url + "/push", "webhook_secret": "hook-secret"},
    }
    for name, values in sections.items():
        extra.setdefault(name, {}).update(values)
    return extra
