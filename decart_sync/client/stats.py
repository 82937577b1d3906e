"""``client.stats``: the figures of one client, gathered from its parts.

Counters and rolling rates come from the input holder, the output hub and
the audio hubs, which count as frames pass; the network figures are the
media library's, asked of the session on the loop thread with a short
bound, so reading ``client.stats`` never waits long (reconnects, closing).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._portal import Portal
from ..errors import TimeoutError_
from ..metrics.rates import NetworkStats, Ticker

if TYPE_CHECKING:
    from ..realtime.audio import AvatarAudio
    from ..realtime.frame_hub import FrameHub
    from ..realtime.session import Session
    from ..realtime.tracks import LatestFrame
    from .output_audio import AudioHub

log = logging.getLogger(__name__)

STATS_TIMEOUT = 0.5  # client.stats waits no longer than this for the media library


class Figures:
    """What ``client.stats`` reads; the client owns the parts, this only counts and asks."""

    def __init__(
        self,
        session: Session,
        portal: Portal,
        hub: FrameHub,
        audio_out: AudioHub,
        input: LatestFrame | None,
        audio: AvatarAudio | None,
    ) -> None:
        self._session = session
        self._portal = portal
        self._hub = hub
        self._audio_out = audio_out
        self._input = input
        self._audio = audio
        self.connect_seconds: float | None = None
        self.audio_frames_received = 0
        self.closed = False
        self._ticker: Ticker | None = None

    def tick(self, interval: float, emit: Callable[[dict[str, Any]], object]) -> None:
        """Hand ``emit`` a snapshot every ``interval`` seconds, once started."""
        self._ticker = Ticker(interval, lambda: emit(self.snapshot()), "decart-sync-stats")

    def start(self) -> None:
        if self._ticker is not None:
            self._ticker.start()

    def stop(self, timeout: float) -> None:
        if self._ticker is not None:
            self._ticker.stop(timeout)

    def count_audio(self) -> None:
        self.audio_frames_received += 1

    def snapshot(self) -> dict[str, Any]:
        """The dict of ``client.stats`` (docs/stats.md has the table)."""
        hub, feed, audio = self._hub, self._input, self._audio
        observer = self._session.observer
        last = hub.last_frame_time
        return {
            "seconds_since_last_frame": -1.0 if last is None else time.monotonic() - last,
            "fps_in": round(feed.rate.rate(), 2) if feed is not None else 0.0,
            "fps_out": round(hub.rate.rate(), 2),
            "frames_dropped": hub.dropped,
            "connect_seconds": self.connect_seconds,
            "ttff_ms": observer.ttff_ms,
            **dict(zip(("g2g_ms_p50", "g2g_ms_p90"), observer.g2g.percentiles(), strict=True)),
            "audio_chunks_dropped": self._audio_out.dropped,
            **self.network(),
            "frames_in": feed.count if feed is not None else 0,
            "frames_sent": feed.sent if feed is not None else 0,
            "frames_skipped": feed.skipped if feed is not None else 0,
            "frames_received": hub.received,
            "reconnects": self._session.reconnects,
            "audio_chunks_played": audio.played_chunks if audio else 0,
            "audio_frames_received": self.audio_frames_received,
        }

    def quality(self) -> dict[str, Any] | None:
        """The connection-quality verdict as a dict, asked for from now on."""
        self.want_quality()
        report = self._session.observer.connection_quality
        return None if report is None else report.as_dict()

    def want_quality(self) -> None:
        """Start the verdict on the loop, once: a reader or a handler wants it."""
        observer = self._session.observer
        if not observer.quality_wanted and self._portal.running:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._portal.loop.call_soon_threadsafe(observer.want_quality)

    def network(self) -> dict[str, Any]:
        """The transport's figures; never raises, never waits long (reconnects, closing)."""
        portal = self._portal
        if self.closed or not portal.running or portal.in_loop_thread():
            return NetworkStats().as_dict()
        try:
            return portal.call(self._session.media_stats, timeout=STATS_TIMEOUT).as_dict()
        except Exception as exc:  # e.g. a connection torn down under us: unknown for now
            log.debug("network stats unavailable: %r", exc)
            return NetworkStats().as_dict()

    def media_report(self, timeout: float) -> list[Any]:
        """The media library's own stats of what the client sends; [] while not connected."""
        if self.closed or not self._portal.running:
            return []
        try:
            return self._portal.call(self._session.media_report, timeout=timeout)
        except TimeoutError:
            raise TimeoutError_(f"the media library gave no stats within {timeout} s") from None
