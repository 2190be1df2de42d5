"""
Schemathesis against a real node, on every documented HTTP surface.

Each surface's OpenAPI document is fetched from the node (`/api/openapi.json`
for the heihei app and /messageserver, the boss site's `/openapi.json`,
`/im/openapi.json` with the API key, `/admin/openapi.json` with the bearer
token) and every operation gets a bounded number of positive and negative
examples from a fixed seed, sent with valid credentials most of the time (a
session token, a correct HMAC signature, the API keys, a login ticket, the
bearer token) so authenticated operations are reached, not only refused.

What is checked is what the surfaces promise, taught to schemathesis:
- no 5xx and no hang (each request has a deadline);
- every answer is JSON in the surface's documented envelope
  (content type and response-schema conformance);
- invalid input is refused: these APIs answer API-level errors with HTTP 200
  and an error code in the body (`errorcode` != 0 for the heihei app, `code`
  other than 1/0 for boss), so a 200 whose body says error counts as the 4xx
  that schemathesis' `negative_data_rejection` expects; J-IM and the admin
  API use real statuses;
- valid input is not refused as malformed (a 4xx, or the surface's own
  "bad parameter" answer: 700 for the heihei app, 400 `missing x` for boss),
  since the documents are built from the very declarations the routes check;
- the API-key and bearer surfaces answer 401 to a request without their
  credential.

Failures that are known defects are listed in KNOWN_DEFECTS with the
regression test that pins each down; anything else fails the test.

schemathesis' HTTP client is blocking and the node runs on this process's
reactor, so the examples run in a thread while the reactor serves them.
The documents declare no links, so there is no stateful phase.
"""

from __future__ import annotations

import json
import re
import time
import warnings
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

import hypothesis
import orjson
import pytest_twisted
import requests
import schemathesis
import treq
from hypothesis import HealthCheck, strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as oa_checks
from twisted.internet.threads import deferToThread

from heihei.boss.ids import ID_RE
from heihei.boss.tickets import make_ticket
from heihei.jim.store import AGENT
from heihei.web.kit.auth import sign
from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra, outside  # noqa: F401 (the fixture)
from tests.heihei.helpers import sign_in

#: examples per operation and generation mode (positive, negative)
EXAMPLES = 8
SEED = 20261101
#: a request that takes longer than this is a hang
REQUEST_TIMEOUT_S = 10.0
ADMIN_TOKEN = "schemathesis-admin-token"
JIM_KEY = "schemathesis-jim-key"
BOSS_KEY = "schemathesis-boss-key"
BOSS_SECRET = "schemathesis-boss-login-secret"
SERVER_SECRET = "test-server-secret"  # tests.heihei.conftest.SECRET, what heihei_extra configures


HEIHEI, BOSS, JIM, ADMIN = "heihei /api and /messageserver", "boss", "J-IM /im/vanke", "admin"
ALL = (HEIHEI, BOSS, JIM, ADMIN)
REGRESSIONS = "tests/web/test_fuzz_regressions.py::"
ACCEPTED, REJECTED, BAD_ANSWER = ("Schema-violating request accepted", "Schema-valid request rejected",
                                  "Response violates schema")
#: failures that are known defects of heihei, each pinned down by a regression test that fails until it
#: is fixed: (surfaces, operation label (regex), schemathesis' failure title, the example (regex over the
#: request and the answer), the test)
KNOWN_DEFECTS: list[tuple[tuple[str, ...], str, str, str, str]] = [
]


# -- what a surface's answer says ----------------------------------------------------------------


def _body(response: Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def heihei_error(response: Response) -> bool:
    body = _body(response)
    return isinstance(body, dict) and body.get("errorcode") not in (0, None)


#: what the kit says of a parameter it refuses (heihei.web.kit.params, readers), not a domain refusal
KIT_WHY = re.compile(r"(required|must be [^)]*|longer than [^)]*|shorter than [^)]*|larger than [^)]*|bad format"
                     r"|out of range|not valid [^)]*|nesting deeper [^)]*|expected a JSON object|more than \d+)")


def heihei_bad_parameter(response: Response) -> bool:
    """The kit's refusal of a declared parameter: 700 参数错误: name (why)."""
    body = _body(response)
    return isinstance(body, dict) and body.get("errorcode") == 700 and \
        re.search(r"\(" + KIT_WHY.pattern + r"\)$", str(body.get("errormsg"))) is not None


def boss_error(response: Response) -> bool:
    body = _body(response)
    return isinstance(body, dict) and body.get("code") not in (0, 1, None)


def boss_bad_parameter(response: Response) -> bool:
    """The boss surface's refusal of a parameter: 400 `missing x`, `missing or bad userid`, the kit's why."""
    body = _body(response)
    return isinstance(body, dict) and body.get("code") == 400 and \
        re.match(r"missing |" + KIT_WHY.pattern, str(body.get("message"))) is not None


def status_error(response: Response) -> bool:
    return response.status_code >= 400


def admin_bad_parameter(response: Response) -> bool:
    """The admin surface's refusal of a declared parameter: 400 `{"error": "name: why"}` (a domain refusal
    of a well-formed request, "endTime must be after startTime", is not one)."""
    body = _body(response)
    return response.status_code == 400 and isinstance(body, dict) and \
        re.match(r"[\w.]+: ", str(body.get("error"))) is not None


def conventional(response: Response, says_error: Callable[[Response], bool]) -> Response:
    """The answer as a REST client would have got it: a 200 whose body says error becomes a 400, and a
    400 whose body does not say error (here: a refusal that is not of a malformed parameter) a 422."""
    if response.status_code == 200 and says_error(response):
        status, message = 400, "Bad Request"
    elif response.status_code == 400 and not says_error(response):
        status, message = 422, "Unprocessable Content"
    else:
        return response
    return Response(status, dict(response.headers), response.content, response.request, response.elapsed,
                    response.verify, message=message, http_version=response.http_version,
                    encoding=response.encoding)


def conventional_check(check, says_error: Callable[[Response], bool], name: str):
    """A schemathesis check reading the surface's error convention (an error in a 200's body)."""

    def run(ctx, response, case):
        return check(ctx, conventional(response, says_error), case)

    run.__name__ = name
    return run


def refused_without(header: bytes):
    """A surface whose every operation needs a credential header answers 401 to a request without it
    (the case's own generated header, if any, is not a credential: each surface has one secret)."""

    def check(ctx, response, case):
        sent = response.request.headers.get(header.decode())
        if sent is None and response.status_code not in (401, 413, 414, 431):  # the site refuses those first
            raise Failure(operation=case.operation.label, title="Served without credentials",
                          message=f"no {header.decode()} header, answered {response.status_code} instead of 401")
        return None

    check.__name__ = "refused_without_credentials"
    return check


#: statuses that refuse a request as such: too large (413), URI too long (414), headers too large (431)
SITE_LIMITS = ["413", "414", "431"]
CONFIG = {"generation": {"allow-extra-parameters": False}, "checks": {
    "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "409", "415", "422",
                                                      "429", *SITE_LIMITS]},
    # 422: a well-formed request that a rule no schema can say refuses (an activity ending before it starts)
    "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429",
                                                       *SITE_LIMITS]},
}}
CHECKS = [not_a_server_error, oa_checks.status_code_conformance, oa_checks.content_type_conformance,
          oa_checks.response_schema_conformance]


# -- sending a case with credentials ----------------------------------------------------------------


def server_view(prepared: requests.PreparedRequest) -> dict[str, Any]:
    """The parameters as heihei.web.kit.readers.query_form_json reads them: the query string, then a
    form or JSON object body over it (first of repeated values; JSON keeps its types)."""
    view: dict[str, Any] = {}
    query = urllib.parse.urlsplit(prepared.url).query
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        view[key] = values[0]
    content_type = (prepared.headers.get("content-type") or "").lower()
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if content_type.startswith("application/x-www-form-urlencoded"):
        for key, values in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
            view[key] = values[0]
    elif "json" in content_type and body.strip():
        try:
            value = orjson.loads(body)  # as the server parses it (an integer past 64 bits is a float)
        except ValueError:
            value = None
        if isinstance(value, dict):
            view.update(value)
    return view


def set_param(prepared: requests.PreparedRequest, name: str, value: str) -> None:
    """Put `name=value` where the server reads it first: a JSON object body, a form body, else the
    query string (any other copy of it removed)."""
    parts = urllib.parse.urlsplit(prepared.url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != name]
    content_type = (prepared.headers.get("content-type") or "").lower()
    body = prepared.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    placed = False
    if "json" in content_type and body and body.strip():
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            doc[name] = value
            prepared.prepare_body(None, None, json=doc)
            prepared.headers["Content-Type"] = content_type
            placed = True
    elif content_type.startswith("application/x-www-form-urlencoded"):
        fields = [(k, v) for k, v in urllib.parse.parse_qsl((body or b"").decode("utf-8", "replace"),
                                                            keep_blank_values=True) if k != name]
        fields.append((name, value))
        prepared.body = urllib.parse.urlencode(fields).encode("utf-8")
        prepared.headers["Content-Length"] = str(len(prepared.body))
        placed = True
    if not placed:
        query.append((name, value))
    prepared.url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@dataclass
class Surface:
    """One documented surface as this test drives it."""

    name: str
    document_url: str
    base_url: str
    #: the answer refuses the request (any reason)
    says_error: Callable[[Response], bool]
    #: the answer refuses a parameter as malformed (what a schema-valid request must never get)
    says_bad_parameter: Callable[[Response], bool]
    #: (prepared request, a drawn choice in [0, 1), what a negative case made invalid or None) -> adds
    #: credentials to the request (or not)
    credentials: Callable[[requests.PreparedRequest, float, set[str] | None], None]
    document_headers: dict[str, list[str]] = field(default_factory=dict)
    extra_checks: tuple = ()
    #: operations sent last ("METHOD /path"): those that end the credentials the others use
    last: tuple[str, ...] = ()


def heihei_credentials(token: str):
    def add(prepared: requests.PreparedRequest, choice: float, negated: set[str] | None) -> None:
        path = urllib.parse.urlsplit(prepared.url).path
        if choice < 0.15:
            return  # as generated
        present = server_view(prepared)
        if negated is not None:
            # a negative case: a credential it left out stays out, one it made invalid stays invalid
            negated = negated | {name for name in ("signature", "token") if name not in present}
        negated = negated or set()
        if path.startswith("/messageserver/"):
            if "signature" not in negated:
                # the HMAC of every other parameter, as the server will read them
                view = server_view(prepared)
                view.pop("signature", None)
                set_param(prepared, "signature", sign(SERVER_SECRET, view))
        elif "token" not in negated:
            set_param(prepared, "token", token)

    return add


def boss_credentials(prepared: requests.PreparedRequest, choice: float, negated: set[str] | None) -> None:
    negated = negated or set()
    if choice < 0.15 or "header" in negated:
        return
    if choice < 0.6 or negated & {"userid", "creator", "ticket"}:
        prepared.headers["X-Api-Key"] = BOSS_KEY
        return
    # a user's login ticket for the user the request acts as (userid, else the creator for /creategrp)
    view = server_view(prepared)
    user = str(view.get("userid") or view.get("creator") or "").strip()
    if not ID_RE.fullmatch(user):
        prepared.headers["X-Api-Key"] = BOSS_KEY  # no user a ticket could be for
        return
    set_param(prepared, "ticket", make_ticket(BOSS_SECRET, user, int(time.time()) + 3600))


def header_credentials(name: str, value: str):
    def add(prepared: requests.PreparedRequest, choice: float, negated: set[str] | None) -> None:
        if choice >= 0.1 and "header" not in (negated or set()):
            prepared.headers[name] = value

    return add


# -- running ----------------------------------------------------------------------------------------


def negated(case) -> set[str] | None:
    """What a negative case made invalid (None for a positive case): parameter names, and "header" when
    it is a header (the credential header is then what it tests). Credentials are not put over what is
    being tested."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return None
    names = {"header"} if any(location == ParameterLocation.HEADER and component.mode.is_negative
                              for location, component in meta.components.items()) else set()
    data = meta.phase.data
    names.add(getattr(data, "parameter", None) or "")
    for mutation in getattr(data, "mutations", ()):
        names.add(mutation.parameter or "")
        names.update(str(part) for part in mutation.path)
    return names


@dataclass(frozen=True)
class Found:
    """One distinct failure: an operation, a generation mode, a check's title, and the example."""

    surface: str
    operation: str
    mode: str
    title: str
    status: int
    answer: bytes
    text: str

    def known(self) -> str | None:
        """The regression test that pins this failure down, if it is a known defect."""
        for surfaces, operation, title, example, test in KNOWN_DEFECTS:
            if (self.surface in surfaces and re.fullmatch(operation, self.operation) and title == self.title
                    and re.search(example, self.text)):
                return test
        return None


def describe(failure, prepared: requests.PreparedRequest, response, elapsed: float) -> str:
    message = "\n    ".join(failure.message.splitlines()[:4])
    body = prepared.body if not isinstance(prepared.body, bytes) else prepared.body.decode("utf-8", "replace")
    return (f"{message}\n  request: {prepared.method} {prepared.url[:1000]} "
            f"{str(body or '')[:300]!r}\n  answer ({elapsed:.2f} s): {response.status_code} "
            f"{response.content[:300]!r}")


#: how an operation's document words a conditional requirement (heihei.web.kit.openapi._describe), which
#: query parameters cannot carry as a schema
CONDITION = re.compile(r"\(required when (\w+) is ([^)\s]+)\)")
REFUSED_AS_MISSING = re.compile(r"(\w+) \(required\)")


def conditions_of(operation) -> dict[str, tuple[str, str]]:
    """parameter -> (other parameter, value): the conditions the operation's descriptions state."""
    out = {}
    for p in operation.definition.raw.get("parameters", []):
        match = CONDITION.search(p.get("description", ""))
        if match:
            out[p["name"]] = (match.group(1), match.group(2))
    return out


def unless_documented_condition(check, conditions: dict[str, tuple[str, str]]):
    """A refusal of a parameter as missing is what the document says when its description makes it
    required under a condition the request meets (openId when accountSource is Wechat)."""

    def run(ctx, response, case):
        body = _body(response)
        text = str(body.get("errormsg") or body.get("message") or "") if isinstance(body, dict) else ""
        missing = REFUSED_AS_MISSING.search(text)
        if missing and missing.group(1) in conditions:
            other, value = conditions[missing.group(1)]
            if str(server_view(response.request).get(other)) == value:
                return None
        return check(ctx, response, case)

    run.__name__ = check.__name__
    return run


def run_operation(surface: Surface, operation, mode: GenerationMode, session: requests.Session) -> list[Found]:
    """`EXAMPLES` examples of one operation in one mode; the distinct failures."""
    found: dict[str, Found] = {}
    checks = CHECKS + [
        conventional_check(oa_checks.negative_data_rejection, surface.says_error, "negative_data_rejection"),
        unless_documented_condition(conventional_check(oa_checks.positive_data_acceptance,
                                                       surface.says_bad_parameter, "positive_data_acceptance"),
                                    conditions_of(operation)),
        *surface.extra_checks]

    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(HealthCheck), print_blob=False)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode),
                      choice=st.floats(min_value=0, max_value=1, exclude_max=True))
    def examples(case, choice):
        kwargs = case.as_transport_kwargs(base_url=surface.base_url)
        prepared = session.prepare_request(requests.Request(
            **{k: v for k, v in kwargs.items() if k in ("method", "url", "headers", "files", "data", "params",
                                                        "auth", "cookies", "json")}))
        surface.credentials(prepared, choice, negated(case))
        started = time.monotonic()
        try:
            response = session.send(prepared, timeout=REQUEST_TIMEOUT_S, allow_redirects=False)
        except requests.Timeout:
            found.setdefault("hang", Found(surface.name, operation.label, mode.value, "No answer (hang)", 0, b"",
                                           f"no answer within {REQUEST_TIMEOUT_S} s to {prepared.method} "
                                           f"{prepared.url[:400]} {prepared.body!r:.300}"))
            return
        elapsed = time.monotonic() - started
        try:
            case.validate_response(response, checks=checks,
                                   transport_kwargs={"base_url": surface.base_url, "timeout": REQUEST_TIMEOUT_S})
        except FailureGroup as group:
            for failure in group.exceptions:
                found.setdefault(failure.title, Found(surface.name, operation.label, mode.value, failure.title,
                                                      response.status_code, response.content,
                                                      describe(failure, prepared, response, elapsed)))

    examples()
    return list(found.values())


def run_surface(surface: Surface, document: dict) -> tuple[list[Found], int]:
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config.from_dict(CONFIG))
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: (op.label in surface.last, op.label))
    found: list[Found] = []
    with requests.Session() as session:
        hypothesis.seed(SEED)
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                found += run_operation(surface, operation, mode, session)
    return found, len(operations)


async def fetch_document(surface: Surface) -> dict:
    response = await treq.get(surface.document_url, headers=surface.document_headers)
    assert response.code == 200, surface.document_url
    return json.loads(await response.content())


async def check_surface(surface: Surface) -> None:
    document = await fetch_document(surface)
    started = time.monotonic()
    found, count = await deferToThread(run_surface, surface, document)
    assert count > 0
    known = [(f, f.known()) for f in found if f.known()]
    for f, test in known:
        warnings.warn(f"known defect ({test}): {f.operation} [{f.mode}] {f.title}: {f.status} {f.answer[:120]!r}")
    new = [f for f in found if not f.known()]
    assert not new, f"{surface.name}: {len(new)} failure(s) in {time.monotonic() - started:.1f} s:\n\n" \
        + "\n\n".join(f"{f.operation} [{f.mode}] {f.title}\n    {f.text}" for f in new)


def base(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest_twisted.ensureDeferred
async def test_heihei_app_and_messageserver(nodes, outside):  # noqa: F811
    node = await nodes.start("a", heihei_extra(outside))
    token, _ = await sign_in(node, outside, "13800000001")
    url = http_url(node, "/api/openapi.json")
    await check_surface(Surface(HEIHEI, url, base(url), heihei_error, heihei_bad_parameter,
                                heihei_credentials(token),
                                last=("GET /api/user/sign-out", "POST /api/user/sign-out")))


@pytest_twisted.ensureDeferred
async def test_boss_site(nodes):
    node = await nodes.start("a", {"boss": {"api_key": BOSS_KEY, "login_secret": BOSS_SECRET}})
    url = http_url(node, "/openapi.json", listener="boss")
    await check_surface(Surface(BOSS, url, base(url), boss_error, boss_bad_parameter, boss_credentials))


@pytest_twisted.ensureDeferred
async def test_jim_vanke_api(nodes):
    node = await nodes.start("a", {"jim": {"api_key": JIM_KEY}})
    # an agent, so that a visitor's getReceiver is answered (without one it is 503: nobody to serve)
    answer = await treq.post(http_url(node, "/im/vanke/initUser"), json={"senderId": "agent-1", "type": AGENT},
                             headers={"X-Api-Key": [JIM_KEY]})
    assert answer.code == 200, await answer.content()
    url = http_url(node, "/im/openapi.json")
    await check_surface(Surface(JIM, url, base(url), status_error, status_error,
                                header_credentials("X-Api-Key", JIM_KEY), {"X-Api-Key": [JIM_KEY]},
                                extra_checks=(refused_without(b"X-Api-Key"),)))


@pytest_twisted.ensureDeferred
async def test_admin_api(nodes):
    node = await nodes.start("a", {"admin": {"token": ADMIN_TOKEN}})
    url = http_url(node, "/admin/openapi.json")
    await check_surface(Surface(ADMIN, url, base(url), status_error, admin_bad_parameter,
                                header_credentials("Authorization", f"Bearer {ADMIN_TOKEN}"),
                                {"Authorization": [f"Bearer {ADMIN_TOKEN}"]},
                                extra_checks=(refused_without(b"Authorization"),)))
