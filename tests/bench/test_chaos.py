"""The chaos scenario's accounting (bench/chaos_ledger.py): no server, times passed in."""

from bench.chaos_ledger import GRACE_S, Ledger, longest_pause, parse_tag, tag


def _sent(ledger, proto, sender, seq, to, outcomes, t=1.0):
    """A message with one attempt per outcome, one second apart."""
    out = ledger.new(proto, sender, seq, to)
    for i, outcome in enumerate(outcomes):
        n = ledger.attempt(out, t + i)
        ledger.end_attempt(out, n, outcome, t + i + 0.1, "503" if outcome == "refused" else "")
    return out


def test_tags_round_trip_inside_any_frame():
    assert tag("cbs1", 42, 3) == "cx-cbs1-42-3"
    assert parse_tag(b"text_cbs1_cx-cbs1-42-3_unicast_cbs1_1700000000_") == ("cbs1", 42, 3)
    assert parse_tag('{"content": "cx-cjs0-7-1"}') == ("cjs0", 7, 1)
    assert parse_tag(b"heartbeat_3") is None


def test_an_acked_message_never_delivered_is_lost_and_one_seen_only_after_relogin_is_late():
    ledger = Ledger()
    _sent(ledger, "boss", "cbs0", 1, "cbr0", ["acked"])
    _sent(ledger, "boss", "cbs0", 2, "cbr0", ["acked"])
    _sent(ledger, "boss", "cbs0", 3, "cbr0", ["refused"])  # never acked, never delivered: not lost
    ledger.delivered("boss", "cbr0", b"text_cbs0_cx-cbs0-1-1_unicast_cbs0_1_", 2.0, conn=1)
    ledger.phase = "relogin"
    ledger.delivered("boss", "cbr0", b"text_cbs0_cx-cbs0-2-1_unicast_cbs0_1_", 9.0, conn=2)
    v = ledger.verdict()["boss"]
    assert (v["messages"], v["acked"], v["never_acked"], v["delivered"]) == (3, 2, 1, 2)
    assert (v["lost"], v["late"]) == (0, 1)
    ledger2 = Ledger()
    _sent(ledger2, "jim", "cjs0", 1, "cjr0", ["unanswered", "acked"])
    v2 = ledger2.verdict()["jim"]
    assert v2["lost"] == 1 and v2["lost_detail"][0]["seq"] == 1
    assert (v2["attempts"], v2["attempts_unanswered"]) == (2, 1)


def test_duplicates_tell_a_redelivery_from_a_second_stored_copy():
    ledger = Ledger()
    _sent(ledger, "boss", "cbs0", 1, "cbr0", ["unanswered", "acked"])
    _sent(ledger, "boss", "cbs0", 2, "cbr0", ["acked"])
    for attempt in (1, 2):  # both attempts were stored: a resend without a client id
        ledger.delivered("boss", "cbr0", f"text_cbs0_cx-cbs0-1-{attempt}_unicast", 3.0, conn=1)
    for _ in range(2):  # the same copy twice: at-least-once after a lost confirmation
        ledger.delivered("boss", "cbr0", "text_cbs0_cx-cbs0-2-1_unicast", 4.0, conn=1)
    v = ledger.verdict()["boss"]
    assert (v["duplicated"], v["redelivered"], v["resend_copies"]) == (2, 1, 1)
    assert v["unanswered_but_delivered"] == 1 and v["refused_but_delivered"] == 0


def test_a_refused_attempt_that_arrives_anyway_is_counted():
    ledger = Ledger()
    _sent(ledger, "heihei", "chs0", 1, "10002", ["refused", "acked"])
    ledger.delivered("heihei", "10002", '{"text": "cx-chs0-1-1"}', 3.0, conn=1)
    v = ledger.verdict()["heihei"]
    assert v["refused_but_delivered"] == 1 and v["lost"] == 0


def test_order_is_per_sender_and_receiver_over_first_copies():
    ledger = Ledger()
    for seq in (1, 2, 3):
        _sent(ledger, "jim", "cjs0", seq, "cjr0", ["acked"])
    for seq, via in ((2, "push"), (1, "pull"), (3, "push"), (2, "pull")):
        ledger.delivered("jim", "cjr0", f"cx-cjs0-{seq}-1", 5.0, conn=1, via=via)
    v = ledger.verdict()["jim"]
    assert (v["out_of_order"], v["out_of_order_pulled"], v["duplicated"]) == (1, 1, 1)


def test_a_copy_for_someone_else_is_misrouted_not_delivered():
    ledger = Ledger()
    _sent(ledger, "boss", "cbs0", 1, "cbr0", ["acked"])
    ledger.delivered("boss", "cbr1", "text_cbs0_cx-cbs0-1-1_unicast", 2.0, conn=1)
    v = ledger.verdict()["boss"]
    assert (v["misrouted"], v["delivered"], v["lost"]) == (1, 0, 1)


def test_live_receivers_are_owed_only_what_was_sent_while_they_were_in_the_room():
    ledger = Ledger()
    ledger.logged_in("live", "clr0", 0.0, 1)  # in the room all along
    ledger.logged_in("live", "clr1", 0.0, 1)
    ledger.left("live", "clr1", 2.0)  # left right after the ack: owed nothing
    ledger.logged_in("live", "clr2", 1.5, 1)  # came in after the send: owed nothing
    out = _sent(ledger, "live", "cls0", 1, "chaos", ["acked"], t=1.0)
    assert ledger.live_owed(out) == {"clr0"}
    ledger.left("live", "clr0", 1.1 + GRACE_S + 1)
    assert ledger.live_owed(out) == {"clr0"}
    ledger.delivered("live", "clr2", "cx-cls0-1-1", 1.2, conn=1)
    v = ledger.verdict()["live"]
    assert (v["owed_pairs"], v["delivered_pairs"], v["lost"]) == (1, 1, 1)
    assert v["lost_detail"][0]["receiver"] == "clr0"


def test_a_message_for_a_connected_receiver_that_only_comes_on_its_next_connection_was_held():
    ledger = Ledger()
    ledger.logged_in("jim", "cjr0", 0.0, 1)
    _sent(ledger, "jim", "cjs0", 1, "cjr0", ["acked"], t=1.0)  # acked at 1.1, pushed on connection 1
    _sent(ledger, "jim", "cjs0", 2, "cjr0", ["acked"], t=2.0)  # acked at 2.1, missed its push
    ledger.delivered("jim", "cjr0", "cx-cjs0-1-1", 1.2, conn=1)
    ledger.left("jim", "cjr0", 20.0)
    ledger.logged_in("jim", "cjr0", 21.0, 2)
    ledger.delivered("jim", "cjr0", "cx-cjs0-2-1", 21.5, conn=2, via="pull")
    v = ledger.verdict()["jim"]
    assert (v["held"], v["lost"], v["late"]) == (1, 0, 0)
    assert v["held_detail"][0]["seq"] == 2 and v["held_detail"][0]["came_on"] == 2
    assert v["delay_max_s"] == 19.4


def test_longest_pause_is_the_widest_gap_between_acks_that_overlaps_the_fault():
    acks = [1.0, 2.0, 3.0, 9.0, 9.5, 20.0]
    assert longest_pause(acks, 4.0, 6.0) == 6.0
    assert longest_pause(acks, 9.2, 9.3) == 0.5
    assert longest_pause([1.0, 2.0], 5.0, 6.0) is None
