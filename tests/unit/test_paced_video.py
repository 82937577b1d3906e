"""The emulator's output track (emulator/media.py, PacedVideoTrack): order and spacing."""

from __future__ import annotations

import asyncio

import numpy as np

from decart_sync.emulator import media
from decart_sync.realtime.clock import VIDEO_CLOCK

FPS = 30.0
GAP = 1 / 45


def _picture(value: int) -> np.ndarray:
    return np.full((24, 16), value, np.uint8)  # yuv420p planes of a 16x16 picture


async def _two_at_once(min_gap: float) -> list[tuple[int, int | None]]:
    """Two pictures pushed together: (pts, stamp) of the two frames that carry them."""
    track = media.PacedVideoTrack(FPS, min_gap=min_gap)
    track.push(_picture(1), stamp=1)
    track.push(_picture(2), stamp=2)
    try:
        frames = [await asyncio.wait_for(track.recv(), 2) for _ in range(2)]
    finally:
        track.stop()
    return [(frame.pts, frame.opaque) for frame in frames]


def test_pictures_finished_together_go_in_order_at_least_the_gap_apart() -> None:
    (first, stamp1), (second, stamp2) = asyncio.run(_two_at_once(GAP))
    assert (stamp1, stamp2) == (1, 2)
    # A sleep is never shorter than asked; the pts are whole ticks of the wall clock.
    assert second - first >= round(GAP * VIDEO_CLOCK) - 1


def test_without_a_gap_they_go_back_to_back() -> None:
    (first, _), (second, _) = asyncio.run(_two_at_once(0.0))
    assert second - first < round(GAP * VIDEO_CLOCK) // 2


async def _repeat_then_new() -> list[tuple[int, int | None]]:
    """A picture, its repeat, then a new picture pushed right after the repeat."""
    track = media.PacedVideoTrack(FPS, min_gap=GAP)
    track.push(_picture(1), stamp=1)
    try:
        sent = [await asyncio.wait_for(track.recv(), 2)]
        sent.append(await asyncio.wait_for(track.recv(), 2))  # nothing new: the repeat
        track.push(_picture(2), stamp=2)
        sent.append(await asyncio.wait_for(track.recv(), 2))
    finally:
        track.stop()
    return [(frame.pts, frame.opaque) for frame in sent]


def test_a_new_picture_right_after_a_repeat_waits_for_the_gap() -> None:
    (_, first), (repeat, again), (new, stamp) = asyncio.run(_repeat_then_new())
    assert (first, again, stamp) == (1, None, 2)
    assert new - repeat >= round(GAP * VIDEO_CLOCK) - 1
