"""
Reading, checking and converting uploaded media, and drawing group pictures.

Everything here is synchronous and CPU-bound: callers run it in a thread
(`MediaStore` does, with a small semaphore). Facts about a file (duration,
size) are always measured from the file itself with PyAV (FFmpeg) and Pillow,
never taken from the client's file name or content type.

Hardening: FFmpeg is only allowed to read the local file (`protocol_whitelist`)
with the demuxers listed here (`format_whitelist`), so a playlist format can
never make it fetch a URL or another local file; Pillow only opens the image
formats listed, and images over `MAX_IMAGE_PIXELS` are refused before they are
decoded.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import av
from PIL import Image, ImageDraw

from heihei.core.errors import Refused

#: demuxers accepted for audio uploads (names as FFmpeg matches them)
AUDIO_DEMUXERS = "mp3,mov,wav,ogg,flac,aac,amr,matroska,caf,aiff,asf"
#: video uploads must be ISO BMFF (what `.mp4` promises to the clients)
VIDEO_DEMUXERS = "mov"
IMAGE_FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "BMP"]
MAX_IMAGE_PIXELS = 40_000_000
#: sample rates the MP3 encoder takes; anything else is resampled to 44.1 kHz
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
JPEG_QUALITY = 90

PICTURE_SIZE = 340
PICTURE_BACKGROUND = (200, 200, 200)  # the original's grey
PICTURE_GAP = 10
MAX_PICTURE_TILES = 9


#: refusal reasons of uploads (the HTTP surface gives each its code)
UNSUPPORTED_MEDIA = "unsupported-media"
TOO_LARGE = "too-large"


class MediaError(Refused):
    """The file is not what the endpoint takes, is corrupt or too long (reason UNSUPPORTED_MEDIA
    unless said otherwise)."""

    def __init__(self, detail: str, *, reason: str = UNSUPPORTED_MEDIA, wrong_type: bool = False) -> None:
        super().__init__(reason, detail)
        #: the file is simply not of the kind asked for (rather than too long, silent ...)
        self.wrong_type = wrong_type


@dataclass(frozen=True)
class AudioInfo:
    demuxer: str
    codec: str
    duration_s: float

    @property
    def is_mp3(self) -> bool:
        return self.demuxer == "mp3" and self.codec.startswith("mp3")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # as displayed (EXIF orientation applied)
    height: int


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration_s: float


def whole_seconds(duration_s: float) -> int:
    """The seed's `-<seconds>`: nearest whole second, at least 1 for any sound at all."""
    return max(1, int(duration_s + 0.5))


def _open(path: str, demuxers: str):
    return av.open(path, "r", options={"protocol_whitelist": "file", "format_whitelist": demuxers})


def _real_video_streams(container) -> list:
    # cover art in an MP3 or M4A is a one-picture "video" stream: not a video
    return [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]


# -- audio ------------------------------------------------------------------------------------


def probe_audio(path: str, max_seconds: float) -> AudioInfo:
    """Decode the whole first audio stream: proves it is not corrupt and measures its length."""
    try:
        with _open(path, AUDIO_DEMUXERS) as container:
            if _real_video_streams(container):
                raise MediaError("expected an audio file, got a video", wrong_type=True)
            if not container.streams.audio:
                raise MediaError("not an audio file", wrong_type=True)
            stream = container.streams.audio[0]
            samples = 0
            rate = stream.codec_context.sample_rate or 0
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
                if rate and samples / rate > max_seconds:
                    raise MediaError(f"audio longer than {int(max_seconds)} seconds")
            if not samples or not rate:
                raise MediaError("audio file without any sound")
            return AudioInfo(container.format.name, stream.codec_context.name, samples / rate)
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"not a readable audio file ({_why(e)})", wrong_type=True) from None


def transcode_to_mp3(src: str, dst: str, max_seconds: float) -> float:
    """Re-encode the first audio stream of `src` as MP3 into `dst`; returns its duration."""
    try:
        with _open(src, AUDIO_DEMUXERS) as container:
            if not container.streams.audio:
                raise MediaError("not an audio file")
            in_stream = container.streams.audio[0]
            in_rate = in_stream.codec_context.sample_rate or 44100
            rate = in_rate if in_rate in MP3_RATES else 44100
            layout = "mono" if in_stream.codec_context.channels == 1 else "stereo"
            samples = 0
            with av.open(dst, "w", format="mp3") as out:
                out_stream = out.add_stream("libmp3lame", rate=rate, layout=layout)
                out_stream.bit_rate = 64000 if layout == "mono" else 128000
                resampler = av.AudioResampler(format=out_stream.codec_context.format.name, layout=layout, rate=rate)
                for frame in container.decode(in_stream):
                    frame.pts = None
                    for converted in resampler.resample(frame):
                        samples += converted.samples
                        for packet in out_stream.encode(converted):
                            out.mux(packet)
                    if samples / rate > max_seconds:
                        raise MediaError(f"audio longer than {int(max_seconds)} seconds")
                for converted in resampler.resample(None):
                    samples += converted.samples
                    for packet in out_stream.encode(converted):
                        out.mux(packet)
                for packet in out_stream.encode(None):
                    out.mux(packet)
            if not samples:
                raise MediaError("audio file without any sound")
            return samples / rate
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"cannot convert the audio to MP3 ({_why(e)})") from None


# -- images -------------------------------------------------------------------------------------


def _open_image(source) -> Image.Image:
    image = Image.open(source, formats=IMAGE_FORMATS)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaError("image without pixels")
    if width * height > MAX_IMAGE_PIXELS:
        raise MediaError(f"image larger than {MAX_IMAGE_PIXELS} pixels")
    image.load()  # a truncated or corrupt file fails here
    return image


def is_image(path: str) -> bool:
    """Cheap check (header only) used to route writev2 uploads."""
    try:
        with Image.open(path, formats=IMAGE_FORMATS):
            return True
    except Exception:
        return False


def image_to_jpeg(src: str, dst: str) -> ImageInfo:
    """Check the image and write it as JPEG to `dst` (a JPEG is copied byte for byte)."""
    try:
        with _open_image(src) as image:
            orientation = image.getexif().get(0x0112, 1) if image.format == "JPEG" else 1
            width, height = image.size
            if orientation in (5, 6, 7, 8):  # displayed turned by 90 degrees
                width, height = height, width
            if image.format == "JPEG":
                with open(src, "rb") as f_in, open(dst, "wb") as f_out:
                    while chunk := f_in.read(1 << 20):
                        f_out.write(chunk)
            else:
                _flatten(image).save(dst, "JPEG", quality=JPEG_QUALITY)
            return ImageInfo(image.format, width, height)
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"not a readable image ({_why(e)})") from None


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: JPEG has no transparency."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


# -- video ---------------------------------------------------------------------------------------


def probe_video(path: str, max_seconds: float) -> VideoInfo:
    """An MP4 with a decodable video stream: its size and length."""
    try:
        with _open(path, VIDEO_DEMUXERS) as container:
            streams = _real_video_streams(container)
            if not streams:
                raise MediaError("not a video (no video stream)")
            stream = streams[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            if duration > max_seconds:
                raise MediaError(f"video longer than {int(max_seconds)} seconds")
            for _frame in container.decode(stream):  # the first picture must decode
                break
            else:
                raise MediaError("video without any picture")
            if width <= 0 or height <= 0:
                raise MediaError("video without a size")
            return VideoInfo(width, height, duration)
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"not a readable MP4 video ({_why(e)})") from None


def _why(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    # FFmpeg messages carry an errno and end with the path of our temporary file
    text = re.sub(r"^\[Errno -?\d+\] ", "", text).split(": '", 1)[0][:120]
    # what FFmpeg says when the format it detected is not in our whitelist
    return "unsupported format" if text == "Invalid argument" else text


# -- avatars and group pictures ----------------------------------------------------------------------


def default_avatar_jpeg(size: int = 200) -> bytes:
    """A neutral head-and-shoulders silhouette for members without an avatar."""
    image = Image.new("RGB", (size, size), (225, 228, 232))
    draw = ImageDraw.Draw(image)
    grey = (160, 166, 173)
    r = size * 0.19
    cx, cy = size / 2, size * 0.38
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=grey)
    draw.ellipse((size * 0.18, size * 0.66, size * 0.82, size * 1.3), fill=grey)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def layout(count: int) -> tuple[int, list[tuple[int, int]]]:
    """Tile size and top-left corners for `count` avatars on the 340x340 picture.

    Like the original: 150 px tiles in two columns for up to 4 members, 100 px
    tiles in three columns for 5 to 9; a short first row is centred, and the
    whole block is centred on the canvas.
    """
    count = max(1, min(count, MAX_PICTURE_TILES))
    tile, columns = (150, 2) if count <= 4 else (100, 3)
    rows = math.ceil(count / columns)
    first = count - (rows - 1) * columns
    block = rows * tile + (rows - 1) * PICTURE_GAP
    top = (PICTURE_SIZE - block) // 2
    corners = []
    for row in range(rows):
        in_row = first if row == 0 else columns
        width = in_row * tile + (in_row - 1) * PICTURE_GAP
        left = (PICTURE_SIZE - width) // 2
        for col in range(in_row):
            corners.append((left + col * (tile + PICTURE_GAP), top + row * (tile + PICTURE_GAP)))
    return tile, corners


def _square(image: Image.Image, tile: int) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    box = ((width - side) // 2, (height - side) // 2, (width - side) // 2 + side, (height - side) // 2 + side)
    return _flatten(image).resize((tile, tile), Image.LANCZOS, box=box)


def compose_group_picture(avatars: list[bytes | None], default: bytes) -> bytes:
    """The group's picture: a 340x340 JPEG tiling up to 9 avatars (None or unreadable: default)."""
    avatars = avatars[:MAX_PICTURE_TILES]
    canvas = Image.new("RGB", (PICTURE_SIZE, PICTURE_SIZE), PICTURE_BACKGROUND)
    if avatars:
        tile, corners = layout(len(avatars))
        for data, corner in zip(avatars, corners):
            try:
                if data is None:
                    raise ValueError("no avatar")
                with _open_image(io.BytesIO(data)) as image:
                    piece = _square(image, tile)
            except Exception:
                with Image.open(io.BytesIO(default)) as image:
                    piece = _square(image, tile)
            canvas.paste(piece, corner)
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
