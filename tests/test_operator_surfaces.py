"""The operator surfaces stay on this machine unless configured otherwise: /metrics, the manhole."""

import pytest
import pytest_twisted
import treq
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.web.test.requesthelper import DummyRequest

from heihei.loopback import interface_of, is_loopback, on_loopback_by_default, on_loopback_only
from heihei.config import ConfigError
from heihei.web.health import HealthApp
from tests.conftest import http_url


def metrics_request(host, authorization=None):
    request = DummyRequest([b"metrics"])
    request.client = IPv4Address("TCP", host, 40000) if host else UNIXAddress(b"/tmp/s")
    if authorization:
        request.requestHeaders.setRawHeaders(b"authorization", [authorization])
    return request


@pytest_twisted.ensureDeferred
async def test_metrics_answer_loopback_and_the_admin_token_only(nodes):
    node = await nodes.start("a")
    response = await treq.get(http_url(node, "/metrics"))  # from 127.0.0.1
    assert response.code == 200
    assert b"heihei_connections" in await response.content()
    app = HealthApp(node)
    for host, header, allowed in [("203.0.113.9", None, False), ("203.0.113.9", b"Bearer wrong", False),
                                  ("203.0.113.9", b"Bearer " + node.admin_token.encode(), True),
                                  ("127.0.0.5", None, True), (None, None, True)]:
        request = metrics_request(host, header)
        body = app.metrics(request)
        assert (request.responseCode in (None, 200)) is allowed, (host, header)
        assert (b"heihei_connections" in body) is allowed


@pytest_twisted.ensureDeferred
async def test_metrics_public_opens_them(nodes):
    node = await nodes.start("a", {"http": {"metrics_public": True}})
    request = metrics_request("203.0.113.9")
    assert b"heihei_connections" in HealthApp(node).metrics(request) and request.responseCode in (None, 200)


@pytest_twisted.ensureDeferred
async def test_a_manhole_without_an_interface_listens_on_loopback(nodes, tmp_path):
    keys = tmp_path / "authorized_keys"
    keys.write_text("")
    node = await nodes.start("a", {"server": {"manhole": "tcp:0", "manhole_keys": str(keys)}})
    port = await node.manhole.when_listening()
    assert port.getHost().host == "127.0.0.1"


def test_loopback_descriptions():
    assert on_loopback_by_default("tcp:2222") == "tcp:2222:interface=127.0.0.1"
    assert on_loopback_by_default("tcp6:2222") == "tcp6:2222:interface=\\:\\:1"
    assert on_loopback_by_default("tcp:2222:interface=0.0.0.0") == "tcp:2222:interface=0.0.0.0"
    assert on_loopback_by_default("unix:/run/x.sock") == "unix:/run/x.sock"
    assert interface_of("tcp6:1:interface=\\:\\:1") == "::1"
    assert on_loopback_only("ssl:443:privateKey=k.pem", "http") == "ssl:443:privateKey=k.pem:interface=127.0.0.1"
    assert on_loopback_only("tcp:1:interface=127.0.0.2", "http") == "tcp:1:interface=127.0.0.2"
    with pytest.raises(ConfigError, match="--http tcp:1:interface=0.0.0.0 listens on 0.0.0.0, not on loopback"):
        on_loopback_only("tcp:1:interface=0.0.0.0", "http")
    with pytest.raises(ConfigError, match="cannot tell"):
        on_loopback_only("systemd:domain=INET:index=0", "http")
    assert is_loopback("localhost") and is_loopback("::1") and not is_loopback("") and not is_loopback("10.0.0.1")

