"""
Small helpers every real-socket test shares: letting real time pass, waiting
for a condition on the running reactor, waiting for an inbox to settle.

`sleep` only lets time pass that the behaviour under test needs (Redis's
once-a-second fsync, a deadline on the real clock). To wait *for* something,
use `wait_until`: it returns as soon as the condition holds and fails with a
message when it never does. To show that something did *not* arrive, do not
sleep and look: send something that must arrive after it (a marker) and
assert it is the next thing the client reads.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable

from twisted.internet import reactor, task

#: how long `wait_until` waits by default before failing the test
WAIT_TIMEOUT_S = 5.0
#: how often `wait_until` checks its condition
POLL_INTERVAL_S = 0.01


async def sleep(seconds: float) -> None:
    """Let `seconds` of real time pass on the reactor (0: let it run one iteration)."""
    await task.deferLater(reactor, seconds, lambda: None)


async def wait_until(condition: Callable[[], Any | Awaitable[Any]], *, timeout_s: float = WAIT_TIMEOUT_S,
                     interval_s: float = POLL_INTERVAL_S, what: str | None = None) -> Any:
    """Poll `condition` (a plain or an async callable) until it returns something true; return that.

    Fails the test with `what` (or the condition's repr) after `timeout_s`."""
    deadline = reactor.seconds() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition!r}")
        await sleep(interval_s)


async def inbox_holds(node, realm: str, user: str, count: int) -> None:
    """Wait until `user`'s inbox in `realm` holds `count` messages: a delivery leaves the inbox
    once confirmed, and confirmations are removed in batches (heihei/core/acks.py)."""

    async def holds():
        return await node.hub.inbox.count(realm, user) == count

    await wait_until(holds, what=f"{count} messages in {user}'s {realm} inbox")
