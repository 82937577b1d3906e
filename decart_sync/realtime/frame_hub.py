"""The output hub: the newest decoded frames, for any number of consumer threads.

The hub keeps the newest few frames (`HELD`). Each consumer converts one to
numpy on its own thread when it asks, so the event loop never does pixel work
for consumers, a slow consumer only skips frames (counted in ``.dropped``),
and memory stays at a few frames whatever the consumers do.

A consumer gets the newest frame, unless frames it has not seen arrived
together with the newest (within `BURST` of a frame period): then the oldest
of those, and the rest after it. Over a lossy network a retransmitted packet
releases the frames held behind it at once; a consumer that keeps up with the
frame rate sees each of them, where one that is slower still skips to the
newest, since frames that arrived a period or more apart were not a burst.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import attrs
import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .._portal import wait_until
from ..errors import DecartSDKError, TimeoutError_
from ..metrics.rates import RateMeter
from ..models import ModelDefinition
from .tracks import SCALER_THREADS

HELD = 4  # frames kept for consumers
BURST = 0.5  # of a frame period: frames that arrived this close to the newest came together


class FrameHub:
    """Fan-out of the newest output frame to any number of consumer threads."""

    def __init__(self, model: ModelDefinition, pixel_format: str) -> None:
        self.model = model
        self.pixel_format = pixel_format
        self._cond = threading.Condition()
        # One reformatter keeps its swscale context from frame to frame (a fresh one per
        # frame costs as much as the conversion). Neither it nor an av frame is
        # thread-safe: two threads converting at once can crash, hence the lock.
        self._reformatter = VideoReformatter()
        self._convert_lock = threading.Lock()
        self._held: deque[tuple[int, av.VideoFrame, float]] = deque(maxlen=HELD)
        self._burst = BURST / model.fps
        self._seq = 0
        self._closed = False
        self._error: DecartSDKError | None = None
        self.received = 0
        self.last_frame_time: float | None = None  # monotonic, when the newest frame arrived
        self.rate = RateMeter()  # frames received per second, lately
        self.dropped = 0  # frames consumers skipped, over all of them

    # -- loop side ---------------------------------------------------------

    def publish(self, frame: av.VideoFrame) -> None:
        with self._cond:
            self._seq += 1
            self.received += 1
            self.last_frame_time = time.monotonic()
            self._held.append((self._seq, frame, self.last_frame_time))
            self._cond.notify_all()
        self.rate.tick(self.last_frame_time)

    def close(self, error: DecartSDKError | None = None) -> None:
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    # -- consumer side -----------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    def wait_next(
        self, after: int, timeout: float | None
    ) -> tuple[int, av.VideoFrame, float] | None:
        """The next frame for a consumer that saw number ``after`` (the newest, or the
        oldest unseen of a burst: see the module), as ``(number, frame, arrival time)``;
        None at the deadline or when closed."""
        with self._cond:
            if not wait_until(lambda: self._seq > after or self._closed, self._cond.wait, timeout):
                return None
            if self._seq > after and self._held and not self._closed:
                newest = self._held[-1][2]
                return next(
                    held
                    for held in self._held
                    if held[0] > after and newest - held[2] <= self._burst
                )
            if self._error is not None:
                raise self._error
            return None

    def read_after(self, seen: int, timeout: float | None) -> tuple[int, np.ndarray] | None:
        """A ``cv2.VideoCapture.read()``: the next frame after number ``seen`` (0: any),
        as ``(its number, array)``; None at ``timeout`` or once the hub is closed."""
        try:
            got = self.wait_next(seen, timeout)
        except DecartSDKError:
            return None
        if got is None:
            return None
        if seen:
            self.count_dropped(got[0] - seen - 1)
        return got[0], self.to_numpy(got[1])

    def count_dropped(self, count: int) -> None:
        if count > 0:
            with self._cond:
                self.dropped += count

    def latest(self) -> av.VideoFrame | None:
        with self._cond:
            return self._held[-1][1] if self._held else None

    def to_numpy(self, frame: av.VideoFrame) -> np.ndarray:
        """One conversion, one array: the consumer's own, writable."""
        with self._convert_lock:
            converted = self._reformatter.reformat(
                frame,
                format=self.pixel_format,
                width=self.model.width,
                height=self.model.height,
                threads=SCALER_THREADS,
            )
        return converted.to_ndarray()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> DecartSDKError | None:
        """Why the session ended, once it did."""
        return self._error


@attrs.frozen
class FrameInfo:
    """Where an output frame came from, for ``frames(with_info=True)``.

    ``source_time``: the capture time (``time.time()``, as ``send_frame``
    returned it) of the input frame the service made this one from, over
    LiveKit, where each frame carries it both ways; None on plain WebRTC, and
    for a frame the service sent again unchanged. ``received``: when it
    arrived (``time.time()``). ``g2g_ms``: the two apart, glass to glass.
    """

    seq: int
    received: float
    source_time: float | None = None

    @property
    def g2g_ms(self) -> float | None:
        if self.source_time is None:
            return None
        return round((self.received - self.source_time) * 1000, 2)


def source_time(frame: av.VideoFrame) -> float | None:
    """The capture time an output frame carries (LiveKit frame timing), in seconds."""
    stamp = frame.opaque
    return stamp / 1e6 if isinstance(stamp, int) else None


class FrameIterator(Iterator[Any]):
    """Iterates a hub from the frame after the current one; counts skipped frames.

    Yields arrays, or ``(array, FrameInfo)`` pairs when made ``with_info``."""

    def __init__(self, hub: FrameHub, timeout: float | None, with_info: bool = False) -> None:
        self._hub = hub
        self._timeout = timeout
        self._with_info = with_info
        self._seen = hub.seq
        self.delivered = 0
        self.dropped = 0
        #: seconds from the frame's arrival on the loop to its array being handed out
        self.last_age = 0.0

    def __iter__(self) -> FrameIterator:
        return self

    def __next__(self) -> Any:
        got = self._hub.wait_next(self._seen, self._timeout)
        if got is None:
            if self._hub.closed:
                raise StopIteration
            raise TimeoutError_(f"no output frame within {self._timeout} s")
        seq, frame, arrived = got
        self.dropped += seq - self._seen - 1  # published since this iterator began, unseen
        self._hub.count_dropped(seq - self._seen - 1)
        self._seen = seq
        self.delivered += 1
        array = self._hub.to_numpy(frame)
        now = time.monotonic()
        self.last_age = now - arrived
        if not self._with_info:
            return array
        received = time.time() - (now - arrived)
        return array, FrameInfo(seq, received, source_time(frame))
