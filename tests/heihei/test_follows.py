"""The follow graph: both sides in one step, idempotent, bounded, paged newest first."""

import pytest
import pytest_twisted
from twisted.internet import task

from heihei.core.errors import Refused
from heihei.heihei import follows as follows_module
from heihei.heihei.follows import Follows, followers_key, following_key


@pytest_twisted.ensureDeferred
async def test_follow_is_idempotent_two_sided_and_paged(nodes, redis, monkeypatch):
    node = await nodes.start("a")
    clock = task.Clock()
    clock.advance(1_700_000_000)
    graph = Follows(node.store, clock)
    assert await graph.follow("1", "2") is True
    clock.advance(1)
    assert await graph.follow("1", "2") is False  # the first time stays
    assert redis["client"].zscore(following_key("1"), "2") == 1_700_000_000_000
    assert redis["client"].zscore(followers_key("2"), "1") == 1_700_000_000_000
    for follower in ("3", "4", "5"):
        clock.advance(1)
        await graph.follow(follower, "2")
    assert await graph.counts("2") == (4, 0) and await graph.counts("1") == (0, 1)
    assert await graph.followers("2", 0, 2) == (4, ["5", "4"])  # the most recent first
    assert await graph.followers("2", 2, 10) == (4, ["3", "1"])
    assert await graph.followers("2", 10, 10) == (4, [])
    assert await graph.flags("1", ["2", "3"]) == {"2": True, "3": False}
    chunks = [chunk async for chunk in graph.all_followers("2", chunk=3)]
    assert chunks == [["1", "3", "4"], ["5"]]
    assert await graph.unfollow("1", "2") is True and await graph.unfollow("1", "2") is False
    assert redis["client"].zscore(followers_key("2"), "1") is None
    await graph.follow("2", "3")
    await graph.sever("3", "2")
    assert await graph.counts("3") == (0, 0) and await graph.counts("2") == (2, 0)  # 3 no longer follows 2
    assert not await graph.follows("2", "3")
    with pytest.raises(Refused):
        await graph.follow("1", "1")
    with pytest.raises(Refused):
        await graph.followers("2", 0, 101)
    monkeypatch.setattr(follows_module, "MAX_FOLLOWING", 1)
    await graph.follow("9", "1")
    with pytest.raises(Refused):
        await graph.follow("9", "2")
