"""
A minimal JSON protocol used only by the core's tests, so the messaging core
is exercised through real WebSockets before (and independently of) the four
realm protocols. `ChatListeners.add(node)` puts it on its own loopback listener of that node,
as realm "test".

Client frames: {"to": user, "text", "cid"} | {"room": r, "join": true} |
{"room": r, "leave": true} | {"room": r, "text"} | {"group": g, "members": [...], "text"} (the group
is created with those members if it does not exist).
Server frames: {"ready": n} after connect, {"ok": id, "dup", "online", "offline"},
{"joined": r, "total"} | {"left": r, "total"}, and delivered messages
{"from", "text", "id", "conv", "kind"}.
"""

import json

from twisted.internet import defer

from heihei.core.hub import Renderer
from heihei.net.websocket import BaseProtocol

REALM = "test"


class JsonRenderer(Renderer):
    def variant(self, message, client):
        return None

    def render(self, message, variant):
        return json.dumps({"from": message.sender, "text": message.body.get("text"), "id": message.id,
                           "conv": message.conversation, "kind": message.kind}).encode()


class TestChat(BaseProtocol):
    def onConnect(self, request):
        params = request.params
        self.user = params.get("user", [None])[0]
        self.pending = "nopending" not in params

    def onOpen(self):
        super().onOpen()
        self.run_in_order(self._opened, "open")

    async def _opened(self):
        if not await self.session.login(self.user, replay=self.pending):
            return
        sent = await self.session.replay() if self.pending else 0
        if self.connection_open:
            self.send_text(json.dumps({"ready": sent}))

    def onMessage(self, payload, is_binary):
        cmd = json.loads(payload)
        self.run_in_order(lambda: self._handle(cmd), "message")

    async def _handle(self, cmd):
        hub = self.factory.hub
        if "to" in cmd:
            r = await hub.send_to_user(REALM, self.user, cmd["to"], {"text": cmd["text"]}, client_id=cmd.get("cid"))
        elif "group" in cmd:
            if not await hub.groups.exists(REALM, cmd["group"]):
                await hub.groups.create(REALM, {}, cmd["members"], group_id=cmd["group"])
            r = await hub.send_to_group(REALM, self.user, cmd["group"], {"text": cmd["text"]})
        elif cmd.get("join"):
            total = await hub.join_room(self, cmd["room"])
            self.send_text(json.dumps({"joined": cmd["room"], "total": total}))
            return
        elif cmd.get("leave"):
            total = await hub.leave_room(self, cmd["room"])
            self.send_text(json.dumps({"left": cmd["room"], "total": total}))
            return
        else:
            r = await hub.send_to_room(REALM, self.user, cmd["room"], {"text": cmd["text"]})
        if self.connection_open:
            self.send_text(json.dumps({"ok": r.message.id, "dup": r.duplicate, "online": r.online,
                                       "offline": r.offline}))



async def user(url, name, **flags):
    """A TestChat client logged in as `name`; `early` holds the stored messages sent before `ready`."""
    from tests.wsclient import connect

    query = "&".join([f"user={name}"] + [k for k, v in flags.items() if v])
    client = await connect(f"{url}?{query}")
    client.early = []  # stored messages delivered at login, before the ready frame
    while True:
        frame = await client.next_json()
        if "ready" in frame:
            client.pending_sent = frame["ready"]
            return client
        client.early.append(frame)


class ChatListeners:
    """Test listeners speaking TestChat on given nodes; closed by `stop_all`."""

    def __init__(self):
        self.ports = []
        self.nodes = []

    def add(self, node, **settings):
        from dataclasses import replace

        from twisted.internet import reactor

        from heihei.core.sessions import RealmSessions
        from heihei.net.websocket import HardenedFactory

        ws = replace(node.settings.jim, **settings)
        factory = HardenedFactory(REALM, ws, TestChat, hub=node.hub, metrics=node.metrics, reactor=reactor,
                                  sessions=RealmSessions(REALM, node.hub, node.cleanups))
        node.hub.register_realm(REALM, JsonRenderer())
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.ports.append((port, factory))
        self.nodes.append(node)
        return f"ws://127.0.0.1:{port.getHost().port}/"

    async def disconnects_done(self):
        """Wait until the hub has handled every connection lost so far (its hooks have run)."""
        for node in self.nodes:
            await node.cleanups.drain()  # every session's clean-up (heihei.core.sessions) has run

    async def stop_all(self):
        for port, factory in self.ports:
            await port.stopListening()
            await factory.close_all()
        self.ports = []
