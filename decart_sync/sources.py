"""Input sources: whatever the user streams from, fed on its own thread.

A source is ``None``, an iterable of numpy frames, an object with an OpenCV
style ``read() -> (ok, frame)``, or a path to a media file (decoded by av).
User code (a camera's ``read()``, a generator) may block, so it never runs on
the event loop: a ``decart-sync-source`` thread pulls frames and hands them on.
A live ``read()`` source (a camera, a network stream) is read as fast as it
produces, or its driver's buffer fills and every frame sent is old; iterables
are pulled at the model's fps (a generator may produce as fast as it can);
files, and captures that know their frame count (a video file opened with
OpenCV), play at their timestamps or the model's fps. The input track keeps
only the newest frame and sends it at most at the model's fps.
[`synthetic()`][decart_sync.sources.synthetic] is a test pattern for demos and benchmarks.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import av
import numpy as np

from ._threads import Worker
from .errors import DecartSDKError, InvalidInputError
from .models import ModelDefinition

log = logging.getLogger(__name__)

Push = Callable[[Any], object]

# A live source that never blocks in read() (a wrapper handing back its latest
# frame) is still not read in a hot loop: no camera delivers more than this.
MAX_LIVE_READS_PER_S = 240.0
CAP_PROP_FRAME_COUNT = 7  # OpenCV's id; files know their length, cameras and streams do not


class Timed(NamedTuple):
    """A frame due at a wall-clock time, or at once (``at`` None: a live capture's)."""

    at: float | None
    frame: Any


def frames_of(source: Any) -> Callable[[], Iterator[Any]]:
    """A factory of the source's frames (numpy arrays or av frames); validates eagerly."""
    if isinstance(source, str) and is_media_spec(source):
        return open_media(source)
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise InvalidInputError(f"source file {path!r} does not exist")
        return lambda: _file_frames(path)
    if isinstance(source, np.ndarray):
        if source.ndim == 4:
            return lambda: iter(source)
        return lambda: iter((source,))
    if callable(getattr(source, "read", None)):
        return lambda: _capture_frames(source)
    if hasattr(source, "__iter__") or hasattr(source, "__next__"):
        return lambda: iter(source)
    raise InvalidInputError(
        "source must be None, an iterable of numpy frames, an object with read() -> (ok, frame) "
        f"such as cv2.VideoCapture, or a media file path; got {type(source).__name__}"
    )


def _capture_frames(capture: Any) -> Iterator[Any]:
    live = _is_live(capture)
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield Timed(None, frame) if live else frame


def _is_live(capture: Any) -> bool:
    get = getattr(capture, "get", None)
    if not callable(get):
        return True
    try:
        return not float(get(CAP_PROP_FRAME_COUNT)) > 0
    except Exception:  # a get() of some other meaning
        return True


def _file_frames(path: str) -> Iterator[Any]:
    """Decoded frames, released in real time by their timestamps."""
    try:
        container = av.open(path)
    except av.FFmpegError as exc:
        raise InvalidInputError(f"cannot open source file {path!r}: {exc}", cause=exc) from None
    with container:
        if not container.streams.video:
            raise InvalidInputError(f"source file {path!r} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start: float | None = None
        for frame in container.decode(stream):
            if frame.time is not None:
                start = start if start is not None else time.monotonic() - frame.time
                yield Timed(start + frame.time, frame)
            else:
                yield frame


# -- what av opens besides files: FFmpeg test patterns, cameras, network streams ----

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
OPEN_TIMEOUT = 10.0  # seconds av waits to open a network stream, and then for each read


def is_media_spec(text: str) -> bool:
    """``lavfi:GRAPH``, a camera (``0``, ``/dev/video0``) or a stream URL, not a file."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if os.path.isfile(text):
        return False
    return (
        text.startswith("lavfi:")
        or text.isdigit()
        or text.startswith("/dev/video")
        or scheme in NETWORK_SCHEMES
    )


def open_media(spec: str) -> Callable[[], Iterator[Any]]:
    """Open ``spec`` with av now (errors are the caller's at once); a factory of its frames.

    A lavfi pattern, and a stream that knows its duration (a file served over
    HTTP), play at their timestamps; cameras and live streams are read as
    fast as they produce (`Timed` with no time: the newest frame wins).
    """
    kind: str | None
    if spec.startswith("lavfi:"):
        url, kind, live = spec[len("lavfi:") :], "lavfi", False
    elif spec.isdigit() or spec.startswith("/dev/video"):
        kind = "avfoundation" if sys.platform == "darwin" else "v4l2"
        url, live = _camera(spec), True
    else:
        url, kind, live = spec, None, True
    options = {"rtsp_transport": "tcp"} if spec.lower().startswith("rtsp") else {}
    try:
        container = av.open(url, format=kind, options=options, timeout=OPEN_TIMEOUT)
    except (av.FFmpegError, OSError) as exc:
        raise InvalidInputError(f"cannot open source {spec!r}: {exc}", cause=exc) from None
    if not container.streams.video:
        container.close()
        raise InvalidInputError(f"source {spec!r} has no video stream")
    if kind is None and container.duration:  # a whole file at the other end: play it in time
        live = False
    return lambda: _media_frames(container, live)


def _camera(spec: str) -> str:
    if sys.platform == "darwin":
        return spec if spec.isdigit() else spec.rsplit("video", 1)[-1]
    return f"/dev/video{spec}" if spec.isdigit() else spec


def _media_frames(container: Any, live: bool) -> Iterator[Any]:
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start: float | None = None
        for frame in container.decode(stream):
            if live:
                yield Timed(None, frame)
            elif frame.time is not None:
                start = start if start is not None else time.monotonic() - frame.time
                yield Timed(start + frame.time, frame)
            else:
                yield frame


class Feeder:
    """Pulls from a source on a named thread until it ends or `stop()`."""

    def __init__(
        self,
        frames: Callable[[], Iterator[Any]],
        push: Push,
        fps: float,
        on_error: Callable[[DecartSDKError], None],
    ) -> None:
        self._frames = frames
        self._push = push
        self._period = 1.0 / fps
        self._on_error = on_error
        self.finished = threading.Event()
        self._worker = Worker(self._run, "decart-sync-source")
        self._stop = self._worker.stopping

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float | None = 1.0) -> None:
        self._worker.stop(timeout)

    def _run(self) -> None:
        try:
            self._feed()
        except DecartSDKError as exc:
            self._on_error(exc)
        except Exception as exc:
            log.exception("the input source raised; no more frames will be sent")
            self._on_error(InvalidInputError(f"the input source raised: {exc!r}", cause=exc))
        finally:
            self.finished.set()

    def _feed(self) -> None:
        due = time.monotonic()
        for item in self._frames():
            if self._stop.is_set():
                return
            if isinstance(item, Timed):
                # A live capture's frame goes at once; a file's at its time.
                at = item.at if item.at is not None else time.monotonic()
                if self._stop.wait(max(0.0, at - time.monotonic())):
                    return
                self._push(item.frame)
                if item.at is None:
                    gap = at + 1 / MAX_LIVE_READS_PER_S - time.monotonic()
                    if self._stop.wait(max(0.0, gap)):
                        return
            else:
                self._push(item)
                due += self._period
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                if time.monotonic() - due > 1.0:
                    due = time.monotonic()  # a source that stalled does not earn a burst


def synthetic(model: ModelDefinition, seconds: float | None = None) -> Iterator[np.ndarray]:
    """A moving colour test pattern at the model's size (and fps when paced)."""
    h, w = model.height, model.width
    ys, xs = np.mgrid[0:h, 0:w]
    base = np.stack([xs * 255 // w, ys * 255 // h, np.full_like(xs, 128)], axis=-1).astype(np.uint8)
    total = None if seconds is None else int(seconds * model.fps)
    i = 0
    while total is None or i < total:
        frame = np.roll(base, shift=(i * 8) % w, axis=1)
        x = (i * 16) % (w - 64)
        frame[h // 2 - 32 : h // 2 + 32, x : x + 64] = 255
        yield frame
        i += 1
