"""The tracks aiortc pulls: the user's video (plain WebRTC), and live_avatar's audio
(either transport; LiveKit reads it the same way).

Apart from ``tracks`` and ``audio`` so that a LiveKit session never loads
aiortc (about 10 MB of resident memory, and its import time): the plain
WebRTC transport imports this module, and an avatar's audio on first use.
"""

from __future__ import annotations

import asyncio
import time

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .audio import CHUNK, RATE, TIME_BASE, AvatarAudio
from .clock import VIDEO_TIME_BASE, Pacer, Timestamps
from .tracks import LatestFrame


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


class AvatarAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, audio: AvatarAudio) -> None:
        super().__init__()
        self._audio = audio
        self._start: float | None = None
        self._samples = 0
        self._silence = np.zeros((1, CHUNK), np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._samples / RATE
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        chunk, done = self._audio.next_chunk()
        data = self._silence if chunk is None else chunk.reshape(1, CHUNK)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._samples
        frame.time_base = TIME_BASE
        self._samples += CHUNK
        if done is not None:
            done.set()
        return frame
