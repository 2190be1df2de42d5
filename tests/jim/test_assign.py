"""The pure part of agent assignment."""

from heihei.jim.assign import choose_agent


def test_online_agent_with_fewest_open_conversations():
    assert choose_agent(["a", "b", "c"], online=["b", "c"], open_counts={"a": 0, "b": 5, "c": 2}) == "c"


def test_nobody_online_means_any_agent_still_least_loaded():
    assert choose_agent(["a", "b"], online=[], open_counts={"a": 3, "b": 1}) == "b"


def test_ties_go_to_the_smallest_id_and_no_agents_to_none():
    assert choose_agent(["b", "a"], online=["a", "b"], open_counts={}) == "a"
    assert choose_agent([], online=[], open_counts={}) is None
