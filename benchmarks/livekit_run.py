"""The measured run both LiveKit workers share (the floor and the official SDK's).

The stamped pattern goes in as an RGB24 numpy array through ``capture_frame``
at the input's fps, on the loop; the output comes out as RGB24 through
``rtc.VideoStream``, counted after the warm-up. One piece of code, so the two
are timed alike. Imports livekit only when called: the official SDK's worker
runs in its own virtualenv, with its own livekit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import numpy as np

from benchmarks.stamp import Pattern, Recorder


async def stream_and_measure(
    source: Any,
    remote: Awaitable[Any],
    rec: Recorder,
    *,
    name: str,
    pattern: Pattern,
    fps: float,
    warmup: float,
    seconds: float,
) -> dict:
    """Feed ``source`` (an ``rtc.VideoSource``) from now on, read the track ``remote``
    gives, and return ``rec``'s figures under ``name``. The feed stops and the output
    stream closes on the way out."""
    from livekit import rtc

    rgb24 = rtc.VideoBufferType.RGB24
    width, height = pattern.width, pattern.height

    async def produce() -> None:
        index, due = 0, time.monotonic()
        while True:
            frame = pattern.frame(index)
            rec.sent[index] = time.monotonic()
            source.capture_frame(rtc.VideoFrame(width, height, rgb24, frame.data))
            index += 1
            due += 1 / fps
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    producer = asyncio.ensure_future(produce())
    try:
        stream = rtc.VideoStream(await remote, format=rgb24)
        try:
            frames = aiter(stream)
            end_warmup = time.monotonic() + warmup
            while time.monotonic() < end_warmup:
                await anext(frames)
            rec.sent.clear()
            rec.begin()
            while (left := seconds - (time.monotonic() - rec.start)) > 0:
                try:  # a stalled network: the clock still ends the run
                    out = (await asyncio.wait_for(anext(frames), left)).frame
                except asyncio.TimeoutError:
                    break
                rec.on_output(np.frombuffer(out.data, np.uint8).reshape(out.height, out.width, 3))
            return rec.result(name)
        finally:
            await stream.aclose()
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
