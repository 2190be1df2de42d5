"""
`/demo/` on the demo node: the pages (static files from `resources/demo/`), where they connect,
and the SMS codes the demo sent.

- `GET /demo/` and its files: one small chat client per protocol (our own code, no build step).
- `GET /demo/endpoints.json`: the listeners' WebSocket and HTTP addresses as this node bound them,
  with the host the page was loaded from, and the example activity's id.
- `GET /demo/sms-code?phoneNo=...`: `{"phoneNo", "code"}`, the last code the demo SMS provider
  "sent" to that phone (404 `{"error"}` if none). This is how the heihei page signs in by SMS
  without a phone; it exists only on a demo node, whose listeners are all on loopback.

The boss site (`--boss`) serves the same pages, so the boss page calls the group API on its own
origin (the original's API has no CORS headers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web import static
from twisted.web.resource import Resource

from heihei.demo.profile import DEMO_ACTIVITY_ID
from heihei.jsonsafe import encode_json
from heihei.paths import resource as resource_path
from heihei.web.static import StaticFiles

if TYPE_CHECKING:  # pragma: no cover
    from heihei.node import Node

#: a phone number is at most this long (anything longer is not one)
MAX_PHONE_CHARS = 32


class Pages(StaticFiles):
    """A folder of shipped pages: `index.html` for the folder, no listings, no dot files, and a
    policy that keeps the pages to their own scripts (they connect to the node's listeners)."""

    def render_GET(self, request):
        request.setHeader(b"content-security-policy",
                          b"default-src 'self'; connect-src 'self' ws: wss: http://127.0.0.1:* "
                          b"http://localhost:*; img-src 'self' data: blob:; style-src 'self'; "
                          b"script-src 'self'; frame-ancestors 'none'")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        # not StaticFiles' day-long cache: these pages change with the server
        return static.File.render_GET(self, request)


def _json(request, status: int, value) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return encode_json(value)


class Endpoints(Resource):
    isLeaf = True

    def __init__(self, node: "Node") -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request):
        host = (request.getRequestHostname() or b"127.0.0.1").decode("ascii", "replace")
        if ":" in host:
            host = f"[{host}]"
        ports = {name: listener.address()[1] for name, listener in self.node.listeners.items()}
        return _json(request, 200, {
            "live": f"ws://{host}:{ports['live']}/",
            "boss": f"ws://{host}:{ports['boss']}/entry",
            "bossHttp": f"http://{host}:{ports['boss']}",
            "jim": f"ws://{host}:{ports['jim']}/",
            "channel": f"ws://{host}:{ports['http']}/ws/channel",
            "http": f"http://{host}:{ports['http']}",
            "activityId": DEMO_ACTIVITY_ID,
        })


class SmsCode(Resource):
    isLeaf = True

    def __init__(self, sms) -> None:
        super().__init__()
        self.sms = sms

    def render_GET(self, request):
        phone = (request.args.get(b"phoneNo") or [b""])[0].decode("utf-8", "replace")
        if not phone or len(phone) > MAX_PHONE_CHARS:
            return _json(request, 400, {"error": "phoneNo is required (at most 32 characters)"})
        code = self.sms.latest(phone)
        if code is None:
            return _json(request, 404, {"error": "no code was sent to this phone: ask for one first "
                                                 "(/api/user/get-sms-verification-code)"})
        return _json(request, 200, {"phoneNo": phone, "code": code})


def demo_pages(node: "Node") -> Pages:
    """The `/demo/` folder with its two dynamic files."""
    pages = Pages(str(resource_path("demo")))
    pages.putChild(b"endpoints.json", Endpoints(node))
    pages.putChild(b"sms-code", SmsCode(node.outbound.sms))
    return pages
