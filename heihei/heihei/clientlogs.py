"""
Client logs (`/api/sys/upload-log`): what an app sends when something went
wrong on the phone, kept for the operators, bounded.

Each upload is one JSON line `{"time", "user", "node", "log"}` appended to
`<dir>/client.log`; at `file_bytes` the file is rotated (`client.log.1`,
`.2` ...) and only `files` rotated files are kept, so the logs never take
more than about `(files + 1) * file_bytes` on a node. A log is at most
`max_bytes` (UTF-8); a user may upload `RATE` (a few a minute, per node).
Each node writes its own files (in its data directory by default); nothing
is shared through Redis: these are for reading by an operator on the host.

Logs may contain anything the app wrote; they are never written to the
server's own log, and the line carries no token.
"""

from __future__ import annotations

import os
import time

import orjson
from twisted.python.logfile import LogFile

from heihei.core.errors import Refused
from heihei.core.policy import Rate
from heihei.heihei.errors import SENDING_TOO_FAST

FILE_NAME = "client.log"
#: uploads per user and node: a burst of 3, then one every 20 s
RATE = Rate(per_second=0.05, burst=3)


class ClientLogs:
    def __init__(self, directory: str, *, node_id: str, clock, rates, file_bytes: int, files: int,
                 max_bytes: int) -> None:
        if file_bytes <= 0 or files < 1 or max_bytes <= 0:
            raise ValueError("client logs: file_bytes, files and max_bytes must be positive")
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.node_id = node_id
        self.clock = clock
        self.rates = rates
        self.max_bytes = max_bytes
        self._file = LogFile(FILE_NAME, directory, rotateLength=file_bytes, defaultMode=0o600,
                             maxRotatedFiles=files)

    def write(self, uid: str, text: str) -> None:
        """Keep one upload (400 when the user sends too many)."""
        if not self.rates.allow(("heihei-client-log", uid), RATE):
            raise Refused(SENDING_TOO_FAST, "too many logs; try again later")
        now = self.clock.seconds()
        line = orjson.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "user": uid,
                             "node": self.node_id, "log": text}) + b"\n"
        self._file.write(line)

    def close(self) -> None:
        self._file.close()
