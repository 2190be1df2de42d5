"""The load generator's frame codec, client protocol and percentile maths (no server, no timing)."""

import asyncio
import math
import struct

import pytest

from bench import wsload
from bench.wsload import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, ProtocolError, WSClient, scan_frames


def split_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """`scan_frames` with each frame's payload cut out of `data`."""
    frames, used = scan_frames(data)
    return [(opcode, data[start:end]) for opcode, start, end in frames], used


def unmask(frame: bytes) -> tuple[int, bytes]:
    """Decode one client frame (masked) back to (opcode, payload)."""
    b0, b1 = frame[0], frame[1]
    assert b0 & 0x80 and b1 & 0x80, "a client frame is final and masked"
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = struct.unpack(">H", frame[2:4])[0], 4
    elif n == 127:
        n, pos = struct.unpack(">Q", frame[2:10])[0], 10
    mask, payload = frame[pos:pos + 4], frame[pos + 4:]
    assert len(payload) == n
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_server_frames_of_every_length_encoding_split_back(size):
    payload = bytes(i % 251 for i in range(size))
    data = wsload.server_frame(OP_TEXT, payload) + wsload.server_frame(OP_PING, b"p")
    frames, used = split_frames(data)
    assert frames == [(OP_TEXT, payload), (OP_PING, b"p")]
    assert used == len(data)


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_client_frames_are_masked_and_decode_to_the_payload(size):
    payload = b"x" * size
    assert unmask(wsload.client_frame(OP_TEXT, payload)) == (OP_TEXT, payload)


def test_an_incomplete_frame_is_left_for_the_next_read():
    first, second = wsload.server_frame(OP_TEXT, b"a" * 10), wsload.server_frame(OP_TEXT, b"b" * 300)
    data = first + second
    for cut in range(len(first), len(data)):
        frames, used = split_frames(data[:cut])
        assert frames == [(OP_TEXT, b"a" * 10)] and used == len(first)
    assert split_frames(data[:1]) == ([], 0)
    assert split_frames(second[:3]) == ([], 0)  # the 16-bit length itself is cut


def test_masked_or_fragmented_server_frames_are_refused():
    with pytest.raises(ProtocolError):
        split_frames(wsload.client_frame(OP_TEXT, b"hi"))
    with pytest.raises(ProtocolError):
        split_frames(wsload.server_frame(OP_TEXT, b"part", fin=False))
    with pytest.raises(ProtocolError):
        split_frames(wsload.server_frame(0x0, b"continuation"))


def test_percentile_is_nearest_rank_on_sorted_values():
    values = list(range(1, 101))  # 1..100
    assert wsload.percentile(values, 0) == 1
    assert wsload.percentile(values, 50) == 51  # round(0.5 * 99) = 50 -> the 51st value
    assert wsload.percentile(values, 99) == 99
    assert wsload.percentile(values, 100) == 100
    assert wsload.percentile([7], 99) == 7
    assert math.isnan(wsload.percentile([], 50))


class FakeTransport:
    def __init__(self):
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data):
        self.written.append(data)

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


def run(coro):
    return asyncio.run(coro)


def test_client_reads_the_handshake_then_frames_cut_anywhere():
    async def scenario():
        client = WSClient("127.0.0.1", 1, "/entry", {"X-Test": "1"})
        transport = FakeTransport()
        client.connection_made(transport)
        request = transport.written[0].decode()
        assert request.startswith("GET /entry HTTP/1.1\r\n") and "X-Test: 1\r\n" in request
        assert "Sec-WebSocket-Version: 13" in request and request.endswith("\r\n\r\n")
        stream = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
                  + wsload.server_frame(OP_TEXT, b"one") + wsload.server_frame(OP_PING, b"are you there")
                  + wsload.server_frame(OP_TEXT, "二".encode() * 100) + wsload.server_frame(OP_TEXT, b"three"))
        for i in range(0, len(stream), 7):  # the network cuts wherever it likes
            client.data_received(stream[i:i + 7])
        assert client.handshake.done() and client.upgraded
        assert await client.next_text(1) == b"one"
        assert await client.next_text(1) == "二".encode() * 100
        assert await client.next_text(1) == b"three"
        # the ping was answered with a pong carrying the same payload
        assert [unmask(w) for w in transport.written[1:]] == [(OP_PONG, b"are you there")]
        client.data_received(wsload.server_frame(OP_CLOSE, struct.pack(">H", 1001) + b"bye"))
        assert client.closed and client.close_code == 1001 and transport.closed
        assert unmask(transport.written[-1]) == (OP_CLOSE, struct.pack(">H", 1001))
        with pytest.raises(ConnectionError):
            await client.next_text(1)

    run(scenario())


def test_client_hands_texts_to_its_sink_with_one_timestamp_per_read():
    async def scenario():
        client = WSClient("127.0.0.1", 1, "/", None)
        client.connection_made(FakeTransport())
        client.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        got = []
        client.on_text = lambda payload, t: got.append((payload, t))
        client.data_received(wsload.server_frame(OP_TEXT, b"a") + wsload.server_frame(OP_TEXT, b"b" * 200))
        client.data_received(wsload.server_frame(OP_TEXT, b"c" * 300))  # the single-frame fast path
        assert [p for p, _ in got] == [b"a", b"b" * 200, b"c" * 300]
        assert got[0][1] == got[1][1] <= got[2][1]

    run(scenario())


def test_a_refused_handshake_fails_the_connect():
    async def scenario():
        client = WSClient("127.0.0.1", 1, "/", None)
        transport = FakeTransport()
        client.connection_made(transport)
        client.data_received(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        with pytest.raises(ConnectionError, match="503"):
            await client.handshake
        assert transport.aborted

    run(scenario())
