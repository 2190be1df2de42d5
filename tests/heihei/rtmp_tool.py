"""
An RTMP publisher and player for the media-server tests (FFmpeg through PyAV), run as a child process.

    python rtmp_tool.py publish <url> <seconds>   a few seconds of generated video (FLV1, 160x120, 25 fps),
                                                  sent in real time; exit 0 when the server took it all
    python rtmp_tool.py play <url>                read the first packets; exit 0 when some arrived

Exit 3 when the server refused (closed the connection or answered an error). A child process, because
FFmpeg's blocking network calls hold the interpreter while the server asks heihei (in the test's process)
whether to admit them.
"""

from __future__ import annotations

import sys
import time

import av

REFUSED = 3


def publish(url: str, seconds: float) -> int:
    try:
        out = av.open(url, mode="w", format="flv", timeout=5)
    except av.FFmpegError as e:
        print(f"refused at connect: {e}")
        return REFUSED
    try:
        stream = out.add_stream("flv", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        start = time.monotonic()
        for index in range(int(seconds * 25)):
            frame = av.VideoFrame(160, 120, "yuv420p")
            for number, plane in enumerate(frame.planes):
                plane.update(bytes([(index * 7 + number * 50) % 255]) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
            delay = start + (index + 1) / 25 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for packet in stream.encode():
            out.mux(packet)
        out.close()
    except av.FFmpegError as e:
        print(f"refused while sending: {e}")
        return REFUSED
    print("published")
    return 0


def play(url: str) -> int:
    try:
        source = av.open(url, timeout=5)
        packets = 0
        for _ in source.demux():
            packets += 1
            if packets >= 3:
                break
        source.close()
    except av.FFmpegError as e:
        print(f"refused: {e}")
        return REFUSED
    print(f"played {packets} packets")
    return 0 if packets else REFUSED


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        sys.exit(publish(sys.argv[2], float(sys.argv[3])))
    sys.exit(play(sys.argv[2]))
