"""Which output frame each consumer of the hub gets: bursts in order, slow readers skip."""

from __future__ import annotations

import av
import numpy as np
import pytest
from helpers import Clock

from decart_sync import models
from decart_sync.realtime import frame_hub
from decart_sync.realtime.frame_hub import FrameHub, FrameIterator

MODEL = models.ModelDefinition("t", fps=25, width=64, height=32)
PERIOD = 1 / MODEL.fps


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(frame_hub.time, "monotonic", fake)
    return fake


def _frame(value: int) -> av.VideoFrame:
    picture = np.full((MODEL.height, MODEL.width, 3), value, np.uint8)
    return av.VideoFrame.from_ndarray(picture, format="rgb24")


def _value(array: np.ndarray) -> int:
    return int(array[0, 0, 0])


def test_frames_that_arrive_together_are_each_seen_in_order(clock: Clock) -> None:
    hub = FrameHub(MODEL, "rgb24")
    frames = FrameIterator(hub, timeout=0)
    hub.publish(_frame(10))
    assert _value(next(frames)) == 10
    clock.now += 0.2  # a retransmission held three frames back; they come at once
    for value in (20, 30, 40):
        hub.publish(_frame(value))
        clock.now += 0.002
    assert [_value(next(frames)) for _ in range(3)] == [20, 30, 40]
    assert frames.dropped == 0 and hub.dropped == 0


def test_a_slow_reader_skips_to_the_newest(clock: Clock) -> None:
    hub = FrameHub(MODEL, "rgb24")
    frames = FrameIterator(hub, timeout=0)
    for value in (10, 20, 30):  # a period apart while the reader was busy
        hub.publish(_frame(value))
        clock.now += PERIOD
    assert _value(next(frames)) == 30
    assert frames.dropped == 2 and hub.dropped == 2


def test_a_burst_after_older_frames_starts_at_the_burst(clock: Clock) -> None:
    hub = FrameHub(MODEL, "rgb24")
    frames = FrameIterator(hub, timeout=0)
    hub.publish(_frame(10))
    clock.now += PERIOD
    hub.publish(_frame(20))
    clock.now += 0.001
    hub.publish(_frame(30))
    assert [_value(next(frames)) for _ in range(2)] == [20, 30]
    assert frames.dropped == 1


def test_only_a_few_frames_are_kept(clock: Clock) -> None:
    hub = FrameHub(MODEL, "rgb24")
    frames = FrameIterator(hub, timeout=0)
    for value in range(1, 11):  # ten at once: the oldest are gone
        hub.publish(_frame(value * 10))
    seen = [_value(next(frames)) for _ in range(frame_hub.HELD)]
    assert seen == [70, 80, 90, 100]
    assert frames.dropped == 6
    with pytest.raises(TimeoutError):
        next(frames)


def test_each_reader_has_its_own_place(clock: Clock) -> None:
    hub = FrameHub(MODEL, "rgb24")
    first, second = FrameIterator(hub, timeout=0), FrameIterator(hub, timeout=0)
    hub.publish(_frame(10))
    hub.publish(_frame(20))
    assert [_value(next(first)) for _ in range(2)] == [10, 20]
    assert _value(next(second)) == 10
    assert hub.read_after(1, timeout=0) is not None
