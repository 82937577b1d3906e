"""Connection quality: the JS SDK 0.1.20's verdict (``ConnectionQualityEvaluator``) in Python.

Pure logic. Once a second the session feeds a `Sample` (the transport's
network figures and the client's own output fps); `QualityMeter`
smooths each figure over the last `Thresholds.window` samples (median;
the fps by its minimum, so a stall shows), scores each dimension against the
JS SDK's bands, takes the worst, and debounces the level: it moves only after
5 consecutive samples at another level (either way). The bandwidth dimension
waits for `Thresholds.warmup` samples (the encoder and the bandwidth
estimate ramp up after a connect). Like the JS SDK, `QualityMeter.update()`
returns a report only when the level or the warm-up state changes: that is
when a ``connection_quality`` event goes out.

Unknown figures (None) score good, as in the JS SDK: a transport that does not
report one never makes the verdict worse.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any

import attrs

LEVELS = ("critical", "poor", "fair", "good")  # worst first: an index is a rank
FACTORS = ("none", "cpu", "bandwidth", "loss", "latency", "stall")


@attrs.frozen
class Bands:
    """good / fair / poor limits; past ``poor`` is critical."""

    good: float
    fair: float
    poor: float


@attrs.frozen
class Thresholds:
    """The JS SDK 0.1.20's ``REALTIME_CONFIG.observability.connectionQuality``."""

    window: int = 5  # samples smoothed over (windowSamples)
    warmup: int = 8  # samples before bandwidth counts (warmupSamples)
    downgrade_after: int = 5  # consecutive worse samples (downgradeConsecutive)
    upgrade_after: int = 5  # consecutive better samples (upgradeConsecutive)
    rtt_ms: Bands = Bands(150, 300, 500)
    relay_extra_ms: float = 100  # RTT bands widen this much on a relayed path
    g2g_ms: Bands = Bands(500, 900, 1500)  # replaces RTT when known
    ttff_ms: Bands = Bands(4000, 6000, 10000)  # for preflight; not part of the level
    loss: Bands = Bands(0.001, 0.01, 0.05)  # fraction of what we send
    g2g_drop: Bands = Bands(0.001, 0.01, 0.05)
    upstream: Bands = Bands(1.0, 0.8, 0.5)  # available / required upstream bitrate
    required_upstream_kbps: float = 3500
    fps: Bands = Bands(20, 12, 5)  # output frames per second (stall)

    def for_model(self, width: int, height: int, fps: float) -> Thresholds:
        """Ours: the JS bands assume a 1280x720 camera at 25-30 fps; a smaller or slower
        model needs less upstream and renders fewer frames, and is not "poor" for it."""
        pixels = min(1.0, width * height / (1280 * 720))
        rate = min(1.0, fps / 25)
        f = self.fps
        return attrs.evolve(
            self,
            required_upstream_kbps=self.required_upstream_kbps * pixels,
            fps=Bands(f.good * rate, f.fair * rate, f.poor * rate),
        )


@attrs.frozen
class Sample:
    """One second's figures; None where unknown."""

    rtt_ms: float | None = None
    fraction_lost: float | None = None  # of what we send, 0..1 (RTCP receiver reports)
    available_outgoing_kbps: float | None = None
    fps: float | None = None  # output frames per second, as the client sees them
    g2g_ms: float | None = None
    ttff_ms: float | None = None
    g2g_drop_ratio: float | None = None
    relayed: bool = False
    limitation: str | None = None  # the encoder's qualityLimitationReason: bandwidth, cpu


@attrs.frozen
class QualityReport:
    """The verdict: ``level`` good/fair/poor/critical, ``limiting_factor`` none, cpu,
    bandwidth, loss, latency or stall, ``warming_up``, and the smoothed figures."""

    level: str
    limiting_factor: str
    warming_up: bool
    rtt_ms: float | None
    g2g_ms: float | None
    ttff_ms: float | None
    fps: float | None
    packet_loss: float | None
    available_upstream_kbps: float | None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def lower_better(value: float | None, bands: Bands) -> str:
    if value is None or value <= bands.good:
        return "good"
    if value <= bands.fair:
        return "fair"
    return "poor" if value <= bands.poor else "critical"


def higher_better(value: float | None, bands: Bands) -> str:
    if value is None or value >= bands.good:
        return "good"
    if value >= bands.fair:
        return "fair"
    return "poor" if value >= bands.poor else "critical"


def _worst(*levels: str) -> str:
    return min(levels, key=LEVELS.index)


def score(sample: Sample, t: Thresholds, *, skip_bandwidth: bool = False) -> tuple[str, str]:
    """The level of one (smoothed) sample, and what limits it (the JS ``scoreMetrics``)."""
    if sample.g2g_ms is not None:
        latency = lower_better(sample.g2g_ms, t.g2g_ms)
    else:
        extra = t.relay_extra_ms if sample.relayed else 0.0
        bands = Bands(t.rtt_ms.good + extra, t.rtt_ms.fair + extra, t.rtt_ms.poor + extra)
        latency = lower_better(sample.rtt_ms, bands)
    loss = lower_better(sample.fraction_lost, t.loss)
    bandwidth = "good"
    if not skip_bandwidth:
        kbps = sample.available_outgoing_kbps
        ratio = None if kbps is None else kbps / t.required_upstream_kbps
        bandwidth = higher_better(ratio, t.upstream)
        if sample.limitation == "bandwidth":
            bandwidth = _worst(bandwidth, "fair")
    stall = _worst(
        higher_better(sample.fps, t.fps), lower_better(sample.g2g_drop_ratio, t.g2g_drop)
    )
    level = _worst(bandwidth, latency, loss, stall)
    if level == "good":
        return level, "cpu" if sample.limitation == "cpu" else "none"
    for factor, value in (("bandwidth", bandwidth), ("loss", loss), ("latency", latency)):
        if value == level:
            return level, factor
    return level, "stall"


class _Window:
    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def push(self, value: float | None) -> None:
        if value is not None:  # an unknown figure leaves the window as it was
            self.values.append(value)

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def min(self) -> float | None:
        return min(self.values) if self.values else None


class QualityMeter:
    """Samples in, a debounced verdict out; one per connection (`reset()` on a new one)."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.reset()

    def reset(self) -> None:
        size = self.thresholds.window
        self._rtt, self._g2g, self._loss = _Window(size), _Window(size), _Window(size)
        self._upstream, self._fps = _Window(size), _Window(size)
        self._samples = 0
        self._level: str | None = None
        self._factor = "none"
        self._candidate: str | None = None
        self._candidate_count = 0
        self._was_warming_up = True
        self.current: QualityReport | None = None

    def update(self, raw: Sample) -> QualityReport | None:
        """Take one sample; the report when the level or warm-up state changed, else None."""
        t = self.thresholds
        self._samples += 1
        self._rtt.push(raw.rtt_ms)
        self._g2g.push(raw.g2g_ms)
        self._loss.push(raw.fraction_lost)
        self._upstream.push(raw.available_outgoing_kbps)
        self._fps.push(raw.fps)
        smooth = attrs.evolve(
            raw,
            rtt_ms=self._rtt.median(),
            g2g_ms=self._g2g.median(),
            fraction_lost=self._loss.median(),
            available_outgoing_kbps=self._upstream.median(),
            fps=self._fps.min(),  # the worst second in the window: a stall is not averaged away
        )
        warming_up = self._samples < t.warmup
        level, factor = score(smooth, t, skip_bandwidth=warming_up)
        warmup_ended = self._was_warming_up and not warming_up
        self._was_warming_up = warming_up
        if warmup_ended:  # bandwidth counts from now: the level is taken as it is
            changed = self._level != level
            self._level, self._candidate, self._candidate_count = level, None, 0
        else:
            changed = self._debounce(level)
        shown = self._level or level
        if shown == "good":
            self._factor = "cpu" if raw.limitation == "cpu" else "none"
        elif LEVELS.index(level) <= LEVELS.index(shown):
            self._factor = factor
        self.current = QualityReport(
            level=shown,
            limiting_factor=self._factor,
            warming_up=warming_up,
            rtt_ms=_round(smooth.rtt_ms),
            g2g_ms=_round(smooth.g2g_ms),
            ttff_ms=_round(raw.ttff_ms),
            fps=_round(smooth.fps),
            packet_loss=smooth.fraction_lost,
            available_upstream_kbps=_round(smooth.available_outgoing_kbps),
        )
        return self.current if changed or warmup_ended else None

    def _debounce(self, level: str) -> bool:
        """Move to ``level`` after enough consecutive samples there; True if it moved."""
        if self._level is None or level == self._level:
            first = self._level is None
            self._level, self._candidate, self._candidate_count = level, None, 0
            return first
        if level == self._candidate:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_count = level, 1
        worse = LEVELS.index(level) < LEVELS.index(self._level)
        needed = self.thresholds.downgrade_after if worse else self.thresholds.upgrade_after
        if self._candidate_count < needed:
            return False
        self._level, self._candidate, self._candidate_count = level, None, 0
        return True


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
