"""
Is this file what its name says? A check of the first bytes of an upload
against its declared format, before the node stores it.

    png   the 8-byte PNG signature, then the IHDR chunk header
    jpeg  SOI (FF D8) followed by a marker (FF C0..FE)
    mp3   optional ID3v2 tag(s), then an MPEG audio Layer III frame header
          (version, bitrate, sample rate all valid), and where the file goes on,
          the next frame header exactly one frame later (or a trailing ID3v1 tag)

This is a guard, not a decoder: it stops a client from storing (and us from
serving, under an image or audio type) a file that is something else. A file
can still be valid at the start and garbage after; serving with the declared
type and `X-Content-Type-Options: nosniff` keeps such a file inert in browsers.

`matches(format, read_at, size)` reads through `read_at(offset, length)`,
so the body stays on disk; at most a few kilobytes are read.
"""

from __future__ import annotations

from collections.abc import Callable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IHDR = b"\x00\x00\x00\x0dIHDR"
#: a broken tagger may leave NUL padding after an ID3v2 tag's declared size
MAX_ID3_PADDING = 4096
MAX_ID3_TAGS = 3

# kbit/s by bitrate index 1..14; index 0 (free format) and 15 are refused
_BITRATES_L3 = {
    3: (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1
    2: (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2
    0: (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2.5
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}

ReadAt = Callable[[int, int], bytes]


def matches(format: str, read_at: ReadAt, size: int) -> bool:
    if format == "png":
        return read_at(0, 16) == PNG_SIGNATURE + PNG_IHDR
    if format in ("jpeg", "jpg"):
        head = read_at(0, 4)
        return len(head) == 4 and head[:3] == b"\xff\xd8\xff" and 0xC0 <= head[3] <= 0xFE
    if format == "mp3":
        return _is_mp3(read_at, size)
    return False


def _skip_id3v2(read_at: ReadAt, size: int) -> int | None:
    """Offset after the ID3v2 tag(s) at the start (0 without any), None if a tag is malformed."""
    offset = 0
    for _ in range(MAX_ID3_TAGS):
        head = read_at(offset, 10)
        if head[:3] != b"ID3":
            break
        if len(head) < 10 or head[3] not in (2, 3, 4) or head[4] == 0xFF or any(b & 0x80 for b in head[6:10]):
            return None
        body = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        footer = 10 if head[3] == 4 and head[5] & 0x10 else 0
        offset += 10 + body + footer
        if offset > size:
            return None
    padding = read_at(offset, MAX_ID3_PADDING + 1) if offset else b""
    skipped = len(padding) - len(padding.lstrip(b"\x00"))
    return offset + min(skipped, MAX_ID3_PADDING)


def _frame(header: bytes) -> tuple[int, int, int] | None:
    """(version bits, sample rate, frame length) of an MPEG audio Layer III frame header, or None."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 0x3
    layer = (header[1] >> 1) & 0x3
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 0x3
    padding = (header[2] >> 1) & 0x1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3 or header[3] & 0x3 == 2:
        return None
    bitrate = _BITRATES_L3[version][bitrate_index - 1] * 1000
    rate = _SAMPLE_RATES[version][rate_index]
    coefficient = 144 if version == 3 else 72  # samples per frame / 8
    return version, rate, coefficient * bitrate // rate + padding


def _is_mp3(read_at: ReadAt, size: int) -> bool:
    start = _skip_id3v2(read_at, size)
    if start is None:
        return False
    first = _frame(read_at(start, 4))
    if first is None:
        return False
    version, rate, length = first
    after = start + length
    if after > size:
        return False  # not even one whole frame
    rest = size - after
    if rest < 4:
        return True
    following = read_at(after, 4)
    if rest == 128 and following[:3] == b"TAG":  # ID3v1 at the end
        return True
    second = _frame(following)
    return second is not None and second[:2] == (version, rate)
