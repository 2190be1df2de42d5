"""The user search index against a real Redis: names (CJK, Latin, mixed), heiNums, ids, renames,
deletion, pagination, bounds, concurrent renames from two nodes, and the operator's reindex."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from heihei.config import parse_redis_url
from heihei.core.errors import BAD_REQUEST, Refused
from heihei.heihei import search as search_mod
from heihei.heihei.accounts import Accounts
from heihei.heihei.search import UserSearch, grams, normalize
from heihei.store.client import Store

T0 = 1_700_000_000


async def started_store(url: str) -> Store:
    store = Store(parse_redis_url(url), reply_timeout_s=5.0, connect_timeout_s=2.0, reactor=reactor)
    store.startService()
    for _ in range(200):
        if store._idle_connection() is not None:
            return store
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("the store did not connect")


class Env:
    """One "node": a store, its accounts and its search index."""

    def __init__(self, store: Store, **search_options) -> None:
        self.store = store
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.search = UserSearch(store, **search_options)
        self.accounts = Accounts(store, self.clock, first_user_id=10001, first_hei_num=1000001,
                                 default_cover_url="https://img.example/cover.png", search=self.search)
        self._phones = 0

    async def user(self, name: str) -> str:
        """A new account named `name` (as sign-up then profile update would make it)."""
        self._phones += 1
        created = await self.accounts.find_or_create(("phone", f"1390000{id(self) % 1000:03d}{self._phones}"), {})
        await self.accounts.update(created.user, {"displayName": name})
        return created.user

    async def find(self, query, offset=0, limit=50) -> list[str]:
        return (await self.search.search(query, offset, limit)).uids

    async def names(self, query, **kw) -> list[str]:
        profiles = await self.accounts.get_many(await self.find(query, **kw))
        return [profiles[u]["displayName"] for u in await self.find(query, **kw)]


@pytest_twisted.async_yield_fixture
async def env(redis):
    store = await started_store(redis["url"])
    yield Env(store)
    await store.stopService()


@pytest_twisted.async_yield_fixture
async def two_nodes(redis):
    stores = [await started_store(redis["url"]) for _ in range(2)]
    yield [Env(s) for s in stores]
    for s in stores:
        await s.stopService()


def index_keys(redis) -> set[str]:
    """Every key of the index but `sheimax` (the highest heiNum seen, which stays)."""
    client = redis["client"]
    return {k.decode() for pattern in ("hh:sg:*", "hh:sn:*", "hh:shei:*", "hh:stmp:*")
            for k in client.scan_iter(pattern)}


def gram_keys_holding(redis, uid: str) -> set[str]:
    client = redis["client"]
    return {k.decode() for k in client.scan_iter("hh:sg:*") if client.zscore(k, uid) is not None}


def expected_gram_keys(name: str) -> set[str]:
    return {search_mod.gram_key(*g) for g in grams(normalize(name))[1]}


# -- normalisation ----------------------------------------------------------------------------------

def test_normalisation_folds_case_width_and_separators():
    assert normalize("ＳＨＡＯ Jing") == "shao jing"
    assert normalize("  Shao\u3000—Jing!! ") == "shao jing"
    assert normalize("Straße") == "strasse"
    assert normalize("❤\ufe0f小猫\u200d") == "❤小猫"
    assert normalize("邵" * 40) == "邵" * search_mod.MAX_NAME_CHARS


# -- names ------------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_cjk_substring_ranked_by_position_then_length_then_newest(env):
    shao_wx = await env.user("邵晶微信号")
    shao = await env.user("邵晶")
    shao_phone = await env.user("邵晶手机号")
    xiao_shao = await env.user("小邵晶")
    other = await env.user("晶晶")
    # exact first, then names starting with it (shorter first, newer first), then names containing it
    assert await env.find("邵晶") == [shao, shao_phone, shao_wx, xiao_shao]
    assert await env.find("晶") == [other, shao, shao_phone, shao_wx, xiao_shao]
    assert await env.find("邵晶手") == [shao_phone]
    assert await env.find("晶手机号") == [shao_phone]
    assert await env.find("微信号邵") == []
    page = await env.search.search("邵", 0, 10)
    assert (page.total, page.estimated) == (4, False)
    total, uids = page  # unpacks as (total, uids)
    assert uids == [shao, shao_phone, shao_wx, xiao_shao]


@pytest_twisted.ensureDeferred
async def test_latin_is_case_and_width_insensitive_substring(env):
    camel = await env.user("ShaoJing")
    spaced = await env.user("Shao Jing")
    wide = await env.user("ＳＨＡＯ")
    inner = await env.user("xiaoshao88")
    await env.user("Lucky")
    assert set(await env.find("shao")) == {camel, spaced, wide, inner}
    assert (await env.find("SHAO"))[0] == wide  # exact (shortest) first
    assert (await env.find("shao"))[-1] == inner  # the only one not starting with it
    assert set(await env.find("aojing")) == {camel, spaced}  # word separators do not count
    assert set(await env.find("shao jing")) == {camel, spaced}
    assert await env.find("jing") == [spaced, camel]  # same position and length: newer first
    assert await env.find("ao88") == [inner]
    # one or two Latin characters: names with a word starting with them
    assert set(await env.find("s")) == {camel, spaced, wide}
    assert set(await env.find("ji")) == {spaced}
    assert await env.find("ao") == []


@pytest_twisted.ensureDeferred
async def test_mixed_scripts_and_emoji(env):
    kiki = await env.user("Kiki小可爱🐱")
    cat = await env.user("🐱猫猫")
    heart = await env.user("❤️小猫")
    assert await env.find("kiki") == [kiki]
    assert await env.find("小可") == [kiki]
    assert await env.find("i小可") == [kiki]
    assert await env.find("可爱🐱") == [kiki]
    assert await env.find("🐱") == [cat, kiki]
    assert await env.find("小") == [heart, kiki]
    assert await env.find("❤小猫") == [heart]
    assert await env.find("k") == [kiki]


@pytest_twisted.ensureDeferred
async def test_candidates_are_checked_against_the_stored_name(env):
    await env.user("abcbcd")  # holds both trigrams of "abcd", not the text
    real = await env.user("xabcd")
    assert await env.find("abcd") == [real]
    page = await env.search.search("abcd")
    assert page.total == 1 and not page.estimated


# -- heiNums and ids --------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_heinum_exact_and_prefix_and_id_exact(env):
    users = [await env.user(f"user{i}") for i in range(12)]  # heiNums 1000001..1000012, ids 10001..10012
    profiles = await env.accounts.get_many(users)
    hei = {u: profiles[u]["heiNum"] for u in users}
    assert hei[users[0]] == "1000001"
    assert await env.find("1000003") == [users[2]]
    assert await env.find("100001") == [users[9], users[10], users[11]]  # 1000010..1000012
    assert await env.find("10000") == users  # every heiNum 10000xx, in numeric order
    assert await env.find("10005") == [users[4]]  # the id
    # heiNums first (exact, then longer ones), the id after the exact heiNum
    await env.search.index_user("10005", "user4", "10005")  # a heiNum equal to someone's id ...
    # (the profile says otherwise: the index follows the profile)
    assert await env.find("10005") == [users[4]]
    await env.accounts.store.hset(search_mod.user_key(users[7]), "heiNum", "10005")
    await env.search.sync_user(users[7])
    assert await env.find("10005") == [users[7], users[4]]
    # two digits: exact heiNum and id only, no prefix walk; names starting with the digits
    digits = await env.user("88号")
    assert await env.find("88") == [digits]
    # leading zero: not a number, only names
    assert await env.find("01000001") == []


@pytest_twisted.ensureDeferred
async def test_a_user_found_by_heinum_is_not_listed_again_by_name(env):
    first = await env.user("x")
    await env.accounts.update(first, {"displayName": "fan of 1000001"})
    other = await env.user("1000001 fan")
    assert await env.find("1000001") == [first, other]
    page = await env.search.search("1000001")
    assert page.total == 2


# -- changes ----------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_rename_removes_the_old_grams(env, redis):
    uid = await env.user("邵晶Shao")
    assert await env.find("邵晶") == [uid]
    await env.accounts.update(uid, {"displayName": "王小明"})
    assert await env.find("邵晶") == []
    assert await env.find("shao") == []
    assert await env.find("小明") == [uid]
    assert gram_keys_holding(redis, uid) == expected_gram_keys("王小明")
    assert (await env.accounts.get(uid))["displayName"] == "王小明"
    # no gram key of the old name is left behind (they held only this user)
    assert not any("%E9%82%B5" in k for k in index_keys(redis))


@pytest_twisted.ensureDeferred
async def test_unindex_leaves_nothing(env, redis):
    a = await env.user("邵晶")
    b = await env.user("Lucky 星")
    assert await env.find("1000001") == [a]
    await env.search.unindex_user(a)
    assert await env.find("邵晶") == []
    assert await env.find("1000001") == []
    assert await env.find(a) == []
    await env.search.unindex_user(b)
    await env.search.unindex_user(b)  # twice is fine
    assert index_keys(redis) == set()


@pytest_twisted.ensureDeferred
async def test_index_user_follows_the_profile_not_a_stale_caller(env, redis):
    uid = await env.user("old name")
    await env.accounts.update(uid, {"displayName": "new name"})
    await env.search.index_user(uid, "old name", "1000001")  # a stale view: the profile says "new name"
    assert await env.find("old") == []
    assert await env.find("new name") == [uid]
    redis["client"].delete(search_mod.user_key(uid))
    await env.search.index_user(uid, "new name", "1000001")  # the profile is gone: so is the entry
    assert index_keys(redis) == set()


# -- pages and bounds -------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_pages_are_stable_and_cover_the_list_once(env):
    uids = []
    for i in range(45):
        uids.append(await env.user(("王" if i % 3 else "小王") + "一二三四五"[i % 5] * (1 + i % 4)))
    everything = await env.find("王", limit=50)
    assert sorted(everything) == sorted(uids)
    pages = []
    for offset in range(0, 50, 7):
        page = await env.search.search("王", offset, 7)
        assert page.total == 45
        pages += page.uids
    assert pages == everything
    assert await env.find("王", limit=50) == everything  # the same again
    # multi-gram and checked queries page the same way
    multi = await env.find("王一一", limit=50)
    assert multi and [u for o in range(0, 50, 2) for u in await env.find("王一一", offset=o, limit=2)] == multi


@pytest.mark.parametrize("query, offset, limit, detail", [
    ("x" * 65, 0, 10, "query longer than 64 characters"),
    ("邵" * 33, 0, 10, "query longer than 32 characters once normalised"),
    ("  !!  ", 0, 10, "query is empty"),
    (None, 0, 10, "query must be text"),
    ("abc", -1, 10, "offset must be"),
    ("abc", 0, 0, "limit must be 1 to 50"),
    ("abc", 0, 51, "limit must be 1 to 50"),
    ("abc", 460, 50, "offset + limit must be at most 500"),
])
@pytest_twisted.ensureDeferred
async def test_oversized_and_malformed_queries_are_refused(env, query, offset, limit, detail):
    with pytest.raises(Refused) as refused:
        await env.search.search(query, offset, limit)
    assert refused.value.reason == BAD_REQUEST
    assert refused.value.detail.startswith(detail)


@pytest_twisted.ensureDeferred
async def test_long_queries_are_bounded_in_grams_and_still_exact(env):
    long_name = "一二三四五六七八九十甲乙丙丁戊己庚辛壬癸"  # 20 characters, 19 pairs
    uid = await env.user(long_name)
    near = await env.user(long_name[:10] + "子" + long_name[11:])
    plan = search_mod.plan(long_name)
    assert len(plan.gram_keys) == search_mod.MAX_QUERY_GRAMS and plan.verify
    assert await env.find(long_name) == [uid]
    assert set(await env.find(long_name[:10])) == {uid, near}


@pytest_twisted.ensureDeferred
async def test_candidates_examined_are_bounded_and_the_total_estimated(redis):
    store = await started_store(redis["url"])
    try:
        env = Env(store, max_candidates=10)
        uids = [await env.user(f"abcd{i:02d}") for i in range(30)]
        newest_first = uids[::-1]
        # two sets of 30: the best 10 of the smallest are examined, the total is scaled from them
        page = await env.search.search("abcd", 0, 50)
        assert page.estimated and page.total == 30 and page.uids == newest_first[:10]
        # one set that is the answer itself: a range of ranks, no bound needed
        page = await env.search.search("abc", 0, 50)
        assert not page.estimated and page.total == 30 and page.uids == newest_first
        # "cd1" has 10 members: the intersection is examined in full, exact
        page = await env.search.search("bcd1", 0, 50)
        assert not page.estimated and page.total == 10 and page.uids == uids[10:20][::-1]
    finally:
        await store.stopService()


# -- concurrency ------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_concurrent_renames_from_two_nodes_end_in_step_with_the_profile(two_nodes, redis):
    a, b = two_nodes
    uid = await a.user("开始")
    seen = []
    for round_no in range(15):
        # six renames of one user at once, three from each node: all read the same entry first,
        # so all but one lose the race and retry
        names = [f"名字{round_no}{i}号" if i % 2 else f"Name{round_no}{i}x" for i in range(6)]
        seen += names
        await defer.gatherResults([defer.Deferred.fromCoroutine(
            (a if i % 2 else b).accounts.update(uid, {"displayName": n})) for i, n in enumerate(names)])
        final = (await a.accounts.get(uid))["displayName"]
        assert final in names
        assert gram_keys_holding(redis, uid) == expected_gram_keys(final)
        assert redis["client"].hget(search_mod.names_key(uid), uid).decode().split("|", 1)[1] == normalize(final)
        assert await a.find(final) == [uid]
    for n in seen:
        if n != final:
            assert uid not in await b.find(n)


@pytest_twisted.ensureDeferred
async def test_a_stale_reindex_racing_a_rename_cannot_win(two_nodes, redis):
    a, b = two_nodes
    uid = await a.user("first")
    for i in range(20):
        # node b indexes what it read long ago while node a renames
        await defer.gatherResults([
            defer.Deferred.fromCoroutine(b.search.index_user(uid, "first", "1000001")),
            defer.Deferred.fromCoroutine(a.accounts.update(uid, {"displayName": f"rename{i}"})),
            defer.Deferred.fromCoroutine(b.search.index_user(uid, f"rename{i - 1}", "1000001"))])
        assert gram_keys_holding(redis, uid) == expected_gram_keys(f"rename{i}")
    assert await b.find("first") == []
    assert await b.find("rename19") == [uid]


# -- operators --------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_reindex_all_indexes_existing_profiles_and_resumes(env, redis):
    client = redis["client"]
    for i in range(50):
        client.hset(f"hh:user:heihei:{20000 + i}", mapping={"id": 20000 + i, "heiNum": 3000000 + i,
                                                            "displayName": f"老用户{i}"})
    client.hset("hh:user:heihei:abc", mapping={"displayName": "not a numeric id"})
    client.set("hh:user:heihei:20100", "not a hash")
    assert await env.find("老用户") == []
    first = await env.search.reindex_all(batch=10, max_batches=1)
    assert not first.done and first.cursor != "0"
    assert client.get("hh:sreindex:heihei").decode() == first.cursor
    rest = await env.search.reindex_all(batch=10)
    assert rest.done and client.get("hh:sreindex:heihei") is None
    assert first.indexed + rest.indexed >= 50
    page = await env.search.search("老用户", 0, 50)
    assert page.total == 50
    assert await env.find("3000007") == ["20007"]
    again = await env.search.reindex_all(batch=10)  # idempotent
    assert again.done and (await env.search.search("老用户", 0, 50)).total == 50
    assert await env.search.drop_all() > 0
    assert index_keys(redis) == set() and not client.exists("hh:sheimax:heihei")


@pytest_twisted.ensureDeferred
async def test_many_candidates_are_checked_until_the_page_is_full(env):
    uids = [await env.user(f"abcd{i:03d}") for i in range(search_mod.EXACT_BELOW + 22)]
    newest_first = uids[::-1]
    page = await env.search.search("abcd", 0, 20)  # two grams: checked, lazily
    assert page.uids == newest_first[:20]
    assert page.estimated and page.total == len(uids)  # every one checked so far matched
    deep = await env.search.search("abcd", 130, 20)
    assert deep.uids == newest_first[130:150]
    assert not deep.estimated and deep.total == len(uids)  # walked to the end
    assert (await env.search.search("abc", 0, 20)).total == len(uids)  # one set: exact, no check


@pytest_twisted.ensureDeferred
async def test_heinum_prefixes_across_sets_in_order_and_bounded(env, redis, monkeypatch):
    client = redis["client"]
    heinums = list(range(1000050, 1000250)) + [10002000, 10002999]  # three sets of 100, two longer ones
    for i, h in enumerate(heinums):
        client.hset(f"hh:user:heihei:{30000 + i}", mapping={"id": 30000 + i, "heiNum": h, "displayName": ""})
    assert (await env.search.reindex_all()).indexed == len(heinums)
    by_hei = {h: str(30000 + i) for i, h in enumerate(heinums)}
    page = await env.search.search("10002", 0, 50)  # 7 digits 1000200..1000249, then 8 digits 10002000...
    assert page.total == 52 and not page.estimated
    assert page.uids == [by_hei[h] for h in list(range(1000200, 1000250)) if h in by_hei]
    page = await env.search.search("10002", 45, 10)
    assert page.uids == [by_hei[h] for h in (1000245, 1000246, 1000247, 1000248, 1000249, 10002000, 10002999)]
    everything = [u for o in range(0, 200, 9) for u in (await env.search.search("10000", o, 9)).uids]
    assert everything == [by_hei[h] for h in range(1000050, 1000100)]
    ones = [u for o in range(0, 250, 20) for u in (await env.search.search("100", o, 20)).uids]
    assert ones == [by_hei[h] for h in heinums]
    assert (await env.search.search("100", 0, 20)).total == len(heinums)
    monkeypatch.setattr(search_mod, "MAX_HEINUM_SETS", 20)  # "100" spans 142 sets: look at 20
    page = await env.search.search("100", 0, 20)
    assert page.estimated and page.uids == [by_hei[h] for h in heinums[:20]]


@pytest_twisted.ensureDeferred
async def test_a_page_filled_by_heinums_still_counts_the_names(env):
    users = [await env.user(f"fan{i} 1000") for i in range(60)]  # heiNums 1000001..1000060
    page = await env.search.search("1000", 0, 20)  # 60 heiNums fill the page; 60 names hold "1000"
    assert page.uids == users[:20]
    assert page.total == 60 + 60 and page.estimated  # the names are not checked against heiNums
    page = await env.search.search("1000", 60, 20)  # the names, without the users already listed
    assert page.uids == []
