"""Handshake authentication: bound tokens, J-IM's username/password through the hook or the
explicit insecure mode; every refusal is an HTTP 401 in the handshake."""

import hashlib
import hmac
import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.web import resource, server

from tests.conftest import ws_url
from tests.helpers import sleep
from tests.jim.helpers import chat, extra, login, register
from tests.wsclient import WSError, connect

SECRET = "hook-secret"


class FakeBackEnd(resource.Resource):
    """The app back end's login check: alice/right is user u-42."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.calls = []
        self.mode = "normal"
        self.stalled = []

    def render_POST(self, request):
        body = request.content.read()
        stamp = request.getHeader(b"x-heihei-timestamp") or b""
        signature = request.getHeader(b"x-heihei-signature") or b""
        expected = hmac.new(SECRET.encode(), stamp + b"." + body, hashlib.sha256).hexdigest().encode()
        self.calls.append((json.loads(body), hmac.compare_digest(signature, expected)))
        if self.mode == "stall":
            self.stalled.append(request)
            return server.NOT_DONE_YET
        if self.mode == "garbage":
            return b"<html>oops</html>"
        credentials = json.loads(body)
        if credentials == {"username": "alice", "password": "right"} and hmac.compare_digest(signature, expected):
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"userId": "u-42", "nick": "Alice"}).encode()
        request.setResponseCode(403)
        return b'{"error": "bad credentials"}'


@pytest_twisted.async_yield_fixture
async def back_end():
    fake = FakeBackEnd()
    site = server.Site(fake)
    site.timeOut = None
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    fake.url = f"http://127.0.0.1:{port.getHost().port}/check"
    yield fake
    for request in fake.stalled:
        request.transport.abortConnection()
    await port.stopListening()


async def refused(node, query: str) -> str:
    with pytest.raises(WSError) as info:
        await connect(ws_url(node, "jim", f"/?{query}"))
    return str(info.value)


@pytest_twisted.ensureDeferred
async def test_tokens(nodes, redis):
    node = await nodes.start("a", extra(token_ttl_s=3600))
    await register(node, "u1", token="b92cecbf47a4f04f3")
    assert 3500 < redis["client"].ttl("hh:jim:token:b92cecbf47a4f04f3") <= 3600
    u1 = await login(node, "b92cecbf47a4f04f3")
    assert u1.login["code"] == 10007 and u1.login["data"]["user"]["id"] == "u1"
    for query in ("", "token=", "token=nope", "username=u1&password=x", "user=u1", "token=" + "x" * 300):
        assert "401" in await refused(node, query), query
    # a token can be rebound (the app back end is trusted), and a user may hold several
    await register(node, "u2", token="b92cecbf47a4f04f3")
    await register(node, "u1", token="second-device")
    u2 = await login(node, "b92cecbf47a4f04f3")
    assert u2.login["data"]["user"]["id"] == "u2"
    again = await login(node, "second-device")
    assert again.login["data"]["user"]["id"] == "u1"
    for c in (u1, u2, again):
        await c.close()


@pytest_twisted.ensureDeferred
async def test_username_and_password_are_refused_without_a_hook_or_insecure_mode(nodes):
    node = await nodes.start("a", extra())
    assert "401" in await refused(node, "username=alice&password=123")


@pytest_twisted.ensureDeferred
async def test_insecure_login_accepts_the_username(nodes):
    node = await nodes.start("a", extra(insecure_login=True))
    alice = await login(node, query="username=alice&password=whatever")
    assert alice.login["data"]["user"]["id"] == "alice"
    assert "401" in await refused(node, "password=x")
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_the_authentication_hook_decides(nodes, back_end):
    node = await nodes.start("a", extra(auth_url=back_end.url, auth_secret=SECRET, auth_timeout_s=0.5,
                                        insecure_login=True))  # the hook wins over insecure_login
    alice = await login(node, query="username=alice&password=right")
    user = alice.login["data"]["user"]
    assert user.pop("avatar").startswith("data:")  # [jim] default_avatar: the hook gave none
    assert user == {"id": "u-42", "nick": "Alice", "status": "online", "terminal": "ws"}
    assert back_end.calls[-1] == ({"username": "alice", "password": "right"}, True)
    assert "401" in await refused(node, "username=alice&password=wrong")
    back_end.mode = "garbage"
    assert "401" in await refused(node, "username=alice&password=right")
    back_end.mode = "stall"
    started = reactor.seconds()
    assert "401" in await refused(node, "username=alice&password=right")
    assert reactor.seconds() - started < 3
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_a_client_gone_during_authentication_is_never_opened(nodes, back_end):
    node = await nodes.start("a", extra(auth_url=back_end.url, auth_secret=SECRET, auth_timeout_s=1.0))
    back_end.mode = "stall"
    attempt = defer.ensureDeferred(connect(ws_url(node, "jim", "/?username=alice&password=right"), timeout=0.3))
    with pytest.raises(Exception):
        await attempt
    await sleep(1.3)  # the hook times out after the client left
    assert node.factories["jim"].clients == set()
    assert node.hub.presence.users["jim"] == {}


@pytest_twisted.ensureDeferred
async def test_a_token_given_to_someone_else_closes_its_connections_on_every_node(nodes):
    a = await nodes.start("a", extra())
    b = await nodes.start("b", extra())
    await register(a, "u1", token="shared-desk")
    await register(a, "u1", token="u1-phone")
    desk = await login(b, "shared-desk")
    phone = await login(b, "u1-phone")
    await register(a, "u2", token="shared-desk")  # the app back end gives the token to u2
    await desk.wait_closed()
    assert desk.close_code == 4401
    # u1's other connection stays, and the token now opens u2's
    u2 = await login(a, "shared-desk")
    assert u2.login["data"]["user"]["id"] == "u2"
    u2.send(json.dumps(chat("u2", "u1", "hello")))
    got = await phone.next_json()
    assert (got["command"], got["data"]["content"]) == (11, "hello")
    assert phone.close_code is None
    # registering the same user with its own token again closes nothing
    await register(a, "u2", token="shared-desk")
    u2.send(json.dumps(chat("u2", "u1", "again")))
    assert (await phone.next_json())["data"]["content"] == "again"
    assert u2.close_code is None
    for client in (phone, u2):
        await client.close()
