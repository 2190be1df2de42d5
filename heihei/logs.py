"""
Structured logs: `--log-format json` writes one JSON object per event.

twistd picks its log observer before our service exists, so `tap.Options`
hands `json_observer` to twistd's own `--logger` slot when JSON is asked for.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import IO, Any

import orjson
from twisted.logger import FileLogObserver, formatEvent

_SKIP = {"log_logger", "log_source", "log_format", "log_time", "log_level", "log_namespace", "log_failure",
         "log_io", "log_system", "log_text", "log_flattened", "log_trace", "format", "message", "time", "system",
         "isError", "printed"}


def event_as_json_line(event: dict[str, Any]) -> str:
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), timezone.utc).isoformat(timespec="milliseconds"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key in _SKIP or key.startswith("log_") or key in record:
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            record[key] = value
        else:
            record[key] = repr(value)
    return orjson.dumps(record, default=repr).decode() + "\n"


def json_observer(out: IO[str] | None = None) -> FileLogObserver:
    return FileLogObserver(out or sys.stdout, event_as_json_line)
