"""`GET /healthz` and `GET /metrics` on the `--http` site.

`/metrics` tells how busy the node is and who is connected per realm: it answers a client on
this machine (loopback), a scraper that sends the admin token (`Authorization: Bearer`, which
Prometheus' `authorization` setting does), or anyone when `[http] metrics_public` is on. Behind a
reverse proxy on the same host every request comes from loopback: do not proxy `/metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klein import Klein

from heihei.jsonsafe import encode_json
from heihei.loopback import is_loopback
from heihei.metrics import CONTENT_TYPE_LATEST
from heihei.web.kit import auth

if TYPE_CHECKING:  # pragma: no cover
    from heihei.node import Node


class HealthApp:
    app = Klein()

    def __init__(self, node: "Node") -> None:
        self.node = node

    def resource(self):
        return self.app.resource()

    @app.route("/healthz", methods=["GET"])
    async def healthz(self, request):
        node = self.node
        redis_ok = await node.store.ping()
        node.metrics.redis_up.set(1 if redis_ok else 0)
        request.setHeader(b"content-type", b"application/json")
        if not redis_ok:
            request.setResponseCode(503)
        return encode_json({
            "node": node.node_id,
            "uptime_s": round(node.reactor.seconds() - node.started_at, 3),
            "redis": {"reachable": redis_ok, "where": node.store.address.describe()},
            "connections": node.connection_counts(),
        })

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request):
        if not self._may_read_metrics(request):
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return (b"/metrics answers loopback clients and the admin token (Authorization: Bearer); "
                    b"[http] metrics_public opens it to all\n")
        for realm, count in self.node.connection_counts().items():
            self.node.metrics.connections.labels(realm).set(count)
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return self.node.metrics.render()

    def _may_read_metrics(self, request) -> bool:
        if self.node.settings.http.metrics_public:
            return True
        peer = request.getClientAddress()
        if getattr(peer, "host", None) is None or is_loopback(peer.host):  # a Unix socket is local too
            return True
        try:
            auth.Bearer(self.node.admin_token).check(request.getHeader(b"authorization"))
        except auth.Unauthorized:
            return False
        return True
