"""
What `--demo` changes, and the one thing it does at start.

`demo_settings` takes the configured settings and returns the demo's: every listener bound to
loopback (a listener that names another interface is refused: a demo node must never be
reachable from elsewhere, since every login is open), the legacy logins of the original servers
on (boss plain `login_<id>` and keyless group API, jim `?username=` and keyless `/im/vanke`), and
`[server] demo` on, which makes the outbound layer use the demo WeChat and SMS stand-ins.
`demo_secrets` fills the secrets left empty with ones generated once into the data dir (a demo
node is one machine, so nothing needs sharing): /messageserver, direct uploads and
verify-alipay work (a media server is not part of the demo: lives have no stream addresses), and the start-up log has nothing to warn about but the demo itself.
`DemoService` logs one warning saying so and puts the example live activity, open from now.
"""

from __future__ import annotations

import base64
import dataclasses

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from heihei.config import Settings
from heihei.live.activities import Activities, Activity
from heihei.loopback import on_loopback_only
from heihei.paths import load_or_create_secret

#: the example live activity (seed 000) the demo opens, as in docs/live.md
DEMO_ACTIVITY_ID = "1001"
#: it opens when the node starts and runs this long
DEMO_ACTIVITY_DURATION_S = 30 * 24 * 3600
LISTENER_OPTIONS = ("http", "live", "boss", "jim", "manhole")


def demo_settings(settings: Settings) -> Settings:
    """The demo's settings; a ConfigError naming the listener that would leave loopback."""
    server = settings.server
    listeners = {name: on_loopback_only(getattr(server, name), name) for name in LISTENER_OPTIONS
                 if getattr(server, name)}
    return dataclasses.replace(
        settings,
        server=dataclasses.replace(server, demo=True, **listeners),
        boss=dataclasses.replace(settings.boss, insecure_login=True, insecure_http=True),
        jim=dataclasses.replace(settings.jim, insecure_login=True, insecure_api=True),
    )


def demo_secrets(settings: Settings, data_dir: str) -> Settings:
    """The demo's settings with every empty secret generated once into `data_dir` (kept across restarts)."""
    def kept(current: str, name: str, nbytes: int = 24) -> str:
        return current or load_or_create_secret(data_dir, f"demo-{name}", nbytes)

    identity = settings.payment.identity_key or base64.b64encode(
        bytes.fromhex(load_or_create_secret(data_dir, "demo-identity-key", 32))).decode()
    return dataclasses.replace(
        settings,
        heihei=dataclasses.replace(settings.heihei, server_secret=kept(settings.heihei.server_secret, "server-secret")),
        uploads=dataclasses.replace(settings.uploads, secret=kept(settings.uploads.secret, "uploads-secret")),
        payment=dataclasses.replace(settings.payment, identity_key=identity))


def demo_activity(now_s: float) -> Activity:
    start = int(now_s)
    return Activity(id=DEMO_ACTIVITY_ID, title="heihei demo", start_s=start,
                    end_s=start + DEMO_ACTIVITY_DURATION_S,
                    details="The demo profile's example activity: open from the node's start for 30 days.",
                    share_title="heihei demo")


class DemoService(Service):
    """At start: one warning, then the example activity (once Redis answers)."""

    _log = Logger()

    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock
        self.seeded: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self._log.warn(
            "DEMO PROFILE: every listener is on 127.0.0.1 only and every login is open (boss plain "
            "login_<id> and keyless group API, jim ?username= and keyless /im/vanke, live WeChat login "
            "with any code, SMS codes shown at /demo/sms-code). Never expose this node.")
        self.seeded = defer.Deferred.fromCoroutine(self._seed())
        self.seeded.addErrback(lambda f: self._log.failure("the demo activity could not be created", failure=f))

    async def _seed(self) -> None:
        await self.store.ready()
        activity = demo_activity(self.clock.seconds())
        await Activities(self.store).put(activity)
        self._log.info("demo: live activity {id} is open until {end}", id=activity.id, end=activity.end_s)
