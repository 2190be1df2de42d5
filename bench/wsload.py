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
from typing import Any, Awaitable, Callable
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


# -- a cheaper client for fan-out: one protocol object, frames parsed in bulk -----------------------

def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked (server-to-client) frame; the tests and the fake peers use it."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


class ProtocolError(Exception):
    """The server sent something a server must not send (a masked or fragmented frame)."""


def scan_frames(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """Complete server frames at the start of `data`: ([(opcode, start, end)], bytes consumed).

    Positions, not payloads: a fan-out read holds several frames and the
    tally reads each message's stamp in place, so nothing is copied (the load
    generator's own CPU caps `burst` deliveries/s, bench/README.md). Servers
    send whole, unmasked messages here (heihei, `ws` and `websockets` do for
    messages this small); a masked or fragmented frame raises ProtocolError
    rather than being measured wrongly."""
    frames: list[tuple[int, int, int]] = []
    pos, size = 0, len(data)
    while size - pos >= 2:
        b0, n = data[pos], data[pos + 1]
        if n < 126:
            start = pos + 2
        elif n == 126:
            if size - pos < 4:
                break
            n = (data[pos + 2] << 8) | data[pos + 3]
            start = pos + 4
        elif n == 127:
            if size - pos < 10:
                break
            n = int.from_bytes(data[pos + 2:pos + 10], "big")
            start = pos + 10
        else:
            raise ProtocolError("masked server frame")
        end = start + n
        if end > size:
            break
        if not b0 & 0x80 or (b0 & 0x0F) == 0:
            raise ProtocolError("fragmented server message")
        frames.append((b0 & 0x0F, start, end))
        pos = end
    return frames, pos


class WSClient(asyncio.Protocol):
    """A raw WebSocket client as an asyncio Protocol (no coroutine per frame).

    Holding thousands of these in one process is cheap: each `data_received`
    parses every complete frame in the chunk, stamps them all with one clock
    reading (the time the bytes reached us), answers pings, and hands text to
    `on_text(payload, t_ns)`. Until a benchmark installs its own `on_text`,
    texts queue up for `next_text()` (request/answer steps during set-up)."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str] | None) -> None:
        self._request = _handshake_request(host, port, path, headers)
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.closed = False
        self.close_code: int | None = None
        self._buf = b""
        self.on_text: Callable[[bytes, int], None] = self._queue_text
        #: the texts of one read as (start, end) spans of its bytes; a benchmark's tally takes these
        #: in bulk, anything else gets each payload through `on_text`
        self.on_texts: Callable[[bytes, Any, int], None] = self._texts_one_by_one
        self._texts: list[bytes] = []
        self._waiter: asyncio.Future | None = None

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> "WSClient":
        parts = urlsplit(url)
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: cls(parts.hostname, parts.port, path, headers), parts.hostname,
                                   parts.port), timeout)
        try:
            await asyncio.wait_for(asyncio.shield(proto.handshake), timeout)
        except BaseException:
            proto.abort()
            raise
        return proto

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        t = time.monotonic_ns()
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > 16384:
                    self._fail(ConnectionError("handshake answer too long"))
                else:
                    self._buf = data
                return
            status = data[:data.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self._fail(ConnectionError(f"handshake refused: {status.decode(errors='replace')}"))
                return
            self.upgraded = True
            if not self.handshake.done():
                self.handshake.set_result(None)
            data = data[end + 4:]
        size = len(data)
        if size > 3 and data[0] == 0x81:
            # the common case in a fan-out: one complete text frame per read
            n = data[1]
            if n < 126:
                if size == n + 2:
                    self.on_texts(data, ((2, size),), t)
                    return
            elif n == 126 and size == ((data[2] << 8) | data[3]) + 4:
                self.on_texts(data, ((4, size),), t)
                return
        try:
            frames, used = scan_frames(data)
        except ProtocolError as e:
            self._fail(e)
            return
        if used < size:
            self._buf = data[used:]
        texts = []
        for opcode, start, end in frames:
            if opcode == OP_TEXT or opcode == OP_BINARY:
                texts.append((start, end))
            elif opcode == OP_PING:
                self.transport.write(client_frame(OP_PONG, data[start:end]))
            elif opcode == OP_CLOSE:
                if texts:
                    self.on_texts(data, texts, t)
                payload = data[start:end]
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                if not self.closed:
                    self.closed = True
                    self.transport.write(client_frame(OP_CLOSE, payload[:2]))
                    self.transport.close()
                self._wake(None)
                return
        if texts:
            self.on_texts(data, texts, t)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during the handshake"))
        self._wake(None)

    # -- use ---------------------------------------------------------------------

    def send_text(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.transport.write(client_frame(OP_TEXT, data))

    def _texts_one_by_one(self, data: bytes, spans, t: int) -> None:
        on_text = self.on_text
        for start, end in spans:
            on_text(data[start:end], t)

    def _queue_text(self, payload: bytes, t: int) -> None:
        self._texts.append(payload)
        self._wake(True)

    def _wake(self, value) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(value)

    async def next_text(self, timeout: float = 10.0) -> bytes:
        """The next queued text; ConnectionError if the connection closed, TimeoutError after `timeout`."""
        while not self._texts:
            if self.closed:
                raise ConnectionError(f"connection closed (code {self.close_code})")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            finally:
                self._waiter = None
        return self._texts.pop(0)

    def drain_texts(self) -> list[bytes]:
        texts, self._texts = self._texts, []
        return texts

    def close(self) -> None:
        if self.transport is None:
            return
        if not self.closed and self.upgraded:
            self.transport.write(client_frame(OP_CLOSE, struct.pack(">H", 1000)))
        self.closed = True
        self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(error)
        self.abort()


def _handshake_request(host: str, port: int, path: str, headers: dict[str, str] | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
