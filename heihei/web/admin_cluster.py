"""
`GET /admin/cluster/status` (bearer token): what the operators' console shows first.

    {"node": id, "uptime_s": s, "redis": {"reachable", "where"}, "connections": {realm: n},
     "nodes": [ids of every node whose presence is alive, this one included]}

The same facts as `/healthz`, for this node, plus the cluster's members from the presence map (each
node refreshes its entry every `[presence] refresh_interval_s`; a node gone for `node_ttl_s` drops
out). Connections per realm are this node's; each node answers for itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heihei.web.admin import ADMIN, AdminRoutes
from heihei.web.kit.routes import endpoint, new_app

if TYPE_CHECKING:  # pragma: no cover
    from heihei.node import Node


class ClusterAdmin(AdminRoutes):
    app = new_app(ADMIN, check_auth_first=True)
    prefix = "/admin/cluster"

    def __init__(self, token: str, node: "Node") -> None:
        super().__init__(token)
        self.node = node

    @endpoint(app, "/status", "This node, its Redis, its connections per realm and the cluster's live nodes",
              methods=("GET",))
    async def cluster(self, call, a):
        node = self.node
        reachable = await node.store.ping()
        nodes = sorted(await node.hub.presence.alive_nodes()) if reachable else []
        return {"node": node.node_id, "uptime_s": round(node.reactor.seconds() - node.started_at, 3),
                "redis": {"reachable": reachable, "where": node.store.address.describe()},
                "connections": node.connection_counts(), "nodes": nodes}
