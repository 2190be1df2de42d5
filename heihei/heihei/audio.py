"""
What an uploaded sound really is, measured with PyAV (FFmpeg): its format and
its length, never the client's word for either.

`measure` decodes the whole first audio stream, so a file that is cut short
or damaged is found out (`BadAudio("corrupt")`), and counts the decoded
samples for the length. It is synchronous and CPU-bound (a minute of audio
takes some tens of milliseconds): callers run it in a thread.

Hardening as in heihei/boss/media.py: FFmpeg may only read the given file
or bytes (`protocol_whitelist`) with the demuxers listed here
(`format_whitelist`), so a playlist cannot make it fetch anything else.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av

#: what voice records and topic posts may be: MP3, or AAC in an MPEG-4 container (.m4a)
DEMUXERS = "mp3,mov"
#: FFmpeg's demuxer name -> our format (the file extension we store it under)
FORMAT_OF = {"mp3": "mp3", "mov,mp4,m4a,3gp,3g2,mj2": "m4a"}
#: the codec each format must carry
CODEC_OF = {"mp3": ("mp3", "mp3float"), "m4a": ("aac",)}


class BadAudio(Exception):
    """`kind`: "corrupt" (not audio, damaged, wrong codec, silent) or "too-long"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Audio:
    format: str
    duration_s: float

    @property
    def whole_seconds(self) -> int:
        """The length as the seed's answers give it: whole seconds, at least 1."""
        return max(1, int(self.duration_s + 0.5))


def measure(source: str | bytes, *, max_seconds: float) -> Audio:
    """Decode `source` (a file path or the bytes) and measure it; BadAudio if it is not a whole,
    audible MP3 or AAC file of at most `max_seconds` (decoding stops just past that)."""
    try:
        if isinstance(source, bytes):
            container = av.open(io.BytesIO(source), "r", options={"format_whitelist": DEMUXERS})
        else:
            container = av.open(source, "r", options={"protocol_whitelist": "file", "format_whitelist": DEMUXERS})
    except Exception as e:
        raise BadAudio("corrupt", f"not an audio file ({_why(e)})") from None
    try:
        with container:
            fmt = FORMAT_OF.get(container.format.name)
            videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
            if fmt is None or videos or not container.streams.audio:
                raise BadAudio("corrupt", "not an MP3 or M4A sound file")
            stream = container.streams.audio[0]
            if stream.codec_context.name not in CODEC_OF[fmt]:
                raise BadAudio("corrupt", f"{fmt} with codec {stream.codec_context.name}")
            samples = 0
            rate = stream.codec_context.sample_rate or 0
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
                if rate and samples / rate > max_seconds:
                    raise BadAudio("too-long", f"longer than {max_seconds:g} seconds")
            if not samples or not rate:
                raise BadAudio("corrupt", "no sound in the file")
            return Audio(fmt, samples / rate)
    except BadAudio:
        raise
    except Exception as e:
        raise BadAudio("corrupt", f"damaged audio ({_why(e)})") from None


def _why(e: Exception) -> str:
    text = str(e).split(":")[0].strip() or type(e).__name__
    return text[:80]
