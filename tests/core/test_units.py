"""Pure and clock-driven pieces of the core: no sockets needed."""

import pytest
import pytest_twisted
from twisted.internet import task

from heihei.core.heartbeat import Liveness, is_dead
from heihei.core.moderation import Moderation
from heihei.core.model import Message, created_ms_of, id_floor_for_ms, pair_conversation
from heihei.core.policy import Rate, RateLimiter, refill, too_long
from heihei.core.presence import is_expired
from heihei.store.keys import key, split


def test_keys_escape_ids_so_they_cannot_reach_other_keys():
    assert key("inbox", "boss", "42") == "hh:inbox:boss:42"
    evil = key("inbox", "boss", "42:*")
    assert evil == "hh:inbox:boss:42%3A%2A"
    assert split(evil) == ["inbox", "boss", "42:*"]
    assert key("a", "x y?[z]") == "hh:a:x%20y%3F%5Bz%5D"


@pytest.mark.parametrize("part", ["42", "a-b_c.d~e", "", "x\n", "a:b", "é", "用户", "a b", "%41", "A%", "\x00", 7,
                                  "Z9-", "a\u00e9", "-", "~~", "\u212a"])
def test_the_escape_fast_path_gives_what_quote_gives(part):
    from urllib.parse import quote

    from heihei.store.keys import escape

    assert escape(part) == quote(str(part), safe="")


def test_rate_limiter_token_bucket_on_a_clock():
    clock = task.Clock()
    limiter = RateLimiter(clock)
    rate = Rate(per_second=1, burst=3)
    assert [limiter.allow(("u", 1), rate) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow(("u", 2), rate)  # buckets are per scope
    clock.advance(0.5)
    assert not limiter.allow(("u", 1), rate)
    clock.advance(0.6)
    assert limiter.allow(("u", 1), rate)
    clock.advance(100)
    assert [limiter.allow(("u", 1), rate) for _ in range(4)] == [True, True, True, False]
    assert refill(0, 0, 10, Rate(2, 5)) == 5.0


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(task.Clock(), max_buckets=10)
    for i in range(100):
        limiter.allow(("u", i), Rate(1, 1))
    assert len(limiter._buckets) == 10


def test_length_counts_characters_not_bytes():
    assert not too_long("好" * 200, 200)
    assert too_long("好" * 201, 200)


def test_dead_connections_are_swept_on_the_clock():
    clock = task.Clock()
    closed = []
    beats = []
    sweeper = Liveness(clock, check_interval_s=10, timeout_s=90, beat_interval_s=30, on_dead=closed.append,
                       on_beat=lambda conns, n: beats.append((sorted(conns), n)))
    sweeper.start()
    sweeper.track("quiet")
    sweeper.track("chatty")
    for _ in range(9):
        clock.advance(10)
        sweeper.seen("chatty")
    assert closed == []
    clock.advance(10)  # 100 s of silence
    assert closed == ["quiet"]
    # a beat every 30 s to every connection still tracked
    assert beats == [(["chatty", "quiet"], 1), (["chatty", "quiet"], 2), (["chatty", "quiet"], 3)]
    sweeper.forget("chatty")
    clock.advance(1000)
    assert closed == ["quiet"]
    sweeper.stop()
    assert not clock.getDelayedCalls()
    assert not is_dead(0, 10**6, 0)  # 0 = off


def test_a_beat_to_many_connections_goes_out_in_slices():
    clock = task.Clock()
    beats = []
    sweeper = Liveness(clock, timeout_s=0, beat_interval_s=30, on_dead=lambda c: None,
                       on_beat=lambda conns, n: beats.append((clock.seconds(), n, list(conns))))
    sweeper.start()
    for i in range(1200):
        sweeper.track(i)
    clock.advance(30)
    assert [(t, n, len(c)) for t, n, c in beats] == [(30, 1, 500)]  # the first slice at once
    sweeper.forget(700)  # gone before its slice: not pinged
    clock.advance(0.25)
    clock.advance(0.25)
    assert [(t, n, len(c)) for t, n, c in beats] == [(30, 1, 500), (30.25, 1, 499), (30.5, 1, 200)]
    assert sorted(i for _, _, c in beats for i in c) == [i for i in range(1200) if i != 700]
    clock.advance(29.5)  # the next beat: each connection in the same place, one interval later
    assert beats[3][:2] == (60, 2) and beats[3][2] == list(range(500))
    sweeper.stop()
    assert not clock.getDelayedCalls()  # the beat's later slices are cancelled too


def test_a_connections_pings_stay_one_interval_apart_when_those_after_it_leave():
    clock = task.Clock()
    pinged = []
    sweeper = Liveness(clock, timeout_s=0, beat_interval_s=30, on_dead=lambda c: None,
                       on_beat=lambda conns, n: pinged.append(clock.seconds()) if 4500 in conns else None)
    sweeper.start()
    for i in range(10_000):
        sweeper.track(i)
    for _ in range(120):
        clock.advance(0.25)
    for i in range(5000, 10_000):  # a room ends: everyone after it leaves
        sweeper.forget(i)
    for _ in range(250):
        clock.advance(0.25)
    assert len(pinged) == 3 and [b - a for a, b in zip(pinged, pinged[1:])] == [30, 30]
    sweeper.stop()


def test_expiry_and_ids_are_pure_functions_of_time():
    assert is_expired(1000, 1000) and not is_expired(1001, 1000)
    assert created_ms_of(id_floor_for_ms(1_700_000_000_123) + 5) == 1_700_000_000_123
    assert pair_conversation("b", "a") == pair_conversation("a", "b") == "u:a:b"


def test_message_entry_round_trip():
    m = Message(realm="boss", conversation="g:7", sender="1", body={"t": "a|b_c"}, kind="group", target="7",
                created_ms=5, client_id="x")
    entry = "123|" + m.payload_json().decode()
    back = Message.from_entry("boss", entry)
    assert (back.id, back.body, back.sender, back.client_id, back.entry) == (123, {"t": "a|b_c"}, "1", "x", entry)


def test_banned_words_are_masked_case_insensitively():
    m = Moderation(["bad", "Worse word", "坏"])
    assert m.clean("BAD and worse WORD, 坏人") == "*** and **********, *人"
    assert Moderation().clean("bad") == "bad"


class _CredentialConn:
    def __init__(self, user):
        self.user = user
        self.connection_open = True
        self.revoked = False

    def credential_revoked(self):
        self.revoked = True
        self.connection_open = False


@pytest_twisted.ensureDeferred
async def test_the_credential_check_goes_in_slices_and_closes_exactly_the_invalid():
    from heihei.core.sessions import CHECK_SLICE, RealmSessions, Session

    calls = []

    async def check(pairs):
        calls.append(len(pairs))
        return [not token.endswith("-gone") for token, _ in pairs]

    sessions = RealmSessions("t", hub=None, cleanups=None, credential_check=check)
    conns = []
    for i in range(2 * CHECK_SLICE + 7):
        conn = _CredentialConn(str(i))
        session = Session(sessions, conn, f"s{i}")
        session.credential = f"tok{i}" + ("-gone" if i % 3 == 0 else "")
        sessions.open_sessions.add(session)
        conns.append(conn)
    closed = await sessions.check_credentials()
    assert calls == [CHECK_SLICE, CHECK_SLICE, 7]
    assert closed == len(range(0, 2 * CHECK_SLICE + 7, 3))
    assert [c.revoked for c in conns] == [i % 3 == 0 for i in range(len(conns))]

    # connections closed already are neither asked about nor counted
    calls.clear()
    for conn in conns:
        conn.revoked = False
        conn.connection_open = int(conn.user) >= 9
    closed = await sessions.check_credentials()
    assert sum(calls) == len(conns) - 9 and max(calls) <= CHECK_SLICE
    assert closed == len(range(9, len(conns), 3))
    assert [c.revoked for c in conns] == [i >= 9 and i % 3 == 0 for i in range(len(conns))]
