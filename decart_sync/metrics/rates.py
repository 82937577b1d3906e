"""Figures people can read: rolling frame rates, and the media stack's network figures.

`RateMeter` counts events (frames in, frames out) over the last few
seconds. Each transport reports `NetworkStats` from its media library's
own statistics (aiortc's ``getStats()``, LiveKit's ``get_rtc_stats()``);
`ByteRates` turns their byte counters into bitrates. Pure logic that
imports only the errors, so every layer may use it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from .._threads import Worker
from ..errors import InvalidOptionsError

log = logging.getLogger(__name__)

WINDOW = 3.0  # seconds the rolling figures look back


class RateMeter:
    """Events per second over the last `WINDOW` seconds; thread-safe."""

    def __init__(self, window: float = WINDOW) -> None:
        self._window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self._since = time.monotonic()  # a young meter divides by its age, not the window

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._prune(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune(now)
            span = min(self._window, now - self._since)
            return len(self._times) / span if span > 0 else 0.0

    def _prune(self, now: float) -> None:
        cutoff = now - self._window
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()


@attrs.define
class NetworkStats:
    """What the media stack knows about the network; None where it does not say."""

    rtt_ms: float | None = None
    jitter_ms: float | None = None  # of the received video
    packets_lost_in: int | None = None  # of what the service sent us, this connection
    packets_lost_out: int | None = None  # of what we sent, as the service reports it
    bitrate_in_kbps: float | None = None
    bitrate_out_kbps: float | None = None
    fraction_lost_out: float | None = None  # of what we sent lately, 0..1 (receiver reports)
    available_out_kbps: float | None = None  # the bandwidth estimate for sending
    limitation: str | None = None  # what holds the encoder back: bandwidth, cpu, other

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Latencies:
    """Glass-to-glass samples (ms) of the last `WINDOW` seconds; thread-safe."""

    def __init__(self, window: float = WINDOW) -> None:
        self._window = window
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, ms: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._samples.append((now, ms))
            self._prune(now)

    def percentiles(self, now: float | None = None) -> tuple[float | None, float | None]:
        """The median and the 90th percentile (nearest rank); None without samples."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune(now)
            values = sorted(ms for _, ms in self._samples)
        if not values:
            return None, None

        def rank(p: float) -> float:
            return round(values[min(len(values) - 1, max(0, math.ceil(p * len(values)) - 1))], 1)

        return rank(0.5), rank(0.9)

    def _prune(self, now: float) -> None:
        while self._samples and self._samples[0][0] <= now - self._window:
            self._samples.popleft()


class ByteRates:
    """kbit/s each way from one connection's cumulative byte counters, sampled now and then.

    The first sample is the connection's start with nothing sent, so a single
    call already gives the average so far; later calls cover at most the last
    `WINDOW` seconds.
    """

    def __init__(self, window: float = WINDOW) -> None:
        self._window = window
        self._samples: deque[tuple[float, int, int]] = deque([(time.monotonic(), 0, 0)])

    def update(
        self, sent: int | None, received: int | None, now: float | None = None
    ) -> tuple[float | None, float | None]:
        now = time.monotonic() if now is None else now
        while len(self._samples) > 1 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()
        base_time, base_sent, base_received = self._samples[0]
        self._samples.append((now, sent or 0, received or 0))
        span = now - base_time
        if span <= 0.05:
            return None, None
        out = None if sent is None else round((sent - base_sent) * 8 / 1000 / span, 1)
        into = None if received is None else round((received - base_received) * 8 / 1000 / span, 1)
        return out, into


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


def check_interval(seconds: Any) -> None:
    if seconds is None:
        return
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise InvalidOptionsError(
            f"stats_interval must be a positive number of seconds or None, got {seconds!r}"
        )


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds on a named thread until `stop()`."""

    def __init__(self, interval: float, tick: Callable[[], object], name: str) -> None:
        self._interval = interval
        self._tick = tick
        self._worker = Worker(self._run, name)

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float | None = 1.0) -> None:
        self._worker.stop(timeout)

    def _run(self) -> None:
        while not self._worker.stopping.wait(self._interval):
            try:
                self._tick()
            except Exception:
                log.exception("gathering stats failed; trying again at the next interval")
