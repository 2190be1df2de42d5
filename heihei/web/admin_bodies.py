"""
The admin API's request bodies, declared so its OpenAPI document says what each
route accepts: the JSON body itself (not a `body` field), its fields, and the
rules the operators' checks apply (heihei.live.activities, heihei.heihei.catalogs,
heihei.heihei.topics). The checks stay where they are; these are their shapes.
"""

from __future__ import annotations

from typing import Any

from heihei.heihei.catalogs import BANNER_TYPES, MAX_BANNERS, MAX_GIFT_RESOURCES, MAX_URL_CHARS
from heihei.heihei.livemods import SYSTEM_TEXT_MAX
from heihei.heihei.people import OPERATOR_USER_TYPES
from heihei.heihei.topics import PINNED
from heihei.live.activities import ACTIVITY_ID, MAX_UNIX_S, TEXT_FIELDS
from heihei.live.operators import MAX_MUTE_S
from heihei.web.kit.params import Param, boolean, long, number, string

#: an absolute http(s) URL or a path on this server (catalogs' `_url`)
URL = r"(https?://|/(?!/))[\s\S]*"


def body(*fields: Param, required: bool = True, description: str = "", schema: dict[str, Any] | None = None) -> Param:
    """The request's JSON body (the admin surface reads it whole into `body`), with exactly these fields."""
    return Param("body", "json", required=required, description=description, where="body", fields=fields,
                 open_object=False, schema=schema)


def _text(name: str, max_chars: int, required: bool = False) -> Param:
    # the operators' checks take "" as a value, not as "absent"
    return string(name, required=required, max_length=max_chars, empty_is_absent=False)


ACTIVITY = body(*(_text(name, limit, required=name == "title") for name, limit in TEXT_FIELDS.items()),
                long("startTime", minimum=0, maximum=MAX_UNIX_S, description="Unix seconds"),
                long("endTime", minimum=0, maximum=MAX_UNIX_S, description="Unix seconds, after startTime"),
                string("activityId", required=False, pattern=ACTIVITY_ID.pattern.strip("^$"), max_length=64,
                       description="the path's activity id, if given"),
                description="the activity's fields (seed names, times in Unix seconds)")
MUTE = body(required=False, schema={
    "type": "object", "additionalProperties": False,
    "properties": {"duration_s": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                                  "maximum": MAX_MUTE_S, "description": "seconds; absent: until unmuted"}}})
USER_TYPE = body(string("userType", enum=OPERATOR_USER_TYPES))
RECOMMEND = body(number("weight", description="highest first"))
BAN = body(_text("reason", 1024), required=False)
#: a system notice in heihei live rooms (heihei.heihei.livemods: not blank once trimmed)
NOTICE = body(string("text", max_length=SYSTEM_TEXT_MAX, pattern=r"[\s\S]*\S[\s\S]*"))
#: an operator's grant or removal of diamonds (heihei.heihei.operators.grant_gold)
GOLD = body(long("delta", description="diamonds in (> 0) or out (< 0); never 0"),
            string("reason", max_length=200, pattern=r"[\s\S]*\S[\s\S]*", empty_is_absent=False))
REJECT = body(_text("reason", 1024), required=False)
#: an operator's money freeze or unfreeze (heihei.heihei.moneyfreeze: the reason is not blank)
MONEY_FREEZE = body(boolean("frozen", description="true: spending refused with 721; false: allowed again"),
                    string("reason", max_length=200, pattern=r"[\s\S]*\S[\s\S]*", empty_is_absent=False))
#: the money catalog (docs/heihei.md, money): its checks are the catalog's own
MONEY_CATALOG = body(schema={"type": "object", "description": "gifts, bullet price, packages per channel, "
                                                            "p2g packages and the cash rate (docs/heihei.md)"})
RESOLVE = body(_text("resolution", 1024), boolean("ban", required=False), required=False)


def _url(max_chars: int = MAX_URL_CHARS) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": f"^{URL}$"}


BANNERS = body(schema={
    "type": "object", "required": ["banners"], "additionalProperties": False,
    "properties": {"banners": {"type": "array", "maxItems": MAX_BANNERS, "items": {
        "type": "object", "required": ["cover", "type", "link"],
        "properties": {"desc": {"type": "string", "maxLength": 100}, "cover": _url(),
                       "type": {"type": "integer", "enum": list(BANNER_TYPES)},
                       "link": {"type": "string", "maxLength": MAX_URL_CHARS}}}}}})
_GIFT = {"type": "object", "required": ["id", "attr_file"],
         "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 2 ** 31 - 1},
                        "attr_file": _url(),
                        "file_md5": {"type": "string", "nullable": True, "pattern": "^[0-9A-Fa-f]{1,64}$"}}}
GIFT_RESOURCES = body(schema={
    "type": "object", "required": ["resources"], "additionalProperties": False,
    "description": "gift ids unique over both lists",
    "properties": {"resources": {"type": "array", "maxItems": MAX_GIFT_RESOURCES, "items": _GIFT},
                   "history": {"type": "array", "maxItems": MAX_GIFT_RESOURCES, "items": _GIFT}}})
TOPIC = body(schema={
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"id": {"type": "integer", "description": "the path's id, if given"},
                   "name": {"type": "string", "minLength": 1, "maxLength": 50, "pattern": r"\S"},
                   "content": {"type": "string", "maxLength": 1000},
                   "catName": {"type": "string", "maxLength": 50},
                   "img": {"type": "string", "maxLength": 1024, "pattern": f"^({URL})?$"},
                   "isTop": {"type": "integer", "enum": [0, 1]}, "type": {"type": "integer", "enum": [0, 1]},
                   "order": {"type": "integer", "minimum": 0, "maximum": PINNED - 1}}})
