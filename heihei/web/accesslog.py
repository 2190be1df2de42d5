"""
The access log of every twisted.web site we serve, with secrets taken out.

twisted.web logs each request's line, query string included (`Site` writes
`combinedLogFormatter`'s line to the process log). The shipped heihei client
sends its session `token` in the query string of every GET and of the push
channel's URL, and other parameters are secrets too (sign-in tokens, SMS codes,
upload signs, the messageserver's signature). Here the value of each such
parameter becomes `***`, in the request line and in the Referer, before the
line is written; everything else stays as twisted.web writes it.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from twisted.web.http import combinedLogFormatter
from twisted.web.iweb import IAccessLogFormatter
from zope.interface import provider

#: parameter names (compared in lower case) whose values never reach a log line
SECRET_PARAMETERS = frozenset({
    "token", "accounttoken", "access_token", "accesstoken", "apnstoken", "verifycode", "code", "signature",
    "sign", "password", "secret", "securitytoken", "accesskeysecret", "x-oss-security-token", "ticket",
})
REDACTED = b"***"


def redact(uri: bytes) -> bytes:
    """`/api/user/info?token=abc&uid=1` -> `/api/user/info?token=***&uid=1`."""
    path, sep, rest = uri.partition(b"?")
    if not sep:
        return uri
    query, hash_sep, fragment = rest.partition(b"#")
    parts = []
    for part in query.split(b"&"):
        name, eq, _ = part.partition(b"=")
        if eq and unquote_plus(name.decode("latin-1")).lower() in SECRET_PARAMETERS:
            part = name + b"=" + REDACTED
        parts.append(part)
    return path + sep + b"&".join(parts) + hash_sep + fragment


class _Redacted:
    """The request as the formatter sees it: the same, but for its URI and Referer."""

    def __init__(self, request) -> None:
        self._request = request

    @property
    def uri(self) -> bytes:
        return redact(self._request.uri)

    def getHeader(self, name: bytes):
        value = self._request.getHeader(name)
        if value is not None and name.lower() == b"referer":
            return redact(value if isinstance(value, bytes) else value.encode("latin-1"))
        return value

    def __getattr__(self, name: str):
        return getattr(self._request, name)


@provider(IAccessLogFormatter)
def redacted_log_formatter(timestamp: str, request) -> str:
    return combinedLogFormatter(timestamp, _Redacted(request))
