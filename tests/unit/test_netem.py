"""The emulator's network model (emulator/netem.py) and its --fault settings, without a network."""

from __future__ import annotations

import itertools

import pytest

from decart_sync.emulator import Faults
from decart_sync.emulator.netem import JITTER_PERIOD, QUEUE_SECONDS, Impairment

STEP = 0.002  # seconds between packets: 500 packets a second


def _fates(impairment: Impairment, count: int, size: int = 1000) -> list[float | None]:
    return [impairment.admit(i * STEP, size) for i in range(count)]


def test_perfect_network_is_no_impairment() -> None:
    assert Impairment.of(Faults(), label="in", start=0.0) is None
    assert Impairment.of(Faults(blackout=(1, 0)), label="in", start=0.0) is not None


def test_same_seed_same_drops_other_seed_or_direction_other_drops() -> None:
    def lost(seed: int, label: str = "in") -> list[int]:
        fates = _fates(Impairment(loss=0.1, jitter_ms=20, seed=seed, label=label), 2000)
        return [i for i, fate in enumerate(fates) if fate is None]

    assert lost(7) == lost(7)
    assert lost(7) != lost(8)
    assert lost(7) != lost(7, "out")
    timed = [_fates(Impairment(jitter_ms=20, seed=3), 500) for _ in range(2)]
    assert timed[0] == timed[1]


@pytest.mark.parametrize("loss", [0.01, 0.05, 0.3])
def test_loss_rate_close_to_the_asked_one(loss: float) -> None:
    count = 20_000
    fates = _fates(Impairment(loss=loss, seed=1), count)
    rate = sum(fate is None for fate in fates) / count
    # Binomial: five standard deviations either way.
    assert abs(rate - loss) < 5 * (loss * (1 - loss) / count) ** 0.5


def test_fixed_delay_keeps_order_and_jitter_stays_in_bounds() -> None:
    fixed = _fates(Impairment(delay_ms=80), 1000)
    assert all(f is not None and f == pytest.approx(i * STEP + 0.080) for i, f in enumerate(fixed))
    for reorder in (False, True):
        jittery = _fates(Impairment(delay_ms=80, jitter_ms=30, reorder=reorder, seed=5), 5000)
        delays = [f - i * STEP for i, f in enumerate(jittery) if f is not None]
        assert len(delays) == 5000
        assert min(delays) >= 0.050 - 1e-9 and max(delays) <= 0.110 + 1e-9
        assert min(delays) < 0.052 and max(delays) > 0.108  # the whole spread is used
        reordered = sum(b < a for a, b in itertools.pairwise(jittery))  # type: ignore[operator]
        # In order, as through a link's queue; drawn for each packet (netem's way), packets
        # 2 ms apart with +-30 ms overtake one another.
        assert (reordered > 1000) if reorder else (reordered == 0), reordered
    # In order, a delay holds for a period (JITTER_PERIOD, ten packets here), then changes;
    # after a fall, packets wait for those before them. Drawn for each packet, all differ.
    for reorder, most in ((False, 0.6), (True, 1.0)):
        fates = _fates(Impairment(delay_ms=80, jitter_ms=30, reorder=reorder, seed=5), 500)
        distinct = len({round(f - i * STEP, 9) for i, f in enumerate(fates) if f is not None})
        assert distinct <= most * 500 and (reorder or distinct >= 500 * STEP / JITTER_PERIOD)
    only_jitter = _fates(Impairment(jitter_ms=30, seed=5), 1000)
    assert all(f is not None and f >= i * STEP for i, f in enumerate(only_jitter))


def test_bandwidth_cap_spaces_packets_and_drops_past_a_full_queue() -> None:
    rate_kbps, size = 800.0, 1000  # 10 ms a packet on the link
    impairment = Impairment(bandwidth_kbps=rate_kbps)
    spacing = size * 8 / (rate_kbps * 1000)
    burst = [impairment.admit(0.0, size) for _ in range(100)]  # all at once
    sent = [f for f in burst if f is not None]
    assert sent == pytest.approx([spacing * (i + 1) for i in range(len(sent))])
    # The rest found the queue full (the edge case is at the mercy of float rounding).
    assert round(QUEUE_SECONDS / spacing) <= len(sent) <= round(QUEUE_SECONDS / spacing) + 1
    assert burst[len(sent) :] == [None] * (100 - len(sent))
    later = impairment.admit(10.0, size)  # the queue has drained: only its own time
    assert later == pytest.approx(10.0 + spacing)
    # Slower than the link: no queue, no drops.
    paced = Impairment(bandwidth_kbps=rate_kbps)
    fates = [paced.admit(i * 2 * spacing, size) for i in range(200)]
    assert fates == pytest.approx([i * 2 * spacing + spacing for i in range(200)])


def test_blackout_drops_everything_in_its_window_and_nothing_outside() -> None:
    start = 100.0
    impairment = Impairment(blackout=(5.0, 3.0), start=start)
    times = [start + i * 0.01 for i in range(1000)]  # 10 s of packets
    fates = {t: impairment.admit(t, 1000) for t in times}
    lost = [t for t, fate in fates.items() if fate is None]
    assert lost and min(lost) >= start + 5.0 and max(lost) < start + 8.0
    assert len(lost) == sum(start + 5.0 <= t < start + 8.0 for t in times)
    assert all(fate == t for t, fate in fates.items() if fate is not None)


def test_bursts_lose_runs_of_packets_as_often_as_asked() -> None:
    enter, leave, count = 0.002, 0.05, 200_000  # a burst every 500 packets, 20 long
    fates = _fates(Impairment(bursts=(enter, leave, 1.0), seed=4), count)
    runs = [len(list(group)) for lost, group in itertools.groupby(f is None for f in fates) if lost]
    # Stationary share in bursts: enter / (enter + leave); the mean run: 1 / leave.
    assert sum(runs) / count == pytest.approx(enter / (enter + leave), rel=0.15)
    assert sum(runs) / len(runs) == pytest.approx(1 / leave, rel=0.15)
    assert max(runs) > 3 / leave  # long bursts, not scattered single losses
    # Uniform loss draws as without bursts: the same packets lost, and the bursts' besides.
    plain = _fates(Impairment(loss=0.05, seed=4), 2000)
    both = _fates(Impairment(loss=0.05, bursts=(enter, leave, 1.0), seed=4), 2000)
    lost_plain = {i for i, f in enumerate(plain) if f is None}
    assert lost_plain <= {i for i, f in enumerate(both) if f is None}
    half = _fates(Impairment(bursts=(enter, leave, 0.5), seed=4), count)
    assert sum(f is None for f in half) / count == pytest.approx(0.5 * sum(runs) / count, rel=0.2)


def test_faults_fields_from_the_command_line() -> None:
    settings = ["loss=0.05", "delay_ms=80", "jitter_ms=30", "bandwidth_kbps=1500", "blackout=5,3"]
    faults = Faults.parse([*settings, "bursts=0.001,0.05", "seed=9"])
    assert faults.network() == (0.05, 80.0, 30.0, False, 1500.0, (5.0, 3.0), (0.001, 0.05, 1.0), 9)
    assert Faults().network() == (0.0, 0.0, 0.0, False, None, None, None, 0)
    assert Faults.parse(["reorder=1"]).reorder
    assert Faults.parse(["bursts=0.01,0.5,0.8"]).bursts == (0.01, 0.5, 0.8)
    bad_settings = ("loss=1.5", "blackout=5", "delay_ms=-1", "seed=x", "bandwidth_kbps=-3")
    for bad in (*bad_settings, "bursts=0.1", "bursts=0,0.5", "bursts=0.1,0.5,2"):
        with pytest.raises(ValueError):
            Faults.parse([bad])
    faults.blackout = "1,2"  # type: ignore[assignment]  # converted when set, too
    assert faults.blackout == (1.0, 2.0)
