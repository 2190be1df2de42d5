"""Fuzz target: the HTTP kit's body readers and parameter checks (heihei.web.kit.readers, params).

One input is a request: `<reader><content type>\\n<query string>\\n<body>`, where
the first byte picks the reader (`query_form_json` of the heihei app,
`query_form` of boss with a `file` field, `json_body` of /im/vanke and /admin).
The raw parameters it reads are then validated against an endpoint declaring
one parameter of every kind. The documented refusal is `BadParameter` (the
kit turns it into the surface's error answer).
"""

import io

import atheris
from twisted.web.http import parse_qs

from common import INSTRUMENTED, main

with atheris.instrument_imports(include=INSTRUMENTED):
    from heihei.web.kit import params as P
    from heihei.web.kit import readers

MAX_BODY_BYTES = 64 * 1024
ENDPOINT = P.Endpoint("/fuzz", "every kind", (
    P.string("s", required=False, max_length=16, pattern=r"[a-z]*"), P.string("e", required=False, enum=("a", "b")),
    P.long("l", required=False, minimum=0), P.integer("i", required=False, maximum=10),
    P.number("n", required=False), P.boolean("b", required=False), P.json_object("j", required=False, max_length=512),
    P.upload("file", required=False), P.string("a", required=False, aliases=("alias",), required_if=("e", "a"))))


class Site:
    max_body_bytes = MAX_BODY_BYTES


class Request:
    """What the readers use of a twisted.web request."""

    site = Site()

    def __init__(self, method: bytes, content_type: bytes, query: bytes, body: bytes) -> None:
        self.method = method
        self.content = io.BytesIO(body)
        self._content_type = content_type
        # twisted.web's own parsing of the query string (keys and values as bytes)
        self.args = parse_qs(query, 1)

    def getHeader(self, name):
        return self._content_type if name.lower() in ("content-type", b"content-type") else None


def check(data: bytes) -> None:
    if not data:
        return
    which, rest = data[0] % 3, data[1:]
    content_type, _, rest = rest.partition(b"\n")
    query, _, body = rest.partition(b"\n")
    request = Request(b"POST" if data[0] & 0x80 == 0 else b"GET", content_type.decode("latin-1"), query, body)
    if which == 0:
        raw = readers.query_form_json(request, MAX_BODY_BYTES)
    elif which == 1:
        raw = readers.query_form(request, 8192, files=("file",))
    else:
        raw = readers.json_body(request, MAX_BODY_BYTES, optional=bool(data[0] & 0x40))
    if not isinstance(raw, dict):
        raise AssertionError(f"a reader answered {type(raw).__name__} for a small body")
    P.validate(ENDPOINT, raw)


REFUSALS = (P.BadParameter,)

if __name__ == "__main__":
    main(check, REFUSALS)
