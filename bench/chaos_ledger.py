"""
The chaos scenario's bookkeeping: every message a simulated client sends
(each attempt, and which one the server acknowledged) and every copy a
receiver gets, then the verdict per protocol. No sockets, no clock of its own
(the caller passes times in), so `tests/bench/test_chaos.py` checks the
accounting without a server.

A message is one (sender, seq); each try is an attempt (1, 2, ...) and the
text carries both: `cx-<sender>-<seq>-<attempt>`. An attempt ends in one of

- `acked`: the protocol's own acknowledgement came back (bench/README.md,
  "Chaos", says what that is per protocol);
- `refused`: the server answered with an explicit error for it (503, 10002,
  im-error, -1007 ...);
- `unanswered`: the client saw neither before its connection died or its
  patience ran out (the answer may have been lost, not the message).

A sender resends a message until one attempt is acked (the same client id
where the protocol has one: jim `id`, heihei `clientMsgId`), so with the
protocols that deduplicate the stored copy is the first attempt that reached
the store, and the attempt number in the delivered text says which one.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

TAG = re.compile(rb"cx-([a-z0-9]+)-(\d+)-(\d+)")
#: live has no inbox: a receiver is owed a room message only if its connection was in the room
#: (Open answered) before the acknowledged attempt was sent and was still open this long after the
#: ack. For the 1:1 protocols: a receiver logged in at the ack and still there this long after it
#: should get the message on that connection; one that only comes on a later one was held back
GRACE_S = 3.0
PROTOCOLS = ("boss", "jim", "heihei", "live", "bossgroup", "jimgroup")
#: the phases a delivery can fall in; "relogin" is after every receiver logged in afresh at the end
PHASES = ("run", "drain", "quiet", "relogin")


def tag(sender: str, seq: int, attempt: int) -> str:
    return f"cx-{sender}-{seq}-{attempt}"


def parse_tag(payload: bytes | str) -> tuple[str, int, int] | None:
    """(sender, seq, attempt) of the first tag in a frame, else None."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    m = TAG.search(payload)
    if m is None:
        return None
    return m.group(1).decode(), int(m.group(2)), int(m.group(3))


@dataclass
class Attempt:
    t_sent: float
    outcome: str = "pending"  # acked | refused | unanswered | pending
    t_end: float | None = None
    detail: str = ""


@dataclass
class Outgoing:
    proto: str
    sender: str
    seq: int
    #: the receiver's user id (1:1) or the room (live)
    to: str
    client_id: str | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acked(self) -> Attempt | None:
        for a in self.attempts:
            if a.outcome == "acked":
                return a
        return None

    @property
    def acked_attempt(self) -> int | None:
        for i, a in enumerate(self.attempts, 1):
            if a.outcome == "acked":
                return i
        return None


@dataclass(frozen=True)
class Delivery:
    proto: str
    receiver: str
    sender: str
    seq: int
    attempt: int
    t: float
    phase: str
    #: the receiver's connection (1, 2, ... per receiver)
    conn: int
    #: how it came: "push" (live delivery or replay at login), "pull" (jim cmd 19)
    via: str = "push"


class Ledger:
    def __init__(self) -> None:
        self.outgoing: dict[tuple[str, int], Outgoing] = {}
        self.deliveries: list[Delivery] = []
        #: (proto, receiver) -> [[t logged in (live: the Open answer), t the connection ended or None,
        #: the receiver's connection number]]
        self.windows: dict[tuple[str, str], list[list]] = defaultdict(list)
        self.phase = "run"
        #: frames a receiver got that carry a tag of a message it was not sent
        self.misrouted: list[Delivery] = []
        self.unknown: Counter = Counter()

    # -- senders -------------------------------------------------------------------------

    def new(self, proto: str, sender: str, seq: int, to: str, client_id: str | None = None) -> Outgoing:
        out = Outgoing(proto, sender, seq, to, client_id)
        self.outgoing[(sender, seq)] = out
        return out

    def attempt(self, out: Outgoing, t: float) -> int:
        out.attempts.append(Attempt(t))
        return len(out.attempts)

    def end_attempt(self, out: Outgoing, attempt: int, outcome: str, t: float, detail: str = "") -> None:
        a = out.attempts[attempt - 1]
        if a.outcome == "pending":
            a.outcome, a.t_end, a.detail = outcome, t, detail[:200]

    # -- receivers -----------------------------------------------------------------------

    def delivered(self, proto: str, receiver: str, payload: bytes | str, t: float, conn: int,
                  via: str = "push") -> Delivery | None:
        parsed = parse_tag(payload)
        if parsed is None:
            return None
        sender, seq, attempt = parsed
        d = Delivery(proto, receiver, sender, seq, attempt, t, self.phase, conn, via)
        out = self.outgoing.get((sender, seq))
        if out is None:
            self.unknown[proto] += 1
            return d
        if out.proto != proto or (proto != "live" and out.to != receiver):
            self.misrouted.append(d)
            return d
        self.deliveries.append(d)
        return d

    def logged_in(self, proto: str, receiver: str, t: float, conn: int) -> None:
        self.windows[(proto, receiver)].append([t, None, conn])

    def left(self, proto: str, receiver: str, t: float) -> None:
        windows = self.windows.get((proto, receiver))
        if windows and windows[-1][1] is None:
            windows[-1][1] = t

    def connected_through(self, proto: str, receiver: str, start: float, until: float) -> int | None:
        """The receiver's connection that was logged in at `start` and still open at `until`."""
        for opened, closed, conn in self.windows.get((proto, receiver), ()):
            if opened <= start and (closed is None or closed >= until):
                return conn
        return None

    # -- the verdict -----------------------------------------------------------------------

    def live_owed(self, out: Outgoing) -> set[str]:
        """The live receivers that were in the room from before the acked attempt was sent until
        GRACE_S after its ack (receivers who left or whose node died are owed nothing)."""
        acked = out.acked
        if acked is None:
            return set()
        return {receiver for (proto, receiver) in self.windows
                if proto == "live" and self.connected_through("live", receiver, acked.t_sent,
                                                               acked.t_end + GRACE_S) is not None}

    def verdict(self) -> dict[str, dict[str, Any]]:
        return {proto: self._verdict(proto) for proto in PROTOCOLS}

    def _verdict(self, proto: str) -> dict[str, Any]:
        messages = [o for o in self.outgoing.values() if o.proto == proto]
        by_message: dict[tuple[str, int], list[Delivery]] = defaultdict(list)
        for d in self.deliveries:
            if d.proto == proto:
                by_message[(d.sender, d.seq)].append(d)
        attempts = Counter(a.outcome for o in messages for a in o.attempts)
        refusals = Counter(a.detail for o in messages for a in o.attempts if a.outcome == "refused")
        acked = [o for o in messages if o.acked is not None]
        out: dict[str, Any] = {
            "messages": len(messages), "attempts": sum(attempts.values()), "acked": len(acked),
            "attempts_refused": attempts["refused"], "attempts_unanswered": attempts["unanswered"],
            "never_acked": len(messages) - len(acked), "refusals": dict(refusals.most_common(6)),
        }
        # per (message, receiver): the deliveries in arrival order
        pairs: dict[tuple[str, int, str], list[Delivery]] = defaultdict(list)
        for key, ds in by_message.items():
            for d in ds:
                pairs[(key[0], key[1], d.receiver)].append(d)
        owed: dict[tuple[str, int], set[str]] = {}
        for o in messages:
            if proto == "live":
                owed[(o.sender, o.seq)] = self.live_owed(o)
            elif o.acked is not None:
                owed[(o.sender, o.seq)] = {o.to}
        lost, late = [], []
        for (sender, seq), receivers in owed.items():
            for r in receivers:
                ds = pairs.get((sender, seq, r))
                if not ds:
                    lost.append({"sender": sender, "seq": seq, "receiver": r,
                                 "acked_at": self.outgoing[(sender, seq)].acked.t_end})
                elif all(d.phase == "relogin" for d in ds):
                    late.append({"sender": sender, "seq": seq, "receiver": r})
        # 1:1: a receiver connected when the message was acked and for GRACE_S after should get it
        # on that connection; "held" ones only came on a later one (they waited in an inbox)
        held, delays = [], []
        if proto != "live":
            for o in acked:
                conn = self.connected_through(proto, o.to, o.acked.t_end, o.acked.t_end + GRACE_S)
                ds = pairs.get((o.sender, o.seq, o.to))
                if conn is None or not ds:
                    continue
                first = min(ds, key=lambda d: d.t)
                delays.append(max(0.0, first.t - o.acked.t_end))
                if not any(d.conn == conn for d in ds):
                    held.append({"sender": o.sender, "seq": o.seq, "receiver": o.to,
                                 "acked_at": round(o.acked.t_end, 3), "connection": conn,
                                 "came_at": round(first.t, 3), "came_on": first.conn, "via": first.via})
        delays.sort()
        redelivered = resend_copies = duplicated = 0
        duplicates = []
        for ds in pairs.values():
            if len(ds) > 1:
                duplicated += 1
                if len(duplicates) < 10:
                    duplicates.append([{"sender": d.sender, "seq": d.seq, "attempt": d.attempt, "t": round(d.t, 3),
                                        "conn": d.conn, "via": d.via, "phase": d.phase} for d in ds])
                per_attempt = Counter(d.attempt for d in ds)
                if any(n > 1 for n in per_attempt.values()):
                    redelivered += 1
                if len(per_attempt) > 1:
                    resend_copies += 1
        # attempts the client saw fail whose copy was delivered anyway
        refused_delivered = unanswered_delivered = 0
        for (sender, seq), ds in by_message.items():
            o = self.outgoing[(sender, seq)]
            for n in {d.attempt for d in ds}:
                if 1 <= n <= len(o.attempts):
                    if o.attempts[n - 1].outcome == "refused":
                        refused_delivered += 1
                    elif o.attempts[n - 1].outcome == "unanswered":
                        unanswered_delivered += 1
        unacked_delivered = sum(1 for key, ds in by_message.items() if ds and self.outgoing[key].acked is None)
        out.update({
            "delivered": len(by_message),  # distinct messages that reached at least one receiver
            "delivered_pairs": len(pairs),
            "owed_pairs": sum(len(r) for r in owed.values()),
            "lost": len(lost), "lost_detail": lost[:20],
            "late": len(late), "late_detail": late[:20],
            "held": len(held), "held_detail": held[:20],
            "delay_p50_s": _pick(delays, 0.5), "delay_p99_s": _pick(delays, 0.99),
            "delay_max_s": round(delays[-1], 3) if delays else None,
            "duplicate_detail": duplicates,
            "duplicated": duplicated, "redelivered": redelivered, "resend_copies": resend_copies,
            "out_of_order": self._out_of_order(proto),
            "out_of_order_pulled": self._out_of_order(proto, pulled_only=True),
            "unacked_delivered": unacked_delivered,
            "refused_but_delivered": refused_delivered, "unanswered_but_delivered": unanswered_delivered,
            "misrouted": sum(1 for d in self.misrouted if d.proto == proto),
            "unknown_tags": self.unknown[proto],
        })
        return out

    def _out_of_order(self, proto: str, pulled_only: bool = False) -> int:
        """First copies a receiver got of a sender's message after a later message of that sender
        (`pulled_only`: of those, the ones that came in a jim cmd 19 answer)."""
        newest: dict[tuple[str, str], int] = {}
        seen: set[tuple[str, str, int]] = set()
        inversions = 0
        for d in self.deliveries:
            if d.proto != proto or (d.receiver, d.sender, d.seq) in seen:
                continue
            seen.add((d.receiver, d.sender, d.seq))
            key = (d.receiver, d.sender)
            if d.seq < newest.get(key, 0) and (not pulled_only or d.via == "pull"):
                inversions += 1
            newest[key] = max(newest.get(key, 0), d.seq)
        return inversions

    def dump(self) -> dict[str, Any]:
        """Everything, as JSON, for reading a run afterwards (ledger.json in the run directory)."""
        return {
            "outgoing": [{"proto": o.proto, "sender": o.sender, "seq": o.seq, "to": o.to, "client_id": o.client_id,
                          "attempts": [a.__dict__ for a in o.attempts]} for o in self.outgoing.values()],
            "deliveries": [d.__dict__ for d in self.deliveries],
            "misrouted": [d.__dict__ for d in self.misrouted],
            "windows": {f"{p}:{r}": w for (p, r), w in self.windows.items()},
        }

    def ack_times(self, proto: str) -> list[float]:
        return sorted(o.acked.t_end for o in self.outgoing.values() if o.proto == proto and o.acked is not None)


def _pick(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 3)


def longest_pause(times: Iterable[float], start: float, end: float) -> float | None:
    """The longest gap between consecutive acks that overlaps [start, end]; None when no ack
    came after `start` at all."""
    best = None
    prev = None
    for t in sorted(times):
        if prev is not None and prev <= end and t >= start:
            best = t - prev if best is None else max(best, t - prev)
        prev = t
    return best
