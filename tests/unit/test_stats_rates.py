"""The rolling rates behind client.stats: pure logic, no session."""

from __future__ import annotations

import time

import pytest

from decart_sync.metrics.rates import ByteRates, RateMeter


def test_rate_meter_counts_the_last_seconds() -> None:
    meter = RateMeter(window=2.0)
    start = time.monotonic()
    for i in range(100):  # 50 per second for 2 s
        meter.tick(start + 0.02 + i * 0.02)
    assert meter.rate(start + 2.0) == pytest.approx(50, abs=1)
    assert meter.rate(start + 3.0) == pytest.approx(25, abs=1)  # half the window is quiet
    assert meter.rate(start + 4.1) == 0.0


def test_byte_rates_from_counters() -> None:
    rates = ByteRates(window=2.0)
    start = time.monotonic()
    out, into = rates.update(125_000, 250_000, start + 1.0)  # since the start: 1 and 2 Mbit/s
    assert out == pytest.approx(1000, rel=0.01) and into == pytest.approx(2000, rel=0.01)
    rates.update(250_000, 500_000, start + 2.0)
    out, into = rates.update(250_000, 500_000, start + 3.5)  # quiet for 1.5 s of the last 2
    assert out is not None and into is not None
    assert out < 1000 and into < 2000
    out, into = rates.update(250_000, None, start + 4.0)  # a figure the library lacks
    assert into is None and out == 0.0
