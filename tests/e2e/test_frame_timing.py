"""Frame timing: over LiveKit each output frame says which input it was
made from (its capture time, carried both ways in LiveKit's frame metadata), so the client
measures glass-to-glass latency and time to first frame. On both LiveKit signaling
paths: ``/rtc/v1`` (one peer connection) and the classic ``/rtc``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from helpers import (
    ON_BOTH_PATHS,
    clients_of,
    mean_error,
    pattern,
    repeat,
    took_its_path,
    wait_until,
)

from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator

pytestmark = pytest.mark.timeout(120)

LK = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
SEED = ModelDefinition("test-small", fps=25, width=320, height=192)


@pytest.fixture(scope="module")
def emu(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    v1 = getattr(request, "param", True)  # ON_BOTH_PATHS sets it
    with Emulator(models={m.name: m for m in (LK, SEED)}, livekit_v1=v1) as emulator:
        yield emulator


def flat(level: int) -> np.ndarray:
    return np.full((LK.height, LK.width, 3), level, np.uint8)


@ON_BOTH_PATHS
def test_each_output_names_the_input_it_came_from(emu: Emulator) -> None:
    with took_its_path(emu), clients_of(emu.url, model=LK) as connect:
        client = connect(None, initial_state={"prompt": "invert"})
        served = emu.wait_for_session(session_id=client.session_id)
        assert served.messages[0]["client_capabilities"] == {"frame_timing": True}
        outputs = client.frames(timeout=10, with_info=True)
        sent: dict[int, int] = {}  # capture time (us) -> the level of that input
        matched: list[tuple[int, float, np.ndarray]] = []
        deadline = time.monotonic() + 30
        level = 0
        while len(matched) < 8 and time.monotonic() < deadline:
            level = 40 + (level * 7 + 23) % 170  # each input differs from the last
            sent[round(client.send_frame(flat(level)) * 1e6)] = level
            frame, info = next(outputs)
            if info.source_time is not None:
                source = sent.get(round(info.source_time * 1e6))
                assert source is not None, "an output names an input we never sent"
                assert info.g2g_ms is not None and 0 < info.g2g_ms < 5000
                matched.append((source, info.g2g_ms, frame))
            time.sleep(1 / LK.fps)
        assert len(matched) >= 8, f"only {len(matched)} outputs named their input"
        # The output named is the output of that very input: the inverse of its level.
        for source, _, frame in matched:
            assert mean_error(frame, flat(255 - source)) < 12, source
        stats = client.stats
        assert stats["ttff_ms"] is not None and stats["ttff_ms"] > 0
        p50, p90 = stats["g2g_ms_p50"], stats["g2g_ms_p90"]
        assert p50 is not None and p90 is not None and 0 < p50 <= p90 < 5000


def test_bursts_and_repeats_keep_their_capture_times(emu: Emulator) -> None:
    # Three frames inside one period (two held back by the rate, the newest sent late),
    # then a pause (the newest repeated): every frame that reaches the model carries a
    # capture time once the first did (the black frame before any input has none).
    with clients_of(emu.url, model=LK) as connect:
        client = connect(None)
        served = emu.wait_for_session(session_id=client.session_id)
        for burst in range(12):
            for level in range(3):
                client.send_frame(flat(40 + 10 * level + burst))
            time.sleep(0.15)  # the workload: a burst, then a repeat or two of its newest
        wait_until(lambda: served.frames_in_stamped >= 12, 20, "stamped input at the emulator")
        assert served.frames_in_unstamped_later == 0, (
            served.frames_in_stamped,
            served.frames_in_unstamped_later,
        )


def test_plain_webrtc_frames_have_no_source(emu: Emulator) -> None:
    with clients_of(emu.url, model=SEED) as connect:
        client = connect(repeat(pattern(SEED)))
        frame, info = next(client.frames(timeout=10, with_info=True))
        assert frame.shape == (SEED.height, SEED.width, 3)
        assert info.source_time is None and info.g2g_ms is None
        assert abs(info.received - time.time()) < 5 and info.seq > 0
        wait_until(lambda: client.stats["ttff_ms"] is not None, 5, "a time to first frame")
        assert client.stats["g2g_ms_p50"] is None
