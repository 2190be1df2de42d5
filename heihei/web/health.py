"""`GET /healthz` and `GET /metrics` on the `--http` site."""

from __future__ import annotations

from typing import TYPE_CHECKING

from klein import Klein

from heihei.jsonsafe import encode_json
from heihei.metrics import CONTENT_TYPE_LATEST

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
        for realm, count in self.node.connection_counts().items():
            self.node.metrics.connections.labels(realm).set(count)
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return self.node.metrics.render()
