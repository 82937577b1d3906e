"""The input video: the newest frame a user gave, and the track or sink that sends it.

Input: user threads convert each frame once (av does scaling and pixel
conversion) and drop it into `LatestFrame`. Each new frame goes as it
arrives, held to the model's fps, so a fast source is dropped down to that
rate and a slow one repeats its last frame: aiortc's track pulls it, paced
by `clock.Pacer` (``aiortc_tracks``); LiveKit is handed it in the sender's
thread (`feed`). The holder outlives connections: after a reconnect the new
transport reads the same holder. The output side is ``frame_hub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import InvalidInputError
from ..metrics.rates import RateMeter
from ..models import ModelDefinition
from .clock import Cadence

log = logging.getLogger(__name__)

PIXEL_FORMATS = ("rgb24", "bgr24")
#: swscale's own slice threads (its default) cost about a third more CPU than one
#: thread for the same frame at these sizes; the caller's thread is the parallelism.
SCALER_THREADS = 1


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
    """The newest input frame; written by any thread, read by the transport.

    ``pixels``: the format frames are kept in, the one the transport hands on
    (aiortc's encoder takes yuv420p; LiveKit converts RGB24 itself, with
    libyuv, at a fifth of swscale's cost for RGB to yuv420p).

    Two ways out. aiortc pulls: ``aiortc_tracks.InputTrack`` reads the newest frame on
    the loop. A media library that copies a frame the moment it is handed one
    (LiveKit) attaches a sink instead (`feed`): ``put`` hands each frame
    over in the caller's thread, where its pixels were just written (LiveKit's
    ``capture_frame`` of a 1280x720 frame: 530 us there, 770 us from another
    thread, in isolation), and the loop is not woken for every frame. The
    same `clock.Cadence` as the track's holds those hand-overs to the
    model's fps; the loop sends what it held back, and the repeats.
    """

    def __init__(
        self,
        model: ModelDefinition,
        pixel_format: str,
        pixels: str = "yuv420p",
        *,
        mirror: bool = False,
    ) -> None:
        self._model = model
        self._mirror = mirror  # flip left to right, as a selfie view
        self._pixel_format = pixel_format
        self._pixels = pixels
        self._frame = black_frame(model, pixels)
        self._reformatter = VideoReformatter()  # keeps its swscale context between frames
        # Senders may be several threads; the sink is called under it too, so that a
        # detached sink is never called again.
        self._lock = threading.Lock()
        self.count = 0  # frames put
        self.sent = 0  # frames handed on, over every connection
        self.skipped = 0  # frames put but superseded before they could go
        self.rate = RateMeter()  # frames put per second, lately
        self.on_put: Callable[[], object] | None = None  # wakes the current track
        self._sink: Callable[[av.VideoFrame], None] | None = None
        self._cadence = Cadence(model.fps)  # for sinks; ``fresh``: the kept frame has not gone
        self._sinks_only = False
        self._buffer: tuple[np.ndarray, av.VideoFrame] | None = None  # reused by sinks

    def put(self, frame: np.ndarray | av.VideoFrame, copy: bool = True) -> float:
        """Convert once, in the caller's thread, to the kept format at the model's size.
        ``copy=False``: the caller never writes to the array again, so it may be kept.

        Returns the frame's capture time (``time.time()``), which travels with it as
        its frame timing (``frame.opaque``, microseconds) to the service and back."""
        captured = time.time()
        stamp = round(captured * 1e6)
        mirror = self._mirror
        if isinstance(frame, av.VideoFrame) and mirror:
            frame, copy = frame.to_ndarray(format=self._pixel_format), False  # ours
        if isinstance(frame, av.VideoFrame):  # decoded from a media file
            video = frame
        else:
            array, layout = check_frame(frame, self._pixel_format)
            if mirror:  # flipped into an array of our own: no copy is left to make
                array, copy = np.ascontiguousarray(array[:, ::-1]), False
            # A view of the caller's array: the conversion below writes the kept copy.
            video = av.VideoFrame.from_numpy_buffer(array, format=layout)
        with self._lock:
            kept = self._reformatter.reformat(
                video,
                format=self._pixels,
                width=self._model.width,
                height=self._model.height,
                threads=SCALER_THREADS,
            )
            if kept is video and copy and not isinstance(frame, av.VideoFrame):
                # Already in the kept format and size: av returned the view itself, and
                # the caller may reuse its array. numpy copies at memory speed.
                kept = self._copy(array, layout)
            # On the kept frame only: PyAV keys opaque values by id(), so a second frame
            # holding the same value loses it as soon as the first one is freed.
            kept.opaque = stamp
            if self._sink is not None:
                if self._cadence.fresh:
                    self.skipped += 1
                self._cadence.fresh = True
                self._send_if_due(kept, time.monotonic())
            self._frame = kept  # a reference swap: the track reads it without waiting on senders
            self.count += 1  # after the swap: a track that sees the count sees the frame
        self.rate.tick()
        notify = self.on_put
        if notify is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                notify()
        return captured

    def get(self) -> av.VideoFrame:
        """The newest frame, for a track (never once a sink was attached)."""
        return self._frame

    def _copy(self, array: np.ndarray, layout: str) -> av.VideoFrame:
        if not self._sinks_only:
            return av.VideoFrame.from_numpy_buffer(array.copy(), format=layout)
        # Only sinks read kept frames, under the lock: one buffer serves every frame
        # (a fresh 2.7 MB one per 720p frame costs as much again in page faults).
        if self._buffer is None or self._buffer[0].shape != array.shape:
            buffer = np.empty_like(array)
            self._buffer = buffer, av.VideoFrame.from_numpy_buffer(buffer, format=layout)
        np.copyto(self._buffer[0], array)
        return self._buffer[1]

    # -- the sink (see the class docstring); under the lock --------------------------

    def _send_if_due(self, frame: av.VideoFrame, now: float) -> float:
        """Hands ``frame`` on if it is new or a repeat is due, and the rate allows;
        returns the seconds until it is worth looking again."""
        period = self._cadence.period
        delay = self._cadence.due_in(now)
        if delay > 0:
            # At least once a period: a sender's frame the rate held back waits no longer.
            return min(max(delay, 0.001), period)
        assert self._sink is not None
        try:
            self._sink(frame)
        except Exception as exc:  # the media is going away: the session hears it from there
            log.debug("an input frame could not be handed on: %r", exc)
        self.sent += 1
        self._cadence.sent(now)
        return period

    def attach(self, sink: Callable[[av.VideoFrame], None]) -> None:
        with self._lock:
            self._sink = sink
            self._sinks_only = True  # a client keeps its transport: no track reads us now
            self._cadence.fresh = True  # the newest frame (black before any) goes at once

    def detach(self, sink: Callable[[av.VideoFrame], None]) -> None:
        """After this returns, ``sink`` is not called again."""
        with self._lock:
            if self._sink is sink:
                self._sink = None

    def send_due(self) -> float:
        """Loop side: sends the frame the rate held back, or a repeat, if one is due;
        the seconds until the next look. Never waits for a sender's hand-over."""
        if not self._lock.acquire(blocking=False):
            return 0.002  # a sender is handing a frame over right now
        try:
            if self._sink is None:
                return self._cadence.period
            return self._send_if_due(self._frame, time.monotonic())
        finally:
            self._lock.release()


async def feed(source: LatestFrame, sink: Callable[[av.VideoFrame], None]) -> None:
    """Hands ``source``'s frames to ``sink``: new ones in the sender's thread, and
    from here, on the loop, those the rate held back and the repeats. Runs until
    cancelled."""
    source.attach(sink)
    try:
        while True:
            await asyncio.sleep(source.send_due())
    finally:
        source.detach(sink)
