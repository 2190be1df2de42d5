"""The boss profile source: lookups in the original's style and avatar downloads, bounded in size and time."""

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.web import resource, server

from heihei.outbound.http import HttpClient
from heihei.outbound.profiles import FetchError, HttpProfiles, NoProfiles, parse_lookup


def test_lookup_answers():
    assert parse_lookup(b'{"result": {"1": "a", "2": 3}}') == {"1": "a"}
    assert parse_lookup(b'{"1": "a"}') == {"1": "a"}
    for bad in (b"[]", b"nope", b'{"result": []}'):
        with pytest.raises(FetchError):
            parse_lookup(bad)


class _Web(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.asked = []

    def render_GET(self, request):
        if request.path == b"/big":
            return b"x" * 5000
        if request.path == b"/missing":
            request.setResponseCode(404)
            return b"no" * 5000
        if request.path == b"/nick":
            self.asked.append(request.args[b"ids"][0].decode())
            return b'{"result": {"1": "one", "2": "two"}}'
        return b"ok"


@pytest_twisted.async_yield_fixture
async def servers():
    web_resource = _Web()
    site = server.Site(web_resource)
    site.timeOut = None
    web = reactor.listenTCP(0, site, interface="127.0.0.1")
    silent_factory = protocol.Factory.forProtocol(protocol.Protocol)  # accepts, never answers
    silent = reactor.listenTCP(0, silent_factory, interface="127.0.0.1")
    yield {"web": f"http://127.0.0.1:{web.getHost().port}", "silent": f"http://127.0.0.1:{silent.getHost().port}",
           "resource": web_resource}
    await web.stopListening()
    await silent.stopListening()


@pytest_twisted.async_yield_fixture
async def http():
    client = HttpClient(reactor)
    yield client
    await client.close()


@pytest_twisted.ensureDeferred
async def test_fetch_is_bounded_in_size_and_time(servers, http):
    profiles = HttpProfiles(http, timeout_s=2)
    assert await profiles.fetch(servers["web"] + "/ok", max_bytes=100) == b"ok"
    with pytest.raises(FetchError, match="larger than 1000"):
        await profiles.fetch(servers["web"] + "/big", max_bytes=1000)
    # an error status is the reason, however large its body
    with pytest.raises(FetchError, match="HTTP 404"):
        await profiles.fetch(servers["web"] + "/missing", max_bytes=1000)
    slow = HttpProfiles(http, timeout_s=0.3)
    with pytest.raises(FetchError, match="no answer within 0.3 s"):
        await slow.fetch(servers["silent"] + "/x", max_bytes=1000)


@pytest_twisted.ensureDeferred
async def test_lookups_and_downloads(servers, http):
    profiles = HttpProfiles(http, nickname_url=servers["web"] + "/nick?ids=", timeout_s=2, max_avatar_bytes=1000)
    assert profiles.serves("nickname") and not profiles.serves("snap")
    assert await profiles.lookup("nickname", ["1", "2", "a b"]) == {"1": "one", "2": "two"}
    assert servers["resource"].asked == ["1,2,a b"]
    assert await profiles.lookup("snap", ["1"]) == {}
    assert await profiles.download(servers["web"] + "/ok") == b"ok"
    with pytest.raises(FetchError, match="larger than 1000"):
        await profiles.download(servers["web"] + "/big")


@pytest_twisted.ensureDeferred
async def test_no_profiles_asks_nobody():
    profiles = NoProfiles()
    assert not profiles.serves("nickname") and await profiles.lookup("nickname", ["1"]) == {}
    with pytest.raises(FetchError):
        await profiles.download("http://127.0.0.1:9/x.png")
