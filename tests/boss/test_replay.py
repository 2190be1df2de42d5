"""Login replay: stored messages first, then live ones, none twice (`hub.connect(replay=True)`)."""

import pytest_twisted

from heihei.core.model import Message


class FakeClient:
    """An IClient that confirms every frame at once."""

    realm = "boss"
    peer = "fake"
    send_queue_max_bytes = 1024 * 1024
    connection_open = True

    def when_closed(self):
        from twisted.internet import defer

        return defer.Deferred()  # never closes during these tests

    def __init__(self, user):
        self.user = user
        self.frames = []

    def prepare(self, payload):
        return payload

    def send_frame(self, frame, on_delivered=None):
        self.frames.append(frame.decode())
        if on_delivered is not None:
            on_delivered()
        return True

    def close(self, code=1000, reason=""):
        pass


@pytest_twisted.ensureDeferred
async def test_messages_arriving_during_login_wait_for_the_stored_ones(nodes):
    node = await nodes.start("a", {"boss": {"insecure_login": True}})
    hub = node.hub
    await hub.send_to_user("boss", "1", "2", {"k": "text", "c": "stored", "y": "unicast", "x": ""})
    client = FakeClient("2")
    await hub.connect(client, replay=True)
    # the login race: a message sent now is both in the inbox and delivered live
    await hub.send_to_user("boss", "1", "2", {"k": "text", "c": "during", "y": "unicast", "x": ""})
    assert client.frames == []  # held back
    await hub.deliver_pending(client)
    contents = [f.split("_")[2] for f in client.frames]
    assert contents == ["stored", "during"]  # in order, once
    await hub.send_to_user("boss", "1", "2", {"k": "text", "c": "after", "y": "unicast", "x": ""})
    assert [f.split("_")[2] for f in client.frames] == ["stored", "during", "after"]
    await hub.disconnect(client)


@pytest_twisted.ensureDeferred
async def test_inbox_keeps_arrival_order_across_conversations(nodes):
    # a realm whose groups still copy to inboxes (boss keeps a log per group: docs/groups.md)
    node = await nodes.start("a")
    hub = node.hub
    group = await hub.groups.create("inboxes", {}, ["1", "2"])
    for i in range(20):  # two conversations, many messages in the same milliseconds
        if i % 2:
            await hub.send_to_group("inboxes", "1", group, {"k": "text", "c": f"m{i}", "y": "group"})
        else:
            await hub.send_to_user("inboxes", "1", "2", {"k": "text", "c": f"m{i}", "y": "unicast"})
    pending = await hub.inbox.pending("inboxes", "2")
    assert [m.body["c"] for m in pending] == [f"m{i}" for i in range(20)]
    assert all(isinstance(m, Message) for m in pending)
