"""What a session's events say about its health: time to first frame, glass to glass,
and the connection-quality verdict (async core, on the loop).

The session tells its observer three things and nothing else: its state changed,
an output frame arrived, it is closing. The observer reads the transport's
figures through the ``stats`` callable it was given, so it never sees a
connection's insides, and the session never computes a figure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..metrics.quality import QualityMeter, QualityReport, Sample, Thresholds
from ..metrics.rates import Latencies, NetworkStats
from ..models import ModelDefinition
from ..signals import CONNECTION_QUALITY, Event

log = logging.getLogger(__name__)

QUALITY_INTERVAL = 1.0  # seconds between connection-quality samples (the JS SDK's stats)

# The session's states, as its observer needs them (session.py defines them).
_STARTING = "connecting"
_USABLE = frozenset({"connected", "generating"})


class Observer:
    """Time to first frame, glass-to-glass latencies and the quality verdict of one session.

    The verdict costs a media-stats call a second, which thins the output on a busy
    2-core machine (tests/e2e/test_network_faults.py), so it runs only once wanted:
    a handler of ``connection_quality``, or a reader of ``client.connection_quality``.
    """

    def __init__(
        self,
        model: ModelDefinition,
        emit: Callable[[Event, Any], None],
        stats: Callable[[], Awaitable[NetworkStats]],
        fps: Callable[[], float],
        *,
        quality_wanted: bool = False,
    ) -> None:
        self._emit = emit
        self._stats = stats
        self._fps = fps
        self._meter = QualityMeter(Thresholds().for_model(model.width, model.height, model.fps))
        self._task: asyncio.Task[None] | None = None
        self._usable = False
        self._closed = False
        self.quality_wanted = quality_wanted
        self.started_at: float | None = None  # loop time the first connect began
        self.first_frame_at: float | None = None
        self.g2g = Latencies()  # glass to glass, from LiveKit frame timing
        self._last_stamp: int | None = None

    # -- what the session tells it -------------------------------------------

    def state(self, state: str) -> None:
        """The session's new state: a verdict per connection, from its first second on
        (the JS SDK resets it on every connect)."""
        if state == _STARTING and self.started_at is None:
            self.started_at = asyncio.get_running_loop().time()
        usable = state in _USABLE
        if usable and not self._usable:
            self._usable = True
            if self.quality_wanted:
                self._start_sampling()
        elif not usable and self._usable:
            self._usable = False
            self._stop_sampling()

    def frame(self, frame: Any) -> None:
        """An output frame (loop thread): the first one, and each input's first output."""
        if self.first_frame_at is None:
            self.first_frame_at = asyncio.get_running_loop().time()
        stamp = frame.opaque
        if isinstance(stamp, int) and stamp != self._last_stamp:
            self._last_stamp = stamp
            self.g2g.add(time.time() * 1000 - stamp / 1000)

    async def close(self) -> None:
        self._closed = True
        task = self._stop_sampling()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # -- what the client reads ---------------------------------------------

    def want_quality(self) -> None:
        """Start the verdict (loop thread): a handler or a reader wants it."""
        if self.quality_wanted:
            return
        self.quality_wanted = True
        if self._usable:
            self._start_sampling()

    @property
    def connection_quality(self) -> QualityReport | None:
        return self._meter.current

    @property
    def ttff_ms(self) -> float | None:
        """From the start of connect() to the first output frame."""
        if self.started_at is None or self.first_frame_at is None:
            return None
        return round((self.first_frame_at - self.started_at) * 1000, 1)

    # -- the verdict ---------------------------------------------------------

    def _start_sampling(self) -> None:
        if self._closed:
            return
        self._stop_sampling()
        self._meter.reset()
        self._task = asyncio.ensure_future(self._sample())

    def _stop_sampling(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(QUALITY_INTERVAL)
            try:
                net = await self._stats()
            except Exception as exc:  # a connection going down under us: next time
                log.debug("no stats for the quality verdict: %r", exc)
                continue
            sample = Sample(
                rtt_ms=net.rtt_ms,
                fraction_lost=net.fraction_lost_out,
                available_outgoing_kbps=net.available_out_kbps,
                fps=self._fps(),
                g2g_ms=self.g2g.percentiles()[0],
                ttff_ms=self.ttff_ms,
                limitation=net.limitation,
            )
            report = self._meter.update(sample)
            if report is not None:
                self._emit(CONNECTION_QUALITY, report.as_dict())
