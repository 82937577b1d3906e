"""Input sources: whatever the user streams from, fed on its own thread.

A source is ``None``, an iterable of numpy frames, an object with an OpenCV
style ``read() -> (ok, frame)``, or a path to a media file (decoded by av).
User code (a camera's ``read()``, a generator) may block, so it never runs on
the event loop: a ``decart-sync-source`` thread pulls at most one frame per
model frame period and hands it on. Files play in real time by their own
timestamps. The input track sends each new frame as it comes, at most at the
model's fps. :func:`synthetic` is a test pattern for demos and benchmarks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import numpy as np

from .errors import DecartSDKError, InvalidInputError
from .models import ModelDefinition

log = logging.getLogger(__name__)

Push = Callable[[Any], None]


def frames_of(source: Any) -> Callable[[], Iterator[Any]]:
    """A factory of the source's frames (numpy arrays or av frames); validates eagerly."""
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
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


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
                yield (start + frame.time, frame)
            else:
                yield frame


class Feeder:
    """Pulls from a source on a named thread until it ends or :meth:`stop`."""

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
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decart-sync-source", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

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
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], av.VideoFrame):
                at, frame = item  # a file frame with its wall-clock due time
                if self._stop.wait(max(0.0, at - time.monotonic())):
                    return
                self._push(frame)
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
