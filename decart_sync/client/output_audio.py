"""The service's audio (live_avatar speaks back): kept briefly, read by any number of consumers.

The loop drops each received frame (aiortc's ``av.AudioFrame`` or LiveKit's
``rtc.AudioFrame``) into `AudioHub`, a ring of the last few seconds;
it never waits for a reader. Each `AudioIterator` converts on its own
thread to an [`AudioChunk`][decart_sync.client.output_audio.AudioChunk] of int16 samples.
A reader that falls more
than the ring behind skips to the oldest chunk still kept and counts what it
missed in ``.dropped``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

import attrs
import numpy as np

from .._portal import wait_until
from ..errors import DecartSDKError, TimeoutError_

KEEP = 250  # chunks: 5 s of aiortc's 20 ms frames, 2.5 s of LiveKit's 10 ms ones


class Closable(Protocol):
    @property
    def closed(self) -> bool: ...

    @property
    def error(self) -> DecartSDKError | None: ...


@attrs.frozen
class AudioChunk:
    """``samples``: (frames, channels) int16, interleaved as received."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def to_chunk(frame: Any) -> AudioChunk:
    """One received frame as int16 samples, whichever media library decoded it."""
    if hasattr(frame, "num_channels"):  # LiveKit: int16 interleaved in .data
        data = np.frombuffer(frame.data, np.int16).reshape(-1, frame.num_channels)
        return AudioChunk(data.copy(), int(frame.sample_rate))
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        array = array.T
    array = array.reshape(-1, channels)
    if array.dtype.kind == "f":
        array = (np.clip(array, -1.0, 1.0) * 32767).astype(np.int16)
    elif array.dtype != np.int16:
        array = (array.astype(np.int64) >> (8 * array.dtype.itemsize - 16)).astype(np.int16)
    return AudioChunk(np.ascontiguousarray(array), int(frame.sample_rate))


class AudioHub:
    """A ring of received audio frames; closes with the video it belongs to."""

    def __init__(self, video: Closable, keep: int = KEEP) -> None:
        self._video = video
        self._frames: deque[Any] = deque(maxlen=keep)
        self._seq = 0  # the newest frame's number; frames count from 1
        self._cond = threading.Condition()
        self._closed = False
        self.received = 0
        self.dropped = 0  # chunks readers skipped, over all of them

    def publish(self, frame: Any) -> None:
        with self._cond:
            self._frames.append(frame)
            self._seq += 1
            self.received += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def closed(self) -> bool:
        return self._closed or self._video.closed

    def wait_next(self, after: int, timeout: float | None) -> tuple[int, Any, int] | None:
        """The frame after ``after`` (or the oldest kept), its number and how many were
        skipped; None at the deadline or when closed."""
        with self._cond:
            if not wait_until(lambda: self._seq > after or self.closed, self._cond.wait, timeout):
                return None
            if self._seq > after and not self.closed:
                oldest = self._seq - len(self._frames) + 1
                seq = max(after + 1, oldest)
                skipped = seq - after - 1
                self.dropped += skipped
                return seq, self._frames[seq - oldest], skipped
        if self._video.error is not None:
            raise self._video.error
        return None


class AudioIterator(Iterator[AudioChunk]):
    """Iterates the audio received from now on; ``.dropped`` counts chunks it missed."""

    def __init__(self, hub: AudioHub, timeout: float | None) -> None:
        self._hub = hub
        self._timeout = timeout
        self._seen = hub.seq
        self.delivered = 0
        self.dropped = 0
        self.sample_rate: int | None = None  # known from the first chunk

    def __iter__(self) -> AudioIterator:
        return self

    def __next__(self) -> AudioChunk:
        got = self._hub.wait_next(self._seen, self._timeout)
        if got is None:
            if self._hub.closed:
                raise StopIteration
            raise TimeoutError_(f"no output audio within {self._timeout} s")
        self._seen, frame, skipped = got
        self.dropped += skipped
        self.delivered += 1
        chunk = to_chunk(frame)
        self.sample_rate = chunk.sample_rate
        return chunk
