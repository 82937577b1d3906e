"""A bad network between the client and the service (emulator/netem.py), on both transports.

The emulator loses, delays and reorders the media packets both ways; the
client must keep the frames flowing, recover the picture after losses, and
ride out a blackout of its media. tests/unit/test_netem.py checks the model.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import numpy as np
import pytest
from helpers import KEY, SMALL, close_to, invert, mean_error, pattern, repeat, wait_for_frame

import decart_sync
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator, Faults

pytestmark = pytest.mark.timeout(120)

LK_SMALL = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
TRANSPORTS = pytest.mark.parametrize("model", [SMALL, LK_SMALL], ids=["webrtc", "livekit"])
INVERT = {"prompt": {"text": "invert"}}
WARM_UP = 1.0  # seconds of frames after the first good one, before measuring
MEASURE = 4.0  # seconds of frames counted


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(models={m.name: m for m in (SMALL, LK_SMALL)}) as emulator:
        yield emulator


@pytest.fixture
def connect(emu: Emulator, model: ModelDefinition) -> Iterator:
    if model.transport == "livekit":
        pytest.importorskip("livekit.rtc", reason="the livekit extra is not installed")
    clients: list[decart_sync.RealtimeClient] = []

    def _connect(source: object = None, **options: object) -> decart_sync.RealtimeClient:
        client = decart_sync.connect(
            source, model=model, api_key=KEY, base_url=emu.url, timeout=20.0, **options  # type: ignore[arg-type]
        )
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()
    emu.faults = Faults()


def _frames_for(frames: Iterator[np.ndarray], seconds: float) -> list[tuple[float, np.ndarray]]:
    """Every frame that arrives in the next ``seconds``, with its arrival time."""
    got: list[tuple[float, np.ndarray]] = []
    deadline = time.monotonic() + seconds
    for frame in frames:
        now = time.monotonic()
        if now >= deadline:
            break
        got.append((now, frame))
    return got


@TRANSPORTS
def test_loss_and_jitter_both_ways_keep_frames_flowing(connect, emu, model) -> None:
    # seed 2 loses close to 5% of the first few hundred packets each way (seed 1: 1% in).
    emu.faults = Faults(loss=0.05, jitter_ms=30, seed=2)
    frame = pattern(model)
    client = connect(repeat(frame), initial_state=INVERT)
    session = emu.wait_for_session(session_id=client.session_id)
    frames = client.frames(timeout=20)
    wait_for_frame(frames, close_to(invert(frame)))
    _frames_for(frames, WARM_UP)
    measured = _frames_for(frames, MEASURE)
    fps = len(measured) / MEASURE
    print(f"{model.transport}: {fps:.1f} fps under 5% loss, 30 ms jitter; {session.network}")
    assert fps >= 0.9 * model.fps, f"{fps:.1f} fps under 5% loss and 30 ms jitter"
    # The network really was bad, both ways.
    counts = session.network
    assert all(packets > 100 and lost > 0 for packets, lost in counts.values()), counts
    packets, lost = (sum(c) for c in zip(*counts.values(), strict=True))
    assert 0.02 < lost / packets < 0.1, counts
    # Losses spoil a frame now and then; the picture comes back each time (keyframe
    # requests, retransmissions), and most frames are right.
    good = [mean_error(f, invert(frame)) < 10 for _, f in measured]
    assert sum(good) >= 0.8 * len(good), f"{sum(good)} of {len(good)} frames right"
    wait_for_frame(frames, close_to(invert(frame)), timeout=5)
    assert client.stats["reconnects"] == 0


@TRANSPORTS
def test_a_media_blackout_is_ridden_out(connect, emu, model) -> None:
    at, seconds = 5.0, 3.0
    emu.faults = Faults(blackout=(at, seconds))
    frame = pattern(model)
    states: list[str] = []
    client = connect(repeat(frame), initial_state=INVERT)
    client.on("connection_change", states.append)
    session = emu.wait_for_session(session_id=client.session_id)
    frames = client.frames(timeout=20)
    wait_for_frame(frames, close_to(invert(frame)))
    start, end = session.started + at, session.started + at + seconds
    assert time.monotonic() < start - 0.5, "the session took too long to start"
    seen = _frames_for(frames, end + 3.0 - time.monotonic())
    gaps = [(b - a, a) for (a, _), (b, _) in itertools.pairwise(seen)]
    longest, began = max(gaps)
    # The blackout starved the media (a frame in flight may land at its very start)...
    assert longest > seconds - 0.5 and start - 0.3 < began < start + 0.5, (longest, began - start)
    # ... and they came back afterwards, on the same iterator, with the right picture.
    assert any(t > end for t, _ in seen)
    wait_for_frame(frames, close_to(invert(frame)), timeout=5)
    _, lost = session.network["out"]
    assert lost > 0.9 * seconds * model.fps  # every frame of the window at least
    # Only the media went dark (ICE, DTLS and signaling went on): the connection did not
    # fail, so the client kept it rather than reconnecting.
    assert client.stats["reconnects"] == 0
    assert "reconnecting" not in states and "disconnected" not in states, states
