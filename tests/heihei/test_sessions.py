"""Sessions end everywhere: a sign-out closes the channel connections opened with that token on
every node (and only those); an expired or vanished token is noticed by the periodic check."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import task

from heihei.heihei.accounts import REALM, token_hash
from heihei.store.keys import key
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, item, ok, open_channel, send_im, sign_in
from tests.helpers import sleep, wait_until


@pytest_twisted.ensureDeferred
async def test_sign_out_closes_that_sessions_channels_on_every_node(nodes, outside):
    a = await nodes.start("a", heihei_extra(outside))
    b = await nodes.start("b", heihei_extra(outside))
    phone_token, me = await sign_in(a, outside, "13100000001")
    tablet_token = await a.operators["channel"].tokens.issue(me)  # a second sign-in of the same user
    friend_token, _ = await sign_in(a, outside, "13100000002")
    phone = await open_channel(b, phone_token)  # on the other node
    tablet = await open_channel(a, tablet_token)
    await ok(a, "/api/user/sign-out", {"token": phone_token})
    await phone.wait_closed()
    assert phone.close_code == 4401
    assert (await api(a, "/api/user/info", {"token": phone_token, "uid": me}))["errorcode"] == 720
    assert (await api(a, "/api/user/info", {"token": tablet_token, "uid": me}))["errorcode"] == 0
    # the other session of the same user is untouched: it still gets what is sent to it
    friend_channel = await open_channel(a, friend_token)
    send_im(friend_channel, me, "text", {"text": "still there?"})
    got = await item(tablet)
    assert got["msg"]["content"] == {"text": "still there?"}
    assert tablet.close_code is None
    for client in (tablet, friend_channel):
        await client.close()


@pytest_twisted.ensureDeferred
async def test_a_token_that_is_gone_closes_its_channel_at_the_next_check(nodes, outside, redis):
    clock = task.Clock()
    node = await nodes.start("a", heihei_extra(outside), clock=clock)
    token, _ = await sign_in(node, outside, "13100000001")
    channel = await open_channel(node, token)
    redis["client"].delete(key("tok", REALM, token_hash(token)))  # expired, or removed by an operator
    clock.advance(4)
    await sleep(0.1)
    assert channel.close_code is None  # not checked yet: the first check is half an interval in
    clock.advance(1)
    await wait_until(lambda: channel.close_code == 4401, what="the channel to be closed by the credential check")
    # and every interval after that
    other_token, _ = await sign_in(node, outside, "13100000002")
    other = await open_channel(node, other_token)
    redis["client"].delete(key("tok", REALM, token_hash(other_token)))
    clock.advance(9)
    await sleep(0.1)
    assert other.close_code is None
    clock.advance(1)
    await wait_until(lambda: other.close_code == 4401, what="the next check to close the second channel")
