"""Pure logic: the connection-quality verdict, as the JS SDK 0.1.20 computes it."""

from __future__ import annotations

import pytest

from decart_sync.metrics.quality import QualityMeter, Sample, Thresholds, score

GOOD = Sample(rtt_ms=40, fraction_lost=0.0, available_outgoing_kbps=4000, fps=25)


def feed(meter: QualityMeter, sample: Sample, times: int) -> list:
    return [meter.update(sample) for _ in range(times)]


def test_good_samples_report_once_then_again_when_warm_up_ends() -> None:
    meter = QualityMeter()
    reports = feed(meter, GOOD, 10)
    assert reports[0] is not None and reports[0].level == "good" and reports[0].warming_up
    assert all(r is None for r in reports[1:7])
    assert reports[7] is not None and not reports[7].warming_up  # the 8th: warm-up over
    assert all(r is None for r in reports[8:])
    assert meter.current is not None and meter.current.as_dict()["limiting_factor"] == "none"


def test_a_worse_level_needs_five_samples_in_a_row() -> None:
    meter = QualityMeter()
    feed(meter, GOOD, 10)
    slow = Sample(rtt_ms=1000, fraction_lost=0.0, available_outgoing_kbps=4000, fps=25)
    # The median of the window turns after 3 slow samples; then 5 in a row are needed.
    reports = feed(meter, slow, 7)
    assert [r for r in reports[:6] if r is not None] == []
    assert reports[6] is not None and reports[6].level == "critical"
    assert reports[6].limiting_factor == "latency"
    # Unsmoothed (a window of one), a single good sample in between starts the count again.
    meter = QualityMeter(Thresholds(window=1))
    feed(meter, GOOD, 10)
    assert feed(meter, slow, 4) == [None] * 4
    assert meter.update(GOOD) is None
    assert feed(meter, slow, 4) == [None] * 4
    report = meter.update(slow)
    assert report is not None and report.level == "critical"


def test_recovery_also_needs_five_better_samples() -> None:
    meter = QualityMeter()
    feed(meter, GOOD, 10)
    feed(meter, Sample(rtt_ms=1000, fps=25), 12)
    assert meter.current is not None and meter.current.level == "critical"
    reports = feed(meter, GOOD, 8)
    changed = [i for i, r in enumerate(reports) if r is not None]
    assert len(changed) == 1 and changed[0] >= 5
    assert reports[changed[0]].level == "good"


def test_the_limiting_factor_is_the_worst_dimension() -> None:
    t = Thresholds()
    assert score(Sample(fraction_lost=0.03), t) == ("poor", "loss")
    assert score(Sample(fps=8), t) == ("poor", "stall")
    assert score(Sample(available_outgoing_kbps=1000), t) == ("critical", "bandwidth")
    assert score(Sample(rtt_ms=200, fps=3), t) == ("critical", "stall")
    assert score(Sample(limitation="cpu"), t) == ("good", "cpu")
    assert score(Sample(limitation="bandwidth"), t) == ("fair", "bandwidth")
    assert score(Sample(), t) == ("good", "none")  # nothing known: nothing against it


def test_a_relayed_path_widens_the_rtt_bands() -> None:
    t = Thresholds()
    assert score(Sample(rtt_ms=220), t)[0] == "fair"
    assert score(Sample(rtt_ms=220, relayed=True), t)[0] == "good"


def test_glass_to_glass_replaces_rtt_when_known() -> None:
    t = Thresholds()
    assert score(Sample(rtt_ms=400, g2g_ms=300), t)[0] == "good"
    assert score(Sample(rtt_ms=20, g2g_ms=1000), t) == ("poor", "latency")


def test_bandwidth_waits_for_warm_up() -> None:
    meter = QualityMeter()
    thin = Sample(rtt_ms=40, available_outgoing_kbps=500, fps=25)
    reports = feed(meter, thin, 8)
    assert reports[0] is not None and reports[0].level == "good"
    assert reports[7] is not None and reports[7].level == "critical"
    assert reports[7].limiting_factor == "bandwidth"


def test_unknown_figures_leave_the_window_as_it_was() -> None:
    meter = QualityMeter()
    feed(meter, Sample(rtt_ms=100, fps=25), 3)
    meter.update(Sample())
    assert meter.current is not None and meter.current.rtt_ms == 100
    assert meter.current.fps == 25


def test_a_small_slow_model_is_judged_by_what_it_needs() -> None:
    full = Thresholds()
    assert full.for_model(1280, 720, 30) == full  # the JS SDK's own bands
    small = full.for_model(320, 180, 12.5)
    assert small.required_upstream_kbps == pytest.approx(3500 / 16)
    assert small.fps.good == pytest.approx(10) and small.fps.poor == pytest.approx(2.5)
    assert score(Sample(fps=11, available_outgoing_kbps=300), small) == ("good", "none")
