"""
A load generator that holds thousands of WebSocket connections in one process.

asyncio (uvloop when installed) with raw frames: a JS- or thread-per-user tool
saturates a 2-core box before the server does, and a full client library
spends more CPU per frame than the server we measure. It speaks just enough
RFC 6455 for benchmarking: masked text frames out, unmasked frames in, pongs
for the server's pings (heihei confirms deliveries with pings, so a client that
never answers would be cut off), close frames.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from typing import Awaitable, Callable
from urllib.parse import urlsplit

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (clients must mask; a zero mask keeps it cheap)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\x00\x00\x00\x00" + payload


class Conn:
    """One raw WebSocket client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> "Conn":
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            writer.close()
            raise ConnectionError(f"handshake refused: {status.decode(errors='replace')}")
        return cls(reader, writer)

    def send_text(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.writer.write(client_frame(OP_TEXT, data))

    async def recv(self) -> bytes | None:
        """The next text/binary payload (answering pings on the way); None when closed."""
        read = self.reader.readexactly
        while True:
            try:
                b0, b1 = await read(2)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.closed = True
                return None
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", await read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await read(8))[0]
            payload = await read(n) if n else b""
            if opcode in (OP_TEXT, OP_BINARY, 0x0):
                return payload
            if opcode == OP_PING:
                self.writer.write(client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.closed = True
                try:
                    self.writer.write(client_frame(OP_CLOSE, payload[:2]))
                except Exception:
                    pass
                return None

    def close(self) -> None:
        if not self.closed:
            try:
                self.writer.write(client_frame(OP_CLOSE, struct.pack(">H", 1000)))
            except Exception:
                pass
        self.closed = True
        self.writer.close()


async def open_many(n: int, open_one: Callable[[int], Awaitable[Conn]], concurrency: int = 200) -> list[Conn]:
    """Open `n` connections with at most `concurrency` handshakes in flight."""
    gate = asyncio.Semaphore(concurrency)
    conns: list[Conn | None] = [None] * n

    async def one(i: int) -> None:
        async with gate:
            conns[i] = await open_one(i)

    await asyncio.gather(*(one(i) for i in range(n)))
    return [c for c in conns if c is not None]


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def now_ns() -> int:
    """CLOCK_MONOTONIC is shared by every process on the machine."""
    return time.monotonic_ns()


def raise_nofile_limit(wanted: int) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target
