"""The content check: real files made by PyAV (LAME) and Pillow pass as what they are and fail as
anything else; the mp3 check follows ID3v2 tags and wants a second frame where it should be."""

from __future__ import annotations

import pytest

from heihei.heihei.sniff import matches
from tests.boss.conftest import jpeg_bytes, m4a_bytes, mp3_bytes, png_bytes, tone


def check(fmt: str, data: bytes) -> bool:
    return matches(fmt, lambda offset, length: data[offset:offset + length], len(data))


def id3v2(body: bytes = b"TIT2\x00\x00\x00\x05\x00\x00\x00abcd", version: int = 4) -> bytes:
    size = len(body)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3" + bytes([version, 0, 0]) + syncsafe + body


def raw_mp3() -> bytes:
    """MPEG audio frames without the ID3 tag PyAV's muxer writes."""
    data = mp3_bytes(0.5)
    assert data.startswith(b"ID3")
    body = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    return data[10 + body:]


def test_real_files_pass_as_their_format():
    mp3 = mp3_bytes(1.0)
    assert check("mp3", mp3)
    assert check("mp3", raw_mp3())
    assert check("mp3", tone("mp3", "libmp3lame", 0.5, rate=22050))  # MPEG-2 Layer III
    assert check("png", png_bytes())
    assert check("jpeg", jpeg_bytes()) and check("jpg", jpeg_bytes())


@pytest.mark.parametrize("fmt, data", [
    ("mp3", b""), ("png", b""), ("jpeg", b""),
    ("mp3", png_bytes()), ("mp3", jpeg_bytes()), ("mp3", m4a_bytes()), ("mp3", b"ID3garbage"),
    ("png", jpeg_bytes()), ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 8), ("png", b"<svg/>"),
    ("jpeg", png_bytes()), ("jpeg", b"\xff\xd8"), ("jpeg", b"\xff\xd8\xff\xff"), ("jpg", b"GIF89a"),
    ("gif", b"GIF89a"),
])
def test_other_content_fails(fmt, data):
    assert not check(fmt, data)


def test_mp3_details():
    frames = raw_mp3()
    # a tag in front, even with NUL padding left by a sloppy tagger, is skipped
    assert check("mp3", id3v2() + frames)
    assert check("mp3", id3v2() + b"\x00" * 100 + frames)
    assert check("mp3", id3v2(version=3) + id3v2() + frames)
    # a tag that claims more than the file holds, or with a non-syncsafe size
    assert not check("mp3", b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + frames[:100])
    assert not check("mp3", b"ID3\x04\x00\x00\x00\x00\x80\x00" + frames)
    # a frame header followed by something that is not the next frame
    assert not check("mp3", frames[:4] + b"\x00" * 2000)
    assert not check("mp3", frames[:4] + b"<html>" * 400)
    # not even one whole frame
    assert not check("mp3", frames[:100])
    # one frame then an ID3v1 tag is fine; a Layer II header is not mp3
    first = frames[:4]
    assert first[1] == 0xFB and (first[2] >> 2) & 3 == 0  # MPEG-1 Layer III, 44.1 kHz, as LAME wrote it
    kbits = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[(first[2] >> 4) - 1]
    length = 144 * kbits * 1000 // 44100 + ((first[2] >> 1) & 1)
    assert check("mp3", frames[:length] + b"TAG" + b"\x00" * 125)
    assert not check("mp3", frames[:length] + b"XAG" + b"\x00" * 125)
    layer2 = bytes([0xFF, 0xFD]) + frames[2:]
    assert not check("mp3", layer2)
