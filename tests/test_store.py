"""The store's command path: idle connections used directly, one send per connection per iteration."""

import pytest_twisted
from twisted.internet import defer, reactor, task

from heihei.config import parse_redis_url
from heihei.protocols import sendpath
from heihei.store.client import Store, StoreUnavailable


async def started(url: str) -> Store:
    store = Store(parse_redis_url(url), reply_timeout_s=2.0, connect_timeout_s=2.0, reactor=reactor)
    store.startService()
    for _ in range(200):
        if store._idle_connection() is not None:
            return store
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("the store did not connect")


@pytest_twisted.ensureDeferred
async def test_commands_of_one_iteration_leave_in_one_send_and_keep_their_order(redis, monkeypatch):
    store = await started(redis["url"])
    try:
        sends = []
        real = sendpath.write_now
        monkeypatch.setattr(sendpath, "write_now",
                            lambda t, data, *sock: (sends.append(data), real(t, data, *sock))[1])
        replies = await defer.gatherResults([store.incr("counter") for _ in range(50)])
        assert replies == list(range(1, 51))  # Redis ran them in the order they were issued
        commands = b"".join(sends)
        assert commands.count(b"INCR") == 50
        assert len(sends) == 1  # one connection, one send for the iteration, not one per command
    finally:
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_a_command_without_an_idle_connection_waits_for_one(redis):
    store = Store(parse_redis_url(redis["url"]), reply_timeout_s=2.0, connect_timeout_s=2.0, reactor=reactor)
    store.startService()
    try:
        await task.deferLater(reactor, 0, lambda: None)
        assert store._idle_connection() is None  # still connecting: the handler's queue waits
        assert await store.set("k", "v") == "OK"
        assert await store.get("k") == "v"
    finally:
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_errors_and_lost_connections_keep_their_meaning_on_the_direct_path(redis):
    store = await started(redis["url"])
    try:
        await store.set("text", "not a number")
        try:
            await store.incr("text")
        except StoreUnavailable:
            raise AssertionError("a Redis error is not an unavailable store")
        except Exception as e:
            assert "not an integer" in str(e)
        else:
            raise AssertionError("INCR of text succeeded")
        conn = store._idle_connection()
        d = store.get("text")
        conn.transport.abortConnection()  # the reply never comes
        try:
            await d
        except StoreUnavailable:
            pass
        else:
            raise AssertionError("a lost connection must fail the command")
    finally:
        await store.stopService()
