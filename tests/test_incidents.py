"""An outage is logged once, summed up now and then, and its end said once."""

from __future__ import annotations

import pytest_twisted
from twisted.logger import Logger, globalLogPublisher

from heihei import incidents
from heihei.incidents import Incident


class Captured:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def texts(self) -> list[str]:
        from twisted.logger import formatEvent
        return [formatEvent(e) for e in self.events]


def test_first_event_logged_later_ones_counted_then_summed_up_and_the_end_said():
    now = [100.0]
    captured = Captured()
    incident = Incident("storage unavailable", report_s=10, now=lambda: now[0], log=Logger(observer=captured))
    incident.happened("connection refused")
    for _ in range(999):
        incident.happened("connection refused")
        now[0] += 0.005
    assert captured.texts() == ["storage unavailable: connection refused (more of the same are counted, not logged)"]
    now[0] = 111.0
    incident.happened("connection refused")
    assert captured.texts()[-1] == "storage unavailable: still going, 1000 more in the last 11 s"
    assert incident.ongoing
    incident.over()
    incident.over()  # said once
    assert captured.texts()[-1] == "storage unavailable: over, 1001 in all" and len(captured.events) == 3
    assert not incident.ongoing
    incident.happened("again")  # a new incident is logged again
    assert len(captured.events) == 4


@pytest_twisted.ensureDeferred
async def test_requests_failing_on_a_frozen_redis_log_one_line_not_one_each(nodes, redis):
    """A Redis that does not answer: every HTTP call is refused in its own format, and the log
    gets one line for the incident instead of a traceback per request."""
    import treq

    from tests.conftest import http_url

    node = await nodes.start("a", {"redis": {"reply_timeout_s": 0.2, "connect_timeout_s": 0.2}})
    incidents.STORE.over()  # whatever earlier tests left ongoing
    captured = Captured()
    globalLogPublisher.addObserver(captured)
    try:
        redis["client"].execute_command("CLIENT", "PAUSE", "3000", "ALL")
        statuses = []
        for _ in range(5):
            response = await treq.post(http_url(node, "/api/user/get-sms-verification-code"),
                                       data={"phoneNo": "13100000001"})
            statuses.append(response.code)
            await response.content()
        warnings = [t for t in captured.texts() if "storage unavailable" in t]
        tracebacks = [e for e in captured.events if e.get("log_failure") is not None]
        assert len(warnings) == 1, warnings
        assert tracebacks == []
        assert statuses == [statuses[0]] * 5 and statuses[0] != 500
    finally:
        globalLogPublisher.removeObserver(captured)
        redis["client"].execute_command("CLIENT", "UNPAUSE")
        incidents.STORE.over()
