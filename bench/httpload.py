"""
A small HTTP/1.1 client for the load generator: keep-alive connections, form
posts, JSON answers, asyncio only (the same process holds the WebSocket
clients, so it must not block or spend much per request).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode, urlsplit


class HttpPool:
    """Up to `size` keep-alive connections to one server; one request in flight per connection."""

    def __init__(self, base_url: str, size: int = 32, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.size = size
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)
        self.requests = 0

    async def _connection(self):
        if self._idle:
            return self._idle.pop()
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """POST a form, return the JSON answer (any status)."""
        body = urlencode({k: str(v) for k, v in params.items()}).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        async with self._slots:
            for attempt in range(2):
                reader, writer = await self._connection()
                try:
                    writer.write(head + body)
                    answer = await asyncio.wait_for(self._read(reader), self.timeout)
                except (ConnectionError, asyncio.IncompleteReadError) as e:
                    writer.close()
                    if attempt:
                        raise ConnectionError(f"{path}: {e}") from None
                    continue  # a kept-alive connection the server closed meanwhile
                except BaseException:
                    writer.close()
                    raise
                self._idle.append((reader, writer))
                self.requests += 1
                return answer
        raise AssertionError("unreachable")

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> dict[str, Any]:
        head = await reader.readuntil(b"\r\n\r\n")
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await reader.readexactly(length) if length else b""
        return json.loads(body) if body else {}

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
