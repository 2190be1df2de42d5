"""
Garbage-collector settings for the server process (not for tests or tools).

Why: CPython's full collection walks every tracked object, and a node with
5,000 connections holds about half a million of them: a full collection
stopped a node for 0.2-0.6 s (bench `room_two_nodes.py` N=10000, measured
with `gc.callbacks`), and every client on it waited. What triggers full
collections under load is promotion: with the default young threshold (700
allocations) the young generation is collected while a message's Deferreds
and buffers are still in flight, so they survive, are promoted, and bring the
next full collection closer. A higher threshold lets them die young. And
`gc.freeze()` once the node is built moves the objects of the loaded code and
the service tree (modules, classes, functions, about 100,000 objects) out of
every later collection; they live as long as the process anyway.

The cost: cyclic garbage waits for up to YOUNG_THRESHOLD allocations before
it is freed (a few megabytes at most), and a young collection, when it comes,
walks up to that many objects (milliseconds, not tenths of a second).
"""

from __future__ import annotations

import gc

#: allocations (minus deallocations) between collections of the young generation (CPython: 700)
YOUNG_THRESHOLD = 50_000


def tune_for_server() -> None:
    """Call once, after the service tree is built and before the reactor runs."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
