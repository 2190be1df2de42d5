"""
The command connection's fast path: txredisapi's protocol with a leaner way
to write a command and to hand its reply back.

Why: for every command txredisapi encodes each argument in Python (about
14 µs for the message script's 17 arguments), passes the reply through a
`DeferredQueue` and three callbacks, and schedules and cancels a reply timer
(two heap operations on the reactor). Profiled under the 1:1 benchmark that
was about a fifth of a node's CPU. Here hiredis (C) packs the command, the
reply fires the command's Deferred directly, and one timer per connection
watches the oldest unanswered command.

Replies still arrive in txredisapi's `replyQueue.waiting` list, in the order
the commands were written, so everything else stays txredisapi's own:
connecting, AUTH and SELECT, scripts and their NOSCRIPT fallback, and losing
the connection (every waiting command fails with `ConnectionError`). A
command issued inside MULTI or a pipeline, or one that asks for no reply
timeout (blocking commands), takes txredisapi's path unchanged.
"""

from __future__ import annotations

import hiredis
import txredisapi
from twisted.internet import defer

pack_command = hiredis.pack_command


class _Waiting:
    """A written command waiting for its reply (what `replyQueue.put` calls back)."""

    __slots__ = ("deferred", "deadline")

    def __init__(self, deferred: defer.Deferred, deadline: float) -> None:
        self.deferred = deferred
        self.deadline = deadline

    def callback(self, reply) -> None:
        d = self.deferred
        if d.called:  # the caller gave up (cancelled): the reply still had to be consumed
            return
        if isinstance(reply, Exception):  # a Redis error reply, or the connection's end
            d.errback(reply)
        else:
            d.callback(reply)


class LeanCommands:
    """Mixin for a `txredisapi.RedisProtocol` subclass (the command connections only)."""

    _deadline_timer = None

    def execute_command(self, *args, **kwargs):
        if self.pipelining or self.inTransaction or self.inMulti or not kwargs.get("apply_timeout", True):
            return super().execute_command(*args, **kwargs)
        if self.connected == 0:
            raise txredisapi.ConnectionError("Not connected")
        self.transport.write(pack_command(args))
        d = defer.Deferred()
        timeout = self.replyTimeout
        clock = self.factory.reactor
        self.replyQueue.waiting.append(_Waiting(d, clock.seconds() + timeout if timeout else 0.0))
        if timeout and self._deadline_timer is None:
            self._deadline_timer = clock.callLater(timeout, self._check_deadline)
        post_proc = kwargs.get("post_proc")
        if post_proc is not None:
            d.addCallback(post_proc)
        return d

    def dataReceived(self, data, unpause=False):
        if self.inMulti or self.inTransaction or self.transactions:
            return super().dataReceived(data, unpause)
        reader = self._reader
        if data:
            reader.feed(data)
        put = self.replyQueue.put
        reply = reader.gets()
        while reply is not False:
            if type(reply) is bytes:
                try:
                    reply = reply.decode("utf-8")
                except UnicodeDecodeError:
                    pass  # binary values stay bytes, as txredisapi does
            elif type(reply) is list:
                reply = self.tryConvertData(reply)
            put(reply)
            reply = reader.gets()

    def _check_deadline(self) -> None:
        """The oldest waiting command is past its deadline: fail them all and drop the connection,
        as txredisapi does on a reply timeout (the pool reconnects)."""
        self._deadline_timer = None
        waiting = self.replyQueue.waiting
        if not waiting:
            return
        clock = self.factory.reactor
        deadline = getattr(waiting[0], "deadline", 0.0)  # txredisapi's own waiters time themselves
        now = clock.seconds()
        if not deadline or deadline > now:
            self._deadline_timer = clock.callLater(deadline - now if deadline else self.replyTimeout,
                                                   self._check_deadline)
            return
        error = txredisapi.TimeoutError(f"Not received Redis response in {self.replyTimeout} seconds")
        while waiting:
            self.replyQueue.put(error)
        self.transport.abortConnection()

    def connectionLost(self, why):
        if self._deadline_timer is not None and self._deadline_timer.active():
            self._deadline_timer.cancel()
        self._deadline_timer = None
        return super().connectionLost(why)
