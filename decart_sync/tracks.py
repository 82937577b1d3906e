"""Media tracks: the input video track and the output frame hub.

Input: user threads convert each frame once (av does scaling and pixel
conversion) and drop it into :class:`LatestFrame`; the aiortc track sends
each new frame as it arrives, paced by :class:`~.clock.Pacer` to the model's fps, so
a fast source is dropped down to that rate and a slow one repeats its last
frame. The holder outlives peer connections: after a reconnect a fresh track
reads the same holder.

Output: :class:`FrameHub` keeps only the newest decoded frame. Each consumer
converts it to numpy on its own thread when it asks, so the event loop never
does pixel work for consumers, a slow consumer only skips frames (counted),
and memory stays at one frame whatever the consumers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.video.reformatter import VideoReformatter

from ._portal import wait_until
from .clock import VIDEO_TIME_BASE, Pacer, Timestamps
from .errors import DecartSDKError, InvalidInputError, TimeoutError_
from .models import ModelDefinition
from .stats import RateMeter

PIXEL_FORMATS = ("rgb24", "bgr24")


def check_frame(frame: Any, pixel_format: str) -> tuple[np.ndarray, str]:
    """A user frame, validated, with the av pixel format it is in."""
    if not isinstance(frame, np.ndarray):
        raise InvalidInputError(
            f"a frame must be a numpy array (height, width, 3) of uint8, got {type(frame).__name__}"
        )
    if frame.dtype != np.uint8:
        raise InvalidInputError(
            f"a frame must have dtype uint8, got {frame.dtype}; "
            "convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    if frame.ndim == 2:
        layout = "gray"
    elif frame.ndim == 3 and frame.shape[2] == 3:
        layout = pixel_format
    else:
        raise InvalidInputError(
            f"a frame must have shape (height, width, 3) or (height, width), got {frame.shape}"
        )
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise InvalidInputError(f"a frame must be at least 2x2 pixels, got {frame.shape}")
    return (frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)), layout


def black_frame(model: ModelDefinition, pixels: str = "yuv420p") -> av.VideoFrame:
    rgb = np.zeros((model.height, model.width, 3), np.uint8)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pixels)


class LatestFrame:
    """The newest input frame; written by any thread, read by the track.

    ``pixels``: the format frames are kept in, the one the transport hands on
    (aiortc's encoder takes yuv420p; LiveKit converts RGB24 itself, with
    libyuv, at a fifth of swscale's cost for RGB to yuv420p).
    """

    def __init__(self, model: ModelDefinition, pixel_format: str, pixels: str = "yuv420p") -> None:
        self._model = model
        self._pixel_format = pixel_format
        self._pixels = pixels
        self._frame = black_frame(model, pixels)
        self._reformatter = VideoReformatter()  # keeps its swscale context between frames
        self._lock = threading.Lock()  # for the reformatter: senders may be several threads
        self.count = 0  # frames put
        self.sent = 0  # frames taken by tracks, over every connection
        self.skipped = 0  # frames put but superseded before any track took them
        self.rate = RateMeter()  # frames put per second, lately
        self.on_put: Callable[[], object] | None = None  # wakes the current track

    def put(self, frame: np.ndarray | av.VideoFrame) -> None:
        """Convert once, in the caller's thread, to the kept format at the model's size."""
        if isinstance(frame, av.VideoFrame):  # decoded from a media file
            video = frame
        else:
            array, layout = check_frame(frame, self._pixel_format)
            video = av.VideoFrame.from_ndarray(array, format=layout)
        with self._lock:
            self._frame = self._reformatter.reformat(
                video, format=self._pixels, width=self._model.width, height=self._model.height
            )  # a reference swap: the track reads it without waiting on senders
            self.count += 1  # after the swap: a track that sees the count sees the frame
        self.rate.tick()
        notify = self.on_put
        if notify is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                notify()

    def get(self) -> av.VideoFrame:
        return self._frame


class InputTrack(MediaStreamTrack):
    """The user's frames, each sent as it arrives, paced to the model's fps."""

    kind = "video"

    def __init__(self, source: LatestFrame, fps: float) -> None:
        super().__init__()
        self._source = source
        self._pacer = Pacer(fps)
        self._timestamps = Timestamps()
        self._seen = -1
        loop = asyncio.get_running_loop()
        self._wake = lambda: loop.call_soon_threadsafe(self._pacer.arrived)
        source.on_put = self._wake

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = await self._pacer.wait()
        count = self._source.count
        if self._seen >= 0:
            self._source.skipped += max(0, count - self._seen - 1)
        self._seen = count
        frame = self._source.get()
        frame.pts = self._timestamps.at(now)
        frame.time_base = VIDEO_TIME_BASE
        self._source.sent += 1
        return frame

    def stop(self) -> None:
        # The holder outlives us: a late stop must not unhook the next connection's track.
        if self._source.on_put is self._wake:
            self._source.on_put = None
        super().stop()


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
        self._frame: av.VideoFrame | None = None
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
            self._frame = frame
            self._seq += 1
            self.received += 1
            self.last_frame_time = time.monotonic()
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
        """The newest frame newer than ``after``, with its arrival time; None at the
        deadline or when closed."""
        with self._cond:
            if not wait_until(lambda: self._seq > after or self._closed, self._cond.wait, timeout):
                return None
            if self._seq > after and self._frame is not None and not self._closed:
                assert self.last_frame_time is not None
                return self._seq, self._frame, self.last_frame_time
            if self._error is not None:
                raise self._error
            return None

    def count_dropped(self, count: int) -> None:
        if count > 0:
            with self._cond:
                self.dropped += count

    def latest(self) -> av.VideoFrame | None:
        return self._frame

    def to_numpy(self, frame: av.VideoFrame) -> np.ndarray:
        """One conversion, one array: the consumer's own, writable."""
        with self._convert_lock:
            converted = self._reformatter.reformat(
                frame, format=self.pixel_format, width=self.model.width, height=self.model.height
            )
        return converted.to_ndarray()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> DecartSDKError | None:
        """Why the session ended, once it did."""
        return self._error


class FrameIterator(Iterator[np.ndarray]):
    """Iterates a hub from the frame after the current one; counts skipped frames."""

    def __init__(self, hub: FrameHub, timeout: float | None) -> None:
        self._hub = hub
        self._timeout = timeout
        self._seen = hub.seq
        self.delivered = 0
        self.dropped = 0
        #: seconds from the frame's arrival on the loop to its array being handed out
        self.last_age = 0.0

    def __iter__(self) -> FrameIterator:
        return self

    def __next__(self) -> np.ndarray:
        got = self._hub.wait_next(self._seen, self._timeout)
        if got is None:
            if self._hub.closed:
                raise StopIteration
            raise TimeoutError_(f"no output frame within {self._timeout} s")
        seq, frame, arrived = got
        if self._seen:
            self.dropped += seq - self._seen - 1
            self._hub.count_dropped(seq - self._seen - 1)
        self._seen = seq
        self.delivered += 1
        array = self._hub.to_numpy(frame)
        self.last_age = time.monotonic() - arrived
        return array
