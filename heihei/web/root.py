"""
The root resource of a site: named children first, then a fallback app.

Klein apps route on the whole path, so the fallback sees the segment this
resource consumed put back in place; children mounted by name (a
WebSocketResource at `ws/channel`, another Klein app under `im`) see the rest.
"""

from __future__ import annotations

from twisted.web.resource import IResource, Resource


class RootResource(Resource):
    def __init__(self, fallback: IResource | None = None) -> None:
        super().__init__()
        self.fallback = fallback

    def mount(self, path: str, resource: IResource) -> None:
        """Mount `resource` at a path of one or more segments (`"ws/channel"`); the empty path
        makes it the fallback, which routes every path no child claims."""
        if not path.strip("/"):
            self.fallback = resource
            return
        parent: Resource = self
        segments = [s.encode() for s in path.strip("/").split("/")]
        for segment in segments[:-1]:
            child = parent.children.get(segment)
            if child is None:
                child = Resource()
                parent.putChild(segment, child)
            parent = child
        parent.putChild(segments[-1], resource)

    def getChild(self, path: bytes, request):
        if self.fallback is None:
            return super().getChild(path, request)
        # give the segment back so the fallback app routes on the full path
        request.postpath.insert(0, request.prepath.pop())
        return self.fallback

    def render(self, request):
        if self.fallback is not None:
            return self.fallback.render(request)
        return super().render(request)
