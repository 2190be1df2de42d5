"""
Prometheus metrics for one node.

Each node (service tree) owns its own `CollectorRegistry` rather than the
library's global one, so two nodes in one test process do not collide and
`/metrics` shows exactly one node.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class ByLabel(dict):
    """`metric.labels(value)` looked up once per value, then kept.

    Why: the library's `labels()` costs a few microseconds (argument checks, a
    lock, a dict of tuples), paid on every message on the delivery path. Only
    for labels with a handful of values (realms, directions)."""

    def __init__(self, metric) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, value: str):
        child = self[value] = self.metric.labels(value)
        return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("heihei_connections", "Open WebSocket connections", ["realm"], registry=r)
        self.messages_in = Counter("heihei_messages_received", "Client messages accepted", ["realm"], registry=r)
        self.deliveries = Counter("heihei_deliveries", "Frames written to client connections", ["realm"],
                                  registry=r)
        self.deliveries_by_realm = ByLabel(self.deliveries)
        self.slow_clients = Counter("heihei_slow_clients_disconnected",
                                    "Connections cut off because their send queue was full", ["realm"], registry=r)
        self.rejected = Counter("heihei_requests_rejected", "Inputs answered with an error", ["realm", "reason"],
                                registry=r)
        self.redis_up = Gauge("heihei_redis_up", "1 if Redis answered the last health check", registry=r)
        self.bus_hops = Counter("heihei_bus_messages", "Messages sent to other nodes over Redis pub/sub",
                                ["direction"], registry=r)
        self.bus_hops_by_direction = ByLabel(self.bus_hops)
        self.delivery_latency = Histogram("heihei_store_and_forward_seconds",
                                          "Time from accepting a message to handing it to local connections",
                                          registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
