"""The emulator's media: paced output tracks, the audio echo and level meter, frame work.

Output goes through one source track per session (`PacedVideoTrack`,
`EchoAudioTrack`); the session fans each out with aiortc's
``MediaRelay`` to its own peer and to subscribers. Frames travel as yuv420p
planes (``(H * 3 / 2) x W`` uint8): the expensive colour conversions happen
once per new picture in a worker thread (`camera_planes()`,
`avatar_planes()`), and a repeated picture costs one copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from ..realtime.clock import VIDEO_TIME_BASE, Pacer, Timestamps
from . import colour, transforms

log = logging.getLogger(__name__)
PENDING = 2  # pictures waiting to be sent; more and the oldest is dropped

T = TypeVar("T")


class Latest(Generic[T]):
    """A mailbox of the newest ``keep`` items: ``put`` adds (dropping the oldest past
    ``keep``), ``get`` waits for one and takes the oldest kept.

    Stale items are dropped, so a consumer slower than its producer works on
    recent input instead of falling further behind (at most ``keep - 1`` items
    behind). After ``close``, ``get`` raises ``MediaStreamError`` (the
    producer's track ended).
    """

    def __init__(self, keep: int = 1) -> None:
        self._items: deque[T] = deque(maxlen=keep)
        self._fresh = asyncio.Event()
        self._closed = False

    def put(self, item: T) -> None:
        self._items.append(item)
        self._fresh.set()

    def close(self) -> None:
        self._closed = True
        self._fresh.set()

    async def get(self) -> T:
        while not self._items:
            if self._closed:
                raise MediaStreamError
            self._fresh.clear()
            await self._fresh.wait()
        return self._items.popleft()


class PacedVideoTrack(MediaStreamTrack):
    """Sends each new picture as soon as it is ready, in order, paced by the shared clock.

    Like a model that emits a frame per processed input (the session caps
    its intake); with nothing new for a while the last picture
    goes again, at the model's fps (`Pacer`, the
    client's input track keeps time the same way). ``on_frame`` runs for every
    frame handed out (the session counts them and starts generation on the
    first); ``frozen`` is consulted per frame so a fault can stall the output
    without ending the track.

    No two frames go less than ``min_gap`` seconds apart, a repeat and the
    new picture after it included: a model makes one picture at a time, and
    a libwebrtc receiver given two frames a few milliseconds apart shows only
    the newer when both are due at once (its frame buffer fast-forwards past
    a frame late for its render time, its render queue releases the newest
    due frame). At 5% loss and 30 ms jitter, a third of the pictures sent
    within 10 ms of the frame before never reached the client.
    """

    kind = "video"

    def __init__(
        self,
        fps: float,
        *,
        on_frame: Callable[[], None] = lambda: None,
        frozen: Callable[[], bool] = lambda: False,
        min_gap: float = 0.0,
    ) -> None:
        super().__init__()
        self._on_frame = on_frame
        self._frozen = frozen
        self._min_gap = min_gap
        self._last_sent = float("-inf")
        # Pictures not sent yet: two finished close together both go, in order.
        self._pending: deque[tuple[np.ndarray, int | None]] = deque(maxlen=PENDING)
        self._planes: np.ndarray | None = None  # the last picture sent
        self._first = asyncio.Event()
        self._pacer = Pacer(fps, burst=None)  # the session's intake already holds the rate
        self._timestamps = Timestamps()

    def push(self, planes: np.ndarray, stamp: int | None = None) -> None:
        """A new picture, as yuv420p planes; it goes out after those still pending.
        ``stamp``: the frame timing of the input it was made from (``frame.opaque``
        of its first sending; a repeat carries none)."""
        self._pending.append((planes, stamp))
        self._first.set()
        self._pacer.arrived()

    def stop(self) -> None:
        super().stop()
        self._first.set()  # a recv() waiting for a picture must end too
        self._pacer.arrived()

    async def recv(self) -> VideoFrame:
        while True:
            self._check_live()
            await self._first.wait()  # nothing to repeat before the first picture
            now = await self._pacer.wait()
            if now < self._last_sent + self._min_gap:
                await asyncio.sleep(self._last_sent + self._min_gap - now)
                now = time.monotonic()
            self._check_live()
            stamp = None
            if self._pending:
                self._planes, stamp = self._pending.popleft()
                if self._pending:
                    self._pacer.arrived()  # the next one is new too
            if not self._frozen() and self._planes is not None:
                break
        frame = VideoFrame.from_ndarray(self._planes, format="yuv420p")
        frame.opaque = stamp
        self._last_sent = now
        frame.pts = self._timestamps.at(now)
        frame.time_base = VIDEO_TIME_BASE
        self._on_frame()
        return frame

    def _check_live(self) -> None:
        if self.readyState != "live":
            raise MediaStreamError


class EchoAudioTrack(MediaStreamTrack):
    """Sends back the audio it is fed, restamped on its own continuous clock."""

    kind = "audio"
    # At most this many frames (20 ms each from aiortc) wait; older ones are dropped.
    BACKLOG = 10

    def __init__(self, on_frame: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self._frames: deque[AudioFrame] = deque(maxlen=self.BACKLOG)
        self._wake = asyncio.Event()
        self._samples = 0
        self._on_frame = on_frame

    def feed(self, frame: AudioFrame) -> None:
        self._frames.append(frame)
        self._wake.set()

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    async def recv(self) -> AudioFrame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._wake.clear()
            await self._wake.wait()
        if self.readyState != "live":
            raise MediaStreamError
        frame = self._frames.popleft()
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, frame.sample_rate)
        self._samples += frame.samples
        self._on_frame()
        return frame


class LevelMeter:
    """RMS of the most recent ~40 ms of received audio, in [0, 1] full scale."""

    WINDOW = 0.040
    # Audio that stopped arriving this long ago counts as silence.
    STALE = 0.25

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._chunks: deque[tuple[float, int, float]] = deque()  # (sum of squares, n, seconds)
        self._last = -1e9

    def feed(self, frame: AudioFrame) -> None:
        samples = normalised_samples(frame)
        if samples.size == 0 or frame.sample_rate <= 0:
            return
        duration = frame.samples / frame.sample_rate
        self._chunks.append((float(np.dot(samples, samples)), samples.size, duration))
        covered = sum(chunk[2] for chunk in self._chunks)
        # The epsilon keeps 20 ms + 20 ms counting as a full 40 ms window despite float sums.
        while len(self._chunks) > 1 and covered - self._chunks[0][2] >= self.WINDOW - 1e-9:
            covered -= self._chunks.popleft()[2]
        self._last = self._clock()

    def rms(self) -> float:
        if not self._chunks or self._clock() - self._last > self.STALE:
            return 0.0
        total = sum(chunk[0] for chunk in self._chunks)
        count = sum(chunk[1] for chunk in self._chunks)
        return float(np.sqrt(total / count))


def normalised_samples(frame: AudioFrame) -> np.ndarray:
    """All channels' samples as float64 in [-1, 1] (int16 / 32768 for s16)."""
    data = frame.to_ndarray().reshape(-1)
    if data.dtype == np.int16:
        return data.astype(np.float64) / 32768.0
    if data.dtype == np.int32:
        return data.astype(np.float64) / 2147483648.0
    if data.dtype.kind == "f":
        return data.astype(np.float64)
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    return np.zeros(0)


def camera_planes(
    frame: VideoFrame, width: int, height: int, prompt: str | None, image: np.ndarray | None
) -> np.ndarray:
    """One received camera frame, scaled to the model and transformed, as yuv420p planes.

    Blocking (swscale and numpy release the GIL): run it in a worker thread. swscale
    runs on that one thread: its slice threads cost more CPU than they save time.
    """
    if prompt is None and image is None:
        # Passthrough skips the RGB round trip: cheaper, and no extra rounding. Values of
        # another description are converted to our output's (see .colour).
        planes = frame.reformat(width=width, height=height, format="yuv420p", threads=1)
        described = colour.description(frame)
        return planes.to_ndarray() if described is None else colour.to_default(
            planes.to_ndarray(), *described
        )
    # PyAV reads the frame's description (colorspace, color_range) to make RGB.
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height, threads=1)
    return rgb_planes(transforms.apply(rgb, prompt, image))


def avatar_planes(image: np.ndarray, steps: int) -> np.ndarray:
    """The avatar picture at a brightness of ``steps``/256, as yuv420p planes."""
    return rgb_planes(transforms.scaled(image, steps))


def rgb_planes(rgb: np.ndarray) -> np.ndarray:
    frame = VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p", threads=1).to_ndarray()


async def drain(track: MediaStreamTrack) -> None:
    """Read and discard a track nobody uses: aiortc queues unread frames without bound."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
