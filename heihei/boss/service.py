"""
The boss realm's start-up on a node: its media folders, and a warning for
every setting that leaves logins or the HTTP API open (or closed to all).
Heartbeats and dead-peer detection are the realm's `Liveness`
(heihei.core.heartbeat), with the `heartbeat_<n>` frame of
heihei.protocols.boss.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.logger import Logger


class BossService(Service):
    _log = Logger()

    def __init__(self, settings, *, media=None, demo: bool = False) -> None:
        self.settings = settings
        self.media = media
        #: the demo profile opened the logins and said so in its one warning: these are details then
        self.open_door = self._log.info if demo else self._log.warn

    def startService(self) -> None:
        super().startService()
        self._warn_about_settings()
        if self.media is not None:
            self.media.prepare()

    def _warn_about_settings(self) -> None:
        s = self.settings
        if s.insecure_login:
            self.open_door("[boss] insecure_login is on: anyone can log in as any user with login_<userid>")
        elif not s.login_secret:
            self._log.warn("[boss] neither login_secret nor insecure_login is set: every boss login is refused")
        if s.insecure_http:
            self.open_door("[boss] insecure_http is on: the group API and uploads accept calls from anyone")
