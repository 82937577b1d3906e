"""The async workers' media: a source track of the benchmark pattern, and the consumer."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
from aiortc import MediaStreamTrack

from benchmarks.stamp import Pattern, Recorder


class PatternTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, pattern: Pattern, fps: float, rec: Recorder) -> None:
        super().__init__()
        self._pattern, self._fps, self._rec = pattern, fps, rec
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index / self._fps
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        array = self._pattern.frame(self._index)
        self._rec.sent[self._index] = time.monotonic()
        frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")
        frame.pts = round((time.monotonic() - self._start) * 90_000)
        frame.time_base = fractions.Fraction(1, 90_000)
        self._index += 1
        return frame


async def measure(track: MediaStreamTrack, rec: Recorder, seconds: float, warmup: float) -> None:
    """Consume a remote track as an expert would (numpy per frame), recording after warm-up."""
    end_warmup = time.monotonic() + warmup
    while time.monotonic() < end_warmup:
        (await track.recv()).to_ndarray(format="rgb24")
    rec.sent.clear()
    rec.begin()
    while time.monotonic() - rec.start < seconds:
        rec.on_output((await track.recv()).to_ndarray(format="rgb24"))
