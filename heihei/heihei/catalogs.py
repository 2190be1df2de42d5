"""
Operator-managed catalogs of the heihei app: the home-page banners
(`/api/social/get-banner`) and the gift resources
(`/api/social/gift-resources`).

Each catalog is one JSON document in Redis, the same for every node. A fresh
Redis gets the catalog file's content the first time it is read (`[social]
banners_file`, `gift_resources_file`; by default the files shipped in
`resources/`), so a new server has content; from then on operators change it
(admin API, manhole) and the file is not read again. Files are checked when
the node starts: a broken catalog file is a start-up error.

A URL in a catalog may be absolute (`http://`, `https://`) or a path on this
server (`/static/img/banner-welcome.png`), which answers prefix with
`[heihei] img_path` (default `[http] public_url`).

Banners: `{"banners": [{"desc", "cover", "type": 1 user | 2 live | 3 url,
"link"}]}`, at most `MAX_BANNERS`.

Gift resources: `{"resources": [{"id", "attr_file", "file_md5"}],
"history": [...]}`: `resources` are the current gifts' downloadable
resources, `history` those of gifts no longer sold, which clients still need
to show old messages (the seed's `historyGiftRes`). `file_md5` may be null.
Issue 19's gift catalog extends this file.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from heihei.core.errors import Refused
from heihei.heihei.accounts import REALM
from heihei.heihei.errors import BAD_PARAMETER
from heihei.store.keys import key
from heihei.store.scripts import Script
from heihei.textnum import is_digits

MAX_BANNERS = 20
MAX_GIFT_RESOURCES = 1000
MAX_URL_CHARS = 1024
BANNER_TYPES = (1, 2, 3)
_MD5 = re.compile(r"[0-9A-Fa-f]{1,64}")


class CatalogError(ValueError):
    """A catalog document that cannot be served: the message says where."""


def _url(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL_CHARS \
            or not value.startswith(("http://", "https://", "/")) or value.startswith("//"):
        raise CatalogError(f"{where} must be an http(s) URL or a path starting with /")
    return value


def _text(where: str, value: Any, max_chars: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > max_chars:
        raise CatalogError(f"{where} must be a string of at most {max_chars} characters")
    return value


def check_banners(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("banners"), list) or set(doc) - {"banners"}:
        raise CatalogError('a banner catalog is {"banners": [...]}')
    banners = doc["banners"]
    if len(banners) > MAX_BANNERS:
        raise CatalogError(f"at most {MAX_BANNERS} banners")
    out = []
    for i, b in enumerate(banners):
        where = f"banners[{i}]"
        if not isinstance(b, dict):
            raise CatalogError(f"{where} must be an object")
        kind = b.get("type")
        if kind not in BANNER_TYPES or isinstance(kind, bool):
            raise CatalogError(f"{where}.type must be 1 (user), 2 (live) or 3 (url)")
        out.append({"desc": _text(f"{where}.desc", b.get("desc", ""), 100), "cover": _url(f"{where}.cover", b.get("cover")),
                    "type": kind, "link": _text(f"{where}.link", b.get("link"), MAX_URL_CHARS)})
    return out


def _gift_entry(where: str, g: Any) -> dict[str, Any]:
    if not isinstance(g, dict):
        raise CatalogError(f"{where} must be an object")
    gift_id = g.get("id")
    if isinstance(gift_id, bool) or not isinstance(gift_id, int) or not 0 < gift_id < 2 ** 31:
        raise CatalogError(f"{where}.id must be a positive integer")
    md5 = g.get("file_md5")
    if md5 is not None and (not isinstance(md5, str) or not _MD5.fullmatch(md5)):
        raise CatalogError(f"{where}.file_md5 must be hex digits or null")
    return {"id": gift_id, "attr_file": _url(f"{where}.attr_file", g.get("attr_file")), "file_md5": md5}


def check_gift_resources(doc: Any) -> dict[str, list[dict[str, Any]]]:
    # "resources" is required and nothing else is accepted: a document of other keys would
    # otherwise replace the catalog with an empty one
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list) \
            or not isinstance(doc.get("history", []), list) or set(doc) - {"resources", "history"}:
        raise CatalogError('a gift resource catalog is {"resources": [...], "history": [...]}')
    current = [_gift_entry(f"resources[{i}]", g) for i, g in enumerate(doc.get("resources", []))]
    history = [_gift_entry(f"history[{i}]", g) for i, g in enumerate(doc.get("history", []))]
    if len(current) + len(history) > MAX_GIFT_RESOURCES:
        raise CatalogError(f"at most {MAX_GIFT_RESOURCES} gift resources")
    ids = [g["id"] for g in current + history]
    if len(ids) != len(set(ids)):
        raise CatalogError("a gift id appears twice")
    return {"resources": current, "history": history}


def load_file(path: str, check) -> Any:
    try:
        with open(path, "rb") as f:
            doc = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError) as e:
        raise CatalogError(f"{path}: {e}") from None
    try:
        return check(doc)
    except CatalogError as e:
        raise CatalogError(f"{path}: {e}") from None


def parse_gift_ids(text: str | None) -> list[int] | None:
    """`giftIds` "101,102" -> [101, 102]; None/empty -> None (all); 700 for anything else."""
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > 200 or not all(is_digits(p) and len(p) <= 10 for p in parts):
        raise Refused(BAD_PARAMETER, "giftIds (up to 200 gift ids separated by commas)")
    return [int(p) for p in parts]


#: a catalog's document and its version change together (`Catalog.version_key`)
PUT_CATALOG = Script("heihei_catalog_put", r"""
-- KEYS: 1 the document, 2 its version. ARGV: 1 the document. Returns the new version.
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('INCR', KEYS[2])
""")


class Catalog:
    """One JSON document in Redis, first filled from its file.

    Every change also counts up the document's version (`version_key`, 0 until the first change):
    a node may keep a parsed copy in memory and have a script check, in the same round trip as the
    write that depends on it, that the version is still the one it read (heihei.heihei.ledger's
    `price_version`)."""

    def __init__(self, store, name: str, initial: Any) -> None:
        self.store = store
        self.key = key("catalog", REALM, name)
        self.version_key = key("catalogv", REALM, name)
        self.initial = initial

    async def get(self) -> Any:
        return (await self.get_versioned())[0]

    async def get_versioned(self) -> tuple[Any, int]:
        """(the document, its version), read together."""
        raw, version = await self.store.mget([self.key, self.version_key])
        if raw is None:
            await self.store.set(self.key, orjson.dumps(self.initial).decode(), only_if_not_exists=True)
            raw, version = await self.store.mget([self.key, self.version_key])
        return orjson.loads(raw), int(version or 0)

    async def put(self, value: Any) -> None:
        await PUT_CATALOG(self.store, [self.key, self.version_key], [orjson.dumps(value).decode()])


class Catalogs:
    def __init__(self, store, *, banners_file: str, gift_resources_file: str, expire_s: int, base_url: str) -> None:
        self.banners = Catalog(store, "banners", load_file(banners_file, check_banners))
        self.gifts = Catalog(store, "gift-resources", load_file(gift_resources_file, check_gift_resources))
        self.expire_s = expire_s
        self.base_url = base_url.rstrip("/")

    def absolute(self, url: str) -> str:
        return self.base_url + url if url.startswith("/") else url

    async def banner_answer(self) -> dict[str, Any]:
        banners = await self.banners.get()
        return {"expireTime": self.expire_s,
                "banners": [{**b, "cover": self.absolute(b["cover"])} for b in banners]}

    async def gift_answer(self, gift_ids: list[int] | None) -> dict[str, Any]:
        doc = await self.gifts.get()
        wanted = set(gift_ids) if gift_ids is not None else None

        def shown(entries):
            return [{"file_md5": g["file_md5"], "id": g["id"], "attr_file": self.absolute(g["attr_file"])}
                    for g in entries if wanted is None or g["id"] in wanted]

        return {"resources": shown(doc["resources"]), "historyGiftRes": shown(doc["history"])}

    # -- operators ---------------------------------------------------------------------------

    async def put_banners(self, doc: Any) -> list[dict[str, Any]]:
        try:
            banners = check_banners(doc)
        except CatalogError as e:
            raise Refused(BAD_PARAMETER, str(e)) from None
        await self.banners.put(banners)
        return banners

    async def put_gift_resources(self, doc: Any) -> dict[str, list]:
        try:
            checked = check_gift_resources(doc)
        except CatalogError as e:
            raise Refused(BAD_PARAMETER, str(e)) from None
        await self.gifts.put(checked)
        return checked
