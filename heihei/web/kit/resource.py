"""
The twisted.web resource of a kit `Routes` class: Klein's routing, without the
garbage Klein and werkzeug leave behind on every request.

`klein.resource.KleinResource.render` (Klein 24.8) builds closures per request,
and `processing_failed` calls itself through its own closure cell: a reference
cycle that holds the request (its headers, addresses, body, the werkzeug
`MapAdapter`, the `KleinRequest`) until the cycle collector runs. werkzeug's
`StateMachineMatcher.match` does the same with its recursive `_match`. Measured
on a node under bench/gifts.py's load (`gc.DEBUG_SAVEALL`): ~45 cyclic objects
per request, a young-generation collection every ~40 requests, each 1-2 ms and
up to tens of ms on a busy box, which is latency every request in flight pays.

`KitResource.render` does what Klein's does, in the same order and with the
same results (the route's prepath/postpath fix-up, cancelling the route's
Deferred when the connection goes away, the app's `handle_errors` handlers in
order, werkzeug's own answer for an unhandled HTTPException, twisted.web's 500
otherwise, `Response`/resource/renderable results), with its per-request state
in one object whose references all end when the answer is written. And a path
that matched a route without arguments is remembered per method, so werkzeug's
matcher runs once per such route: the memo can only hold the app's own static
routes (a miss, a redirect or a route with arguments is never remembered).
Nothing here reads `IKleinRequest(request)`: no kit route builds URLs
(`url_for`), so the adapter is not made.

Klein's internals used (checked by tests/test_dependency_canaries.py):
`Klein.url_map`, `Klein.endpoints`, `Klein.execute_endpoint`,
`Klein.execute_error_handler`, `Klein._error_handlers`,
`klein._resource.extractURLparts`, `URLDecodeError`, `route_metadata`.
"""

from __future__ import annotations

from typing import Any

from klein._dihttp import Response
from klein._resource import KleinResource, URLDecodeError, extractURLparts, route_metadata
from twisted.internet import defer
from twisted.internet.defer import maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRenderable
from twisted.web.resource import IResource, getChildForRequest
from twisted.web.template import renderElement
from werkzeug.exceptions import HTTPException

_log = Logger()

#: a route's answer that twisted.web already wrote (a resource or renderable it rendered)
_RENDERED = object()


class KitResource(KleinResource):
    """A Klein app's resource (see the module docstring)."""

    def __init__(self, app) -> None:
        super().__init__(app)
        #: (method, path) -> the rule of a route without arguments that path matched
        self._static: dict[tuple[str, str], Any] = {}

    def render(self, request) -> Any:
        try:
            scheme, server_name, _, path_info, script_name = extractURLparts(request)
        except URLDecodeError as e:
            for what, fail in e.errors:
                _log.failure("Invalid encoding in {what}.", fail, what=what)
            request.setResponseCode(400)
            return b"Non-UTF-8 encoding in URL."
        _Rendering(self, request, scheme, server_name, path_info, script_name).start()
        return server.NOT_DONE_YET

    def match(self, method: str, scheme: str, server_name: str, path_info: str, script_name: str):
        """(rule, arguments) as werkzeug matches them; werkzeug's HTTPExceptions as it raises them."""
        known = self._static.get((method, path_info))
        if known is not None:
            return known, {}
        mapper = self._app.url_map.bind(server_name, script_name, path_info=path_info, default_method=method,
                                        url_scheme=scheme)
        rule, kwargs = mapper.match(return_rule=True)
        if not kwargs and not rule.arguments:
            self._static[(method, path_info)] = rule
        return rule, kwargs


class _Rendering:
    """One request through a KitResource: the steps of KleinResource.render as methods, so that no
    closure refers to itself and everything here is freed by reference counting."""

    __slots__ = ("resource", "request", "where", "finished", "d")

    def __init__(self, resource: KitResource, request, scheme: str, server_name: str, path_info: str,
                 script_name: str) -> None:
        self.resource = resource
        self.request = request
        self.where = (scheme, server_name, path_info, script_name)
        self.finished = False
        self.d = None

    def start(self) -> None:
        d = maybeDeferred(self.execute)
        d.addCallback(self.process)
        d.addErrback(self.failed, self.resource._app._error_handlers)
        d.addCallback(self.write)
        d.addErrback(self.unhandled)

    def execute(self):
        app, request = self.resource._app, self.request
        scheme, server_name, path_info, script_name = self.where
        rule, kwargs = self.resource.match(request.method.decode("utf-8"), scheme, server_name, path_info,
                                           script_name)
        endpoint = rule.endpoint
        segment_count = route_metadata(app.endpoints[endpoint]).segment_count
        request.prepath.extend(request.postpath[:segment_count])
        request.postpath = request.postpath[segment_count:]
        request.notifyFinish().addBoth(self.connection_done)
        self.d = maybeDeferred(app.execute_endpoint, endpoint, request, **kwargs)
        return self.d

    def connection_done(self, result) -> None:
        self.finished = True
        d, self.d = self.d, None
        if isinstance(result, Failure) and d is not None:
            d.cancel()  # the client went away: stop the route's work, as Klein does
        return None

    def process(self, r: Any) -> Any:
        request = self.request
        if isinstance(r, Response):
            r = r._applyToRequest(request)
        if IResource.providedBy(r):
            request.render(getChildForRequest(r, request))
            return _RENDERED
        if IRenderable.providedBy(r):
            renderElement(request, r)
            return _RENDERED
        return r

    def failed(self, failure: Failure, handlers) -> Any:
        request = self.request
        if self.finished:
            if not failure.check(defer.CancelledError):
                _log.failure("Unhandled Error Processing Request.", failure)
            return None
        for i, (exceptions, handler) in enumerate(handlers):
            if failure.check(*exceptions):
                d = maybeDeferred(self.resource._app.execute_error_handler, handler, request, failure)
                d.addCallback(self.process)
                return d.addErrback(self.failed, handlers[i + 1:])
        if failure.check(HTTPException):
            he = failure.value
            request.setResponseCode(he.code)
            response = he.get_response({})
            for header, value in response.headers:
                request.setHeader(_utf8(header), _utf8(value))
            return succeed(b"".join(_utf8(chunk) for chunk in response.iter_encoded()))
        request.processingFailed(failure)
        return None

    def write(self, r: Any) -> None:
        request = self.request
        self.request = None
        if r is _RENDERED:
            return
        if isinstance(r, str):
            r = r.encode("utf-8")
        if isinstance(r, bytes):
            request.write(r)
        if not self.finished:
            request.finish()

    def unhandled(self, failure: Failure) -> None:
        _log.failure("Unhandled Error writing response", failure)
        self.request = None


def _utf8(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8")
