"""
The media server asks before a stream starts: heihei owns who may publish and
play, the media server carries the video.

Callbacks (heihei.web.media turns nginx-rtmp's form posts, SRS's JSON and
Node-Media-Server's webhook into these calls; every one is authenticated by
the shared `[media] callback_key`):

- `publish(app, stream, query, client)`: admitted only with a sign of ours
  for exactly `/<app>/<stream>` that has not expired, heihei's publish proof
  `pk` next to it (`[media] require_push_key`; a viewer's play address has a
  valid sign but no proof), and a live of that id that is 0 or 1. The live
  goes on (status 1) when its stream arrives; a stream back within the grace
  period resumes it.
- `unpublish(app, stream, client)`: the live's stream stopped; the live ends
  unless it is back within `stream_grace_s` (a deadline any node fires).
  Ignored for a client that is not the live's publisher.
- `play(app, stream, query)`: a sign of ours for that stream, and a live that
  is 0 or 1.
- `recorded(app, stream, path)`: the recording file of the live (lookbackAddr's `{file}`).
"""

from __future__ import annotations

from twisted.logger import Logger

from heihei.heihei.livecore import LiveCore
from heihei.outbound.streams import SignRefused

#: why a publish or play was refused (the media server closes the session)
NOT_CONFIGURED = "not-configured"
FOREIGN = "foreign"


class MediaRefused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MediaGate:
    _log = Logger()

    def __init__(self, core: LiveCore, lives) -> None:
        self.core = core
        self.lives = lives

    def _signer(self):
        if self.core.signer is None:
            raise MediaRefused(NOT_CONFIGURED, "no [media] secret")
        return self.core.signer

    async def _live(self, stream: str, statuses: tuple[str, ...]) -> dict[str, str]:
        live = await self.core.get(stream)
        if live is None or live.get("status") not in statuses:
            raise MediaRefused(FOREIGN, f"no live {stream} to stream")
        return live

    async def publish(self, app: str, stream: str, query: dict[str, str], client: str) -> None:
        signer = self._signer()
        path = f"/{app}/{stream}"
        now = self.core.clock.seconds()
        try:
            if self.core.media.require_push_key:
                signer.verify_push(path, query.get("sign"), query.get("pk"), now_s=now)
            else:
                signer.verify(path, query.get("sign"), now_s=now)
        except SignRefused as e:
            self._log.info("publish of {path} refused: {reason}", path=path, reason=e.reason)
            raise MediaRefused(e.reason) from None
        await self._live(stream, ("0", "1"))
        await self.lives.stream_published(stream, client)
        self._log.info("publish of live {live} admitted", live=stream)

    async def unpublish(self, app: str, stream: str, client: str) -> None:
        if app != self.core.media.app or await self.core.get(stream) is None:
            return
        await self.lives.stream_unpublished(stream, client)

    async def play(self, app: str, stream: str, query: dict[str, str]) -> None:
        signer = self._signer()
        try:
            signer.verify(f"/{app}/{stream}", query.get("sign"), now_s=self.core.clock.seconds())
        except SignRefused as e:
            raise MediaRefused(e.reason) from None
        await self._live(stream, ("0", "1"))

    async def recorded(self, app: str, stream: str, path: str) -> None:
        if app == self.core.media.app:
            await self.lives.recorded(stream, path)
