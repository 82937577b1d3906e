"""Pictures, sounds and media watchers for tests/drivers/official_client.py, plus the
machine's network adjustments its docstring describes.

Runs in the official SDK's own virtualenv, imported from the driver's folder: only
the SDK, its dependencies (aiortc, av) and numpy.
"""

from __future__ import annotations

import asyncio
import fractions
import io
import logging
import math
import struct
import time
import wave
import zlib
from collections.abc import Awaitable
from typing import Any

import numpy as np

# What the SDK is asked to send: small, so VP8 stays cheap on a 2-core machine.
WIDTH, HEIGHT = 320, 192
FPS = 25
# Mean absolute error (0..255) under which a received frame counts as the expected one.
TOLERANCE = 12.0
FRAME_TIMEOUT = 20.0
# The live_avatar scenario's tone.
TONE_SECONDS = 1.5
TONE_AMPLITUDE = 0.6

stun_requested: list[str] = []


def patch_network() -> None:
    """Loopback host candidates, and no STUN server (see the module docstring)."""
    import aioice.ice
    import decart.realtime.webrtc_connection as webrtc_connection
    from aiortc import RTCConfiguration

    original = aioice.ice.get_host_addresses

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.insert(0, "127.0.0.1")
        return addresses

    aioice.ice.get_host_addresses = with_loopback

    def no_ice_servers(iceServers: list[Any] | None = None, **kwargs: Any) -> RTCConfiguration:
        for server in iceServers or []:
            urls = server.urls if isinstance(server.urls, list) else [server.urls]
            stun_requested.extend(urls)
        return RTCConfiguration(iceServers=[], **kwargs)

    webrtc_connection.RTCConfiguration = no_ice_servers


# -- pictures and sounds ---------------------------------------------------------


def pattern() -> np.ndarray:
    """Smooth gradients in every channel (the same as tests/support/helpers.py's)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    r = 40 + xs * 170 // WIDTH
    g = 40 + ys * 170 // HEIGHT
    b = 200 - (xs + ys) * 150 // (WIDTH + HEIGHT)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def solid(color: tuple[int, int, int]) -> np.ndarray:
    return np.tile(np.array(color, np.uint8), (HEIGHT, WIDTH, 1))


def invert(rgb: np.ndarray) -> np.ndarray:
    return 255 - rgb


def grayscale(rgb: np.ndarray) -> np.ndarray:
    y = np.round(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)
    return np.repeat(y[..., None], 3, axis=-1).astype(np.uint8)


def blend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint16) + b) // 2).astype(np.uint8)


def scaled(rgb: np.ndarray, gain: float) -> np.ndarray:
    return np.round(rgb.astype(np.float64) * gain).astype(np.uint8)


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def encode_png(rgb: np.ndarray) -> bytes:
    """A minimal truecolour PNG (stdlib only: the SDK's venv has no imaging library)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def tone_wav(seconds: float = TONE_SECONDS, rate: int = 16_000) -> bytes:
    """A 440 Hz mono 16-bit WAV: loud enough to take the avatar to full brightness."""
    t = np.arange(round(seconds * rate)) / rate
    samples = (TONE_AMPLITUDE * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


# -- media helpers ---------------------------------------------------------------


def pattern_track(picture: np.ndarray) -> Any:
    """A camera stand-in: ``picture`` at FPS frames a second."""
    from aiortc import MediaStreamTrack
    from av import VideoFrame

    class PictureTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            rgb = VideoFrame.from_ndarray(picture, format="rgb24")
            self._planes = rgb.reformat(format="yuv420p").to_ndarray()
            self._start: float | None = None
            self._index = 0

        async def recv(self) -> VideoFrame:
            loop = asyncio.get_running_loop()
            if self._start is None:
                self._start = loop.time()
            due = self._start + self._index / FPS
            if due > loop.time():
                await asyncio.sleep(due - loop.time())  # pacing, as a camera would
            frame = VideoFrame.from_ndarray(self._planes, format="yuv420p")
            frame.pts = self._index * (90_000 // FPS)
            frame.time_base = fractions.Fraction(1, 90_000)
            self._index += 1
            return frame

    return PictureTrack()


class VideoWatch:
    """Reads a remote video track continuously; waits for frames that match."""

    def __init__(self, track: Any) -> None:
        self.track = track
        self.count = 0
        self.size: tuple[int, int] | None = None
        self.latest: np.ndarray | None = None
        self.last_error: float | None = None
        self._changed = asyncio.Condition()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await self.track.recv()
                rgb = frame.to_ndarray(format="rgb24", width=WIDTH, height=HEIGHT)
                async with self._changed:
                    self.count += 1
                    self.size = (frame.width, frame.height)
                    self.latest = rgb
                    self._changed.notify_all()
        except MediaStreamError:
            pass

    async def until(
        self,
        expected: np.ndarray,
        *,
        after: int = 0,
        tolerance: float = TOLERANCE,
        timeout: float = FRAME_TIMEOUT,
    ) -> dict[str, Any]:
        """Wait for a frame (the ``after``-th or later) within ``tolerance`` of ``expected``."""

        def matches() -> bool:
            if self.latest is None or self.count < after:
                return False
            self.last_error = mean_error(self.latest, expected)
            return self.last_error < tolerance

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(matches)

        start = time.monotonic()
        matched = True
        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            matched = False
        return {
            "matched": matched,
            "error": self.last_error,
            "frames": self.count,
            "seconds": round(time.monotonic() - start, 3),
        }

    def stop(self) -> None:
        self.task.cancel()


class AudioWatch:
    """Reads a remote audio track continuously; keeps the loudest frame's RMS."""

    def __init__(self, track: Any) -> None:
        self.track = track
        self.count = 0
        self.max_rms = 0.0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await self.track.recv()
                data = frame.to_ndarray().astype(np.float64).reshape(-1) / 32768.0
                self.count += 1
                if data.size:
                    self.max_rms = max(self.max_rms, float(np.sqrt(np.mean(data * data))))
        except MediaStreamError:
            pass

    def stop(self) -> None:
        self.task.cancel()


class Remote:
    """The SDK's on_remote_stream callback, and the tracks it was given."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.video: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.audio: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def __call__(self, track: Any) -> None:
        self.kinds.append(track.kind)
        future = self.video if track.kind == "video" else self.audio
        if not future.done():
            future.set_result(track)

    async def video_watch(self) -> VideoWatch:
        return VideoWatch(await asyncio.wait_for(self.video, FRAME_TIMEOUT))

    async def audio_watch(self) -> AudioWatch:
        return AudioWatch(await asyncio.wait_for(self.audio, FRAME_TIMEOUT))


class Events:
    """The client's connection_change, error and generation_tick events."""

    def __init__(self, client: Any) -> None:
        self.states: list[str] = []
        self.errors: list[str] = []
        self.ticks: list[int] = []
        self._ticked = asyncio.Event()
        client.on("connection_change", self.states.append)
        client.on("error", lambda error: self.errors.append(str(error)))
        # A SubscribeClient ignores this one.
        client.on("generation_tick", self._tick)

    def _tick(self, message: Any) -> None:
        self.ticks.append(message.seconds)
        self._ticked.set()

    async def first_tick(self, timeout: float = 5.0) -> float:
        """Seconds waited for the first generation_tick."""
        start = time.monotonic()
        await asyncio.wait_for(self._ticked.wait(), timeout)
        return round(time.monotonic() - start, 3)

    def report(self) -> dict[str, Any]:
        return {"states": self.states, "errors": self.errors, "ticks": self.ticks}


async def timed(coro: Awaitable[Any], timeout: float | None = None) -> tuple[Any, float]:
    """The result and the seconds it took.

    Connects go without ``timeout`` (the scenario's budget bounds them): with
    ``wait_for`` around it, the SDK's deferred flush of the events buffered
    during connect would run before the caller could register its handlers.
    """
    start = time.monotonic()
    result = await (coro if timeout is None else asyncio.wait_for(coro, timeout))
    return result, round(time.monotonic() - start, 3)


class LogCapture(logging.Handler):
    """The SDK's own warnings and errors (e.g. a server message it failed to parse)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")
