"""Pictures and videos for the emulator's batch models: decoded, transformed, encoded.

A picture or every frame of a video goes through the realtime models' prompt
arithmetic (`transforms.apply`) at its own size (a video's cut to even
sides, as H.264's 4:2:0 needs), with the reference image scaled to that size.
A picture comes back as PNG (lossless: every pixel predictable), a video as
H.264 in MP4 at the input's frame rate, one output frame per input frame.
FFmpeg does the decoding and encoding (av); any failure is an
`StoreError` with HTTP 422.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np

from . import transforms
from .accounts import StoreError

MAX_FRAMES = 1800  # a minute at 30 fps
MAX_SIDE = 4096


def picture(data: bytes, field: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """The first picture in ``data`` as RGB, scaled to ``size`` (width, height) if given."""
    try:
        with av.open(io.BytesIO(data)) as container:
            for frame in container.decode(video=0):
                width, height = size or (frame.width, frame.height)
                _check_size(width, height, field)
                return frame.to_ndarray(format="rgb24", width=width, height=height)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise StoreError(422, f"{field} could not be decoded as a picture: {exc}") from None
    raise StoreError(422, f"{field} holds no picture")


def png(rgb: np.ndarray) -> bytes:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


def edit_picture(data: bytes, prompt: str | None, reference: bytes | None) -> bytes:
    rgb = picture(data, "data")
    height, width = rgb.shape[:2]
    image = picture(reference, "reference_image", (width, height)) if reference else None
    return png(transforms.apply(rgb, prompt, image))


def edit_video(
    data: bytes,
    prompt: str | None,
    reference: bytes | None,
    fallback_fps: float,
    stopped: Callable[[], bool] = lambda: False,
) -> bytes:
    """Every frame of the video in ``data`` transformed; MP4 bytes. ``stopped()``
    is asked between frames: the emulator is closing (422, nothing made)."""
    out = io.BytesIO()
    frames = 0
    try:
        with av.open(io.BytesIO(data)) as source:
            if not source.streams.video:
                raise StoreError(422, "data holds no video stream")
            stream = source.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(fallback_fps)
            with av.open(out, "w", format="mp4") as sink:
                encoder = sink.add_stream("libx264", rate=rate, options={"preset": "veryfast"})
                image = None
                for frame in source.decode(stream):
                    if frames == 0:
                        width, height = frame.width & ~1, frame.height & ~1
                        _check_size(width, height, "data")
                        encoder.width, encoder.height = width, height
                        encoder.pix_fmt = "yuv420p"
                        if reference:
                            image = picture(reference, "reference_image", (width, height))
                    frames += 1
                    if stopped():
                        raise StoreError(422, "the emulator closed during the job")
                    if frames > MAX_FRAMES:
                        raise StoreError(422, f"the emulator takes videos of {MAX_FRAMES} frames")
                    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                    result = av.VideoFrame.from_ndarray(
                        transforms.apply(rgb, prompt, image), format="rgb24"
                    )
                    result.pts = frames - 1
                    sink.mux(encoder.encode(result))
                if frames == 0:
                    raise StoreError(422, "data holds no frame")
                sink.mux(encoder.encode(None))
    except (av.FFmpegError, ValueError) as exc:
        raise StoreError(422, f"data could not be decoded as a video: {exc}") from None
    return out.getvalue()


def probe_video(data: bytes) -> None:
    """That ``data`` is a video FFmpeg reads (a container with a video stream): else 422."""
    try:
        with av.open(io.BytesIO(data)) as container:
            if container.streams.video and container.format.name not in _STILLS:
                return
    except (av.FFmpegError, ValueError) as exc:
        raise StoreError(422, f"data could not be read as a video: {exc}") from None
    raise StoreError(422, "data is not a video")


_STILLS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")


def _check_size(width: int, height: int, field: str) -> None:
    if not (2 <= width <= MAX_SIDE and 2 <= height <= MAX_SIDE):
        raise StoreError(422, f"{field} is {width}x{height}; sides of 2 to {MAX_SIDE} are taken")
