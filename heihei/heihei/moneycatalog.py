"""
What things cost in the heihei app: gifts (`live/gift-info`), the barrage
price, recharge packages per channel (`payment/list-package`), point-to-gold
packages (`payment/list-p2g-package`) and the cash rate of 黑票
(`payment/cash-info`, `pay-req`).

One JSON document (`[payment] money_file`, default `resources/money.json`),
copied into Redis on first use so that every node serves the same prices and
operators change them through the admin API (`PUT /admin/heihei/money`)
without a restart. An order copies its package's price and gold when it is
created, so a later price change never touches an order already made.

    {"gifts": [{"id", "name", "gold", "point", "exp", "cl": [r, g, b], "image", "icon", "type"}],
     "giftExpire_s": 60,
     "bullet": {"gold", "point"},
     "packages": [{"id", "channel": "wechat"|"alipay"|"iap", "productId", "desc", "gold",
                   "payMoney" (fen), "originMoney" (fen)}],
     "p2g": [{"id", "desc", "point", "gold"}],
     "cash": {"point", "fen", "minFen", "maxFen", "rule"}}

`point` of a gift is what the receiver earns (黑票) for it; `cash` says that
`point` 黑票 are worth `fen` fen.
"""

from __future__ import annotations

from typing import Any

from heihei.heihei.catalogs import Catalog, CatalogError, _text, _url

CHANNELS = ("wechat", "alipay", "iap")
MAX_GIFTS = 500
MAX_PACKAGES = 200
MAX_PRICE = 10 ** 9


def _int(where: str, value: Any, *, minimum: int = 0, maximum: int = MAX_PRICE) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise CatalogError(f"{where} must be an integer from {minimum} to {maximum}")
    return value


def _obj(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where} must be an object")
    return value


def _list(doc: dict, name: str, limit: int) -> list:
    value = doc.get(name)
    if not isinstance(value, list) or len(value) > limit:
        raise CatalogError(f"{name} must be a list of at most {limit}")
    return value


def _unique(name: str, entries: list[dict[str, Any]]) -> None:
    ids = [e["id"] for e in entries]
    if len(ids) != len(set(ids)):
        raise CatalogError(f"an id appears twice in {name}")


def check_money(doc: Any) -> dict[str, Any]:
    doc = _obj("the money catalog", doc)
    unknown = set(doc) - {"gifts", "giftExpire_s", "bullet", "packages", "p2g", "cash"}
    if unknown:
        raise CatalogError(f"unknown fields: {', '.join(sorted(unknown))}")
    gifts = []
    for i, g in enumerate(_list(doc, "gifts", MAX_GIFTS)):
        w = f"gifts[{i}]"
        g = _obj(w, g)
        cl = g.get("cl", [255, 255, 255])
        if not isinstance(cl, list) or len(cl) != 3:
            raise CatalogError(f"{w}.cl must be [r, g, b]")
        gold = _int(f"{w}.gold", g.get("gold"))
        gifts.append({"id": _int(f"{w}.id", g.get("id"), minimum=1, maximum=2 ** 31 - 1),
                      "name": _text(f"{w}.name", g.get("name"), 50), "gold": gold,
                      "point": _int(f"{w}.point", g.get("point", gold)),
                      "exp": _int(f"{w}.exp", g.get("exp", 0)),
                      "cl": [_int(f"{w}.cl", c, maximum=255) for c in cl],
                      "image": _url(f"{w}.image", g.get("image")), "icon": _url(f"{w}.icon", g.get("icon")),
                      "type": _int(f"{w}.type", g.get("type", 1), maximum=5),
                      "desc": _text(f"{w}.desc", g.get("desc", ""), 200)})
    _unique("gifts", gifts)
    bullet = _obj("bullet", doc.get("bullet", {"gold": 1, "point": 1}))
    packages = []
    for i, p in enumerate(_list(doc, "packages", MAX_PACKAGES)):
        w = f"packages[{i}]"
        p = _obj(w, p)
        if p.get("channel") not in CHANNELS:
            raise CatalogError(f"{w}.channel must be one of {', '.join(CHANNELS)}")
        pay = _int(f"{w}.payMoney", p.get("payMoney"), minimum=1)
        packages.append({"id": _int(f"{w}.id", p.get("id"), minimum=1, maximum=2 ** 31 - 1), "channel": p["channel"],
                         "productId": _text(f"{w}.productId", p.get("productId"), 64),
                         "desc": _text(f"{w}.desc", p.get("desc", ""), 100),
                         "gold": _int(f"{w}.gold", p.get("gold"), minimum=1),
                         "payMoney": pay, "originMoney": _int(f"{w}.originMoney", p.get("originMoney", pay))})
    _unique("packages", packages)
    p2g = []
    for i, p in enumerate(_list(doc, "p2g", MAX_PACKAGES)):
        w = f"p2g[{i}]"
        p = _obj(w, p)
        p2g.append({"id": _int(f"{w}.id", p.get("id"), minimum=1, maximum=2 ** 31 - 1),
                    "desc": _text(f"{w}.desc", p.get("desc", ""), 100),
                    "point": _int(f"{w}.point", p.get("point"), minimum=1),
                    "gold": _int(f"{w}.gold", p.get("gold"), minimum=1)})
    _unique("p2g", p2g)
    cash = _obj("cash", doc.get("cash"))
    checked_cash = {"point": _int("cash.point", cash.get("point"), minimum=1),
                    "fen": _int("cash.fen", cash.get("fen"), minimum=1),
                    "minFen": _int("cash.minFen", cash.get("minFen", 100), minimum=1),
                    "maxFen": _int("cash.maxFen", cash.get("maxFen", 2_000_000), minimum=1),
                    "rule": _text("cash.rule", cash.get("rule", ""), 500)}
    if checked_cash["minFen"] > checked_cash["maxFen"]:
        raise CatalogError("cash.minFen is above cash.maxFen")
    return {"gifts": gifts, "giftExpire_s": _int("giftExpire_s", doc.get("giftExpire_s", 60), maximum=86400),
            "bullet": {"gold": _int("bullet.gold", bullet.get("gold")),
                       "point": _int("bullet.point", bullet.get("point"))},
            "packages": packages, "p2g": p2g, "cash": checked_cash}


class MoneyCatalog:
    """The money document in Redis; `absolute` makes `/static/...` paths full URLs.

    Gifts are priced from a copy in memory (`priced_gift`): the ledger script that charges a gift
    checks that the catalog's version is still the copy's, and a gift priced from an older copy is
    priced again from Redis (heihei.heihei.money.Money.send_gift). So a gift costs no catalog read
    and no JSON parse, and still never charges a price an operator has changed, on any node."""

    def __init__(self, store, initial: dict[str, Any], *, absolute) -> None:
        self.doc = Catalog(store, "money", initial)
        self.absolute = absolute
        #: (gift id -> entry, version) of the last document read, or None
        self._gifts: tuple[dict[int, dict[str, Any]], int] | None = None

    async def get(self) -> dict[str, Any]:
        doc, version = await self.doc.get_versioned()
        self._remember(doc, version)
        return doc

    def _remember(self, doc: dict[str, Any], version: int) -> None:
        if self._gifts is None or self._gifts[1] != version:
            self._gifts = ({g["id"]: g for g in doc["gifts"]}, version)

    async def put(self, doc: Any) -> dict[str, Any]:
        checked = check_money(doc)  # CatalogError: the caller's 400
        await self.doc.put(checked)
        self._gifts = None
        return checked

    @property
    def version_key(self) -> str:
        return self.doc.version_key

    async def priced_gift(self, gift_id: int, *, fresh: bool = False) -> tuple[dict[str, Any] | None, int]:
        """(the gift's entry or None, the catalog version it is from), from memory unless `fresh` (or
        nothing was read yet). The entry is shared: read it, never change it."""
        if fresh or self._gifts is None:
            await self.get()
        gifts, version = self._gifts
        return gifts.get(gift_id), version

    async def gift(self, gift_id: int) -> dict[str, Any] | None:
        return next((g for g in (await self.get())["gifts"] if g["id"] == gift_id), None)

    async def gift_info(self) -> dict[str, Any]:
        doc = await self.get()
        return {"expireTime": doc["giftExpire_s"],
                "gifts": [{"id": g["id"], "name": g["name"], "gold": g["gold"], "exp": g["exp"], "cl": g["cl"],
                           "image": self.absolute(g["image"]), "icon": self.absolute(g["icon"]), "type": g["type"]}
                          for g in doc["gifts"]]}

    async def package(self, package_id: int) -> dict[str, Any] | None:
        return next((p for p in (await self.get())["packages"] if p["id"] == package_id), None)

    async def packages(self, channel: str) -> list[dict[str, Any]]:
        return [p for p in (await self.get())["packages"] if p["channel"] == channel]

    async def p2g_package(self, package_id: int) -> dict[str, Any] | None:
        return next((p for p in (await self.get())["p2g"] if p["id"] == package_id), None)
