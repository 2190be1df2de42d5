"""The store's command path: idle connections used directly, one send per connection per iteration."""

import socket

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import defer, reactor

from heihei.config import parse_redis_url
from heihei.net import sendpath
from heihei.store.client import Store, StoreUnavailable
from tests.helpers import sleep, wait_until


async def started(url: str, reply_timeout_s: float = 2.0) -> Store:
    store = Store(parse_redis_url(url), reply_timeout_s=reply_timeout_s, connect_timeout_s=2.0, reactor=reactor)
    store.startService()
    await wait_until(store._idle_connection, what="the store to connect")
    return store


@pytest_twisted.ensureDeferred
async def test_commands_of_one_iteration_leave_in_one_send_and_keep_their_order(redis, monkeypatch):
    store = await started(redis["url"])
    try:
        sends = []
        real = sendpath.write_now
        monkeypatch.setattr(sendpath, "write_now",
                            lambda t, data, *sock: (sends.append(data), real(t, data, *sock))[1])
        sock = store._idle_connection().transport.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # pipelined writes never wait
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
        await sleep(0)
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
        # a Redis error reply, not an unavailable store
        with pytest.raises(txredisapi.ResponseError, match="not an integer"):
            await store.incr("text")
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


@pytest_twisted.ensureDeferred
async def test_replies_keep_their_types_and_their_order_past_a_cancelled_command(redis):
    store = await started(redis["url"])
    try:
        redis["client"].set("bin", b"\xff\xfe")
        redis["client"].hset("h", mapping={"a": "1", "b": "2"})
        assert await store.get("bin") == b"\xff\xfe"  # not UTF-8: stays bytes, as txredisapi gives it
        assert await store.hgetall("h") == {"a": "1", "b": "2"}  # txredisapi's post-processing still runs
        assert await store.zadd("z", 1.5, "m") == 1  # a float argument is packed as Redis reads it
        assert await store.execute_command("ZSCORE", "z", "m") == "1.5"
        given_up = store.get("bin")
        given_up.cancel()
        try:
            await given_up
        except StoreUnavailable:  # what a cancelled (timed-out) call means to callers
            pass
        else:
            raise AssertionError("a cancelled command answered")
        assert await store.hget("h", "b") == "2"  # the cancelled command's reply went to nobody else
    finally:
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_a_reply_that_never_comes_fails_every_waiting_command_then_the_store_recovers(redis):
    store = await started(redis["url"], reply_timeout_s=0.3)
    try:
        redis["client"].execute_command("CLIENT", "PAUSE", "800", "ALL")
        started_at = reactor.seconds()
        waiting = [store.set(f"k{i}", i) for i in range(3)]
        failed = 0
        for d in waiting:
            try:
                await d
            except StoreUnavailable as e:
                failed += 1
                assert "0.3 seconds" in str(e)
        assert failed == 3
        assert 0.25 <= reactor.seconds() - started_at < 0.8  # the deadline, not Redis' pause, decided
        async def set_after():
            try:
                return await store.set("after", "1") == "OK"
            except StoreUnavailable:  # what a command gets until the pool has reconnected
                return False

        await wait_until(set_after, interval_s=0.05, what="the pool to reconnect by itself")
        assert await store.get("after") == "1"
    finally:
        await store.stopService()


def test_a_failed_unsubscribe_is_logged_as_one_and_nothing_is_logged_while_stopping():
    from types import SimpleNamespace

    from twisted.logger import formatEvent, globalLogPublisher
    from twisted.python.failure import Failure

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        store = Store(parse_redis_url("redis://127.0.0.1:9/0"))
        store._sub_factory = SimpleNamespace(disconnectCalled=False)
        store._subscribe_failed(Failure(ConnectionError("gone")), "bus:x", "unsubscribing from")
        store._subscribe_failed(Failure(ConnectionError("gone")), "bus:y")
        store._sub_factory = SimpleNamespace(disconnectCalled=True)  # stopping: the connection went first
        store._subscribe_failed(Failure(ConnectionError("gone")), "bus:z", "unsubscribing from")
    finally:
        globalLogPublisher.removeObserver(events.append)
    said = [formatEvent(e) for e in events if e.get("log_namespace", "").startswith("heihei.store")]
    assert said == ["unsubscribing from bus:x failed: gone", "subscribing to bus:y failed: gone"], said
