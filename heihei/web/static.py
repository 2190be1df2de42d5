"""
`/static/` on the `--http` site: the default catalogs' pictures shipped in
`resources/static/` (a banner, a topic picture), so a fresh server's banners
and topics show something. Files only: no directory listings, no dot files.
"""

from __future__ import annotations

from twisted.web import pages, static

from heihei.paths import resource as resource_path

CACHE_CONTROL = b"public, max-age=86400"


class StaticFiles(static.File):
    """A read-only tree of files; a directory answers 404."""

    def directoryListing(self):
        return pages.notFound()

    def getChild(self, path, request):
        if path.startswith(b"."):
            return pages.notFound()
        return super().getChild(path, request)

    def render_GET(self, request):
        request.setHeader(b"cache-control", CACHE_CONTROL)
        request.setHeader(b"x-content-type-options", b"nosniff")
        return super().render_GET(request)


def shipped_static() -> StaticFiles:
    return StaticFiles(str(resource_path("static")))
