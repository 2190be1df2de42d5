"""
`/console/` on the `--http` site: the operators' console, static files from `resources/console/`.

The pages hold no secret and no data: the operator signs in with the admin token, which stays in
the browser tab (sessionStorage), and every figure comes from the admin API (`/admin/...`) and
`/metrics`, called with that token. The chart is uPlot, shipped in the same folder (no CDN, no
build step).
"""

from __future__ import annotations

from twisted.web import static

from heihei.paths import resource as resource_path
from heihei.web.static import StaticFiles

#: the console runs only its own scripts and talks only to its own origin
POLICY = (b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
          b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'")


class ConsoleFiles(StaticFiles):
    def render_GET(self, request):
        request.setHeader(b"content-security-policy", POLICY)
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"x-content-type-options", b"nosniff")
        # not StaticFiles' day-long cache: these pages change with the server
        return static.File.render_GET(self, request)


def console_pages() -> ConsoleFiles:
    return ConsoleFiles(str(resource_path("console")))
