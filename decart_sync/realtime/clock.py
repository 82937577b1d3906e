"""The media clock both sides share: frame timestamps and live pacing.

The client's input track and the emulator's output track both send live
pictures; they keep time the same way, so it is written once, here. Pure
asyncio and arithmetic: no media library is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time

VIDEO_CLOCK = 90_000  # RTP's video clock rate
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
REPEAT_DELAY = 1.5  # periods after a new picture before the last one is sent again


class Timestamps:
    """Presentation timestamps on the video clock from wall time, strictly increasing."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._last = -1

    def at(self, now: float) -> int:
        """The pts of a frame sent at ``now`` (``time.monotonic()``)."""
        if self._start is None:
            self._start = now
        self._last = max(self._last + 1, round((now - self._start) * VIDEO_CLOCK))
        return self._last


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved: holds a long-run rate while
    absorbing a producer's jitter. Arithmetic only; callers serialise access."""

    def __init__(self, rate: float, burst: float = 2.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._refilled: float | None = None

    def _refill(self, now: float) -> None:
        if self._refilled is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now

    def take(self, now: float) -> bool:
        """Spends a token if one is there."""
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait(self, now: float) -> float:
        """Seconds until a token is there."""
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)


class Cadence:
    """When the next picture of a live stream goes: the arithmetic behind `Pacer`.

    A frame goes as soon as a new picture is in, rather than on a fixed clock:
    a producer on its own clock (a camera, a paced loop) would otherwise lose
    frames to beating against the sampling clock, and wait up to a period. A
    token bucket holds the long-run rate to ``fps`` (a faster producer is
    dropped down to it), and with nothing new for a period the last picture
    goes again, so the stream never stalls; the first repeat waits half a
    period longer, so a producer a little late is not sent twice. The first
    frame goes at once. Callers serialise access.
    """

    def __init__(self, fps: float, burst: float = 2.0) -> None:
        self.period = 1.0 / fps
        self.fresh = False  # a new picture is in and has not gone
        self._bucket = TokenBucket(fps, burst)
        self._repeat_at = 0.0

    def due_in(self, now: float) -> float:
        """0 when a frame should go now, else the seconds until one may."""
        if not self.fresh and now < self._repeat_at:
            return self._repeat_at - now
        return self._bucket.wait(now)

    def sent(self, now: float) -> None:
        self._bucket.take(now)
        self._repeat_at = now + self.period * (REPEAT_DELAY if self.fresh else 1.0)
        self.fresh = False


class Pacer:
    """`Cadence` on the event loop: ``wait`` returns when the next frame of a
    live track should go, woken early by ``arrived``.

    ``burst=None`` drops the token bucket, for a producer already held to the
    rate: repeats then never make a new picture wait (with a bucket, a repeat
    spends the token the next new picture needs, and the emulator's output
    gained 20 ms of latency at p50 in ``python -m benchmarks``).
    """

    def __init__(self, fps: float, burst: float | None = 2.0) -> None:
        self.burst = float("inf") if burst is None else burst
        self._cadence = Cadence(fps, self.burst)
        self._arrived = asyncio.Event()

    def arrived(self) -> None:
        """A new picture is in (also how a stopping track wakes a waiting ``wait``)."""
        self._cadence.fresh = True
        self._arrived.set()

    async def wait(self) -> float:
        """Until the next frame should go; returns when (``time.monotonic()``)."""
        while True:
            now = time.monotonic()
            delay = self._cadence.due_in(now)
            if delay <= 0:
                break
            if self._cadence.fresh:  # only a token is missing: a new picture changes nothing
                await asyncio.sleep(delay)
                continue
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), delay)
        self._cadence.sent(now)
        return now
