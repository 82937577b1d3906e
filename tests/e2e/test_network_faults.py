"""A bad network between the client and the service (emulator/netem.py), on both transports.

The emulator loses, delays and reorders the media packets both ways; the
client must keep the frames flowing, recover the picture after losses, and
ride out a blackout of its media. tests/unit/test_netem.py checks the model.
LiveKit runs on both its signaling paths: ``/rtc/v1`` (one peer connection
carries both ways) and the classic ``/rtc`` (two).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import numpy as np
import pytest
from helpers import (
    SIGNALING,
    SMALL,
    clients_of,
    close_to,
    invert,
    mean_error,
    pattern,
    repeat,
    took_its_path,
    wait_for_frame,
    wait_until,
)

from benchmarks.stamp import Pattern, read_checked
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator, Faults

pytestmark = pytest.mark.timeout(120)

LK_SMALL = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
HD = ModelDefinition("test-hd", fps=30, width=1280, height=720)
LK_HD = ModelDefinition("test-hd-lk", fps=30, width=1280, height=720, transport="livekit")


def _transports(webrtc: ModelDefinition, livekit: ModelDefinition) -> pytest.MarkDecorator:
    """Plain WebRTC, and LiveKit on each signaling path (the emulator's ``livekit_v1``)."""
    return pytest.mark.parametrize(
        ("model", "emu"),
        [(webrtc, True), *((livekit, v1) for v1 in SIGNALING.values())],
        ids=["webrtc", *(f"livekit-{path}" for path in SIGNALING)],
        indirect=["emu"],
    )


TRANSPORTS = _transports(SMALL, LK_SMALL)
INVERT = {"prompt": {"text": "invert"}}
WARM_UP = 1.0  # seconds of frames after the first good one, before measuring
MEASURE = 4.0  # seconds of frames counted


@pytest.fixture(scope="module")
def emu(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    models = {m.name: m for m in (SMALL, LK_SMALL, HD, LK_HD)}
    with Emulator(models=models, livekit_v1=request.param) as emulator:
        yield emulator


@pytest.fixture
def connect(emu: Emulator, model: ModelDefinition) -> Iterator:
    with took_its_path(emu), clients_of(emu.url, model=model) as connect:
        yield connect
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


def _moving(model: ModelDefinition) -> Iterator[np.ndarray]:
    """A textured picture that moves: enough for the encoder to want more than 1.5 Mbit/s."""
    rng = np.random.default_rng(0)
    base = np.pad(pattern(model), ((0, 64), (0, 64), (0, 0)), mode="wrap").astype(np.int16)
    base = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
    for i in itertools.count():
        y, x = i % 64, 3 * i % 64
        yield np.ascontiguousarray(base[y : y + model.height, x : x + model.width])


def _stamped(model: ModelDefinition) -> Iterator[np.ndarray]:
    """A moving picture whose every frame carries its index and checksum (benchmarks.stamp)."""
    pictures = Pattern(model.width, model.height)
    for index in itertools.count():
        yield pictures.frame(index, checked=True)


@TRANSPORTS
@pytest.mark.parametrize(
    "network",
    [{"loss": 0.01, "delay_ms": 80}, {"loss": 0.05}],
    ids=["wifi", "loss5"],
)
def test_losses_never_show_a_damaged_frame(connect, emu, model, network) -> None:
    # A frame decoded without a lost packet (a missing slice, a missing reference) shows
    # tiles of other frames, which fail their checksum or disagree: a lost frame must
    # freeze the picture, never spoil it. Receivers that take a hole for padding after
    # two unanswered requests showed 4 to 90 such frames in 8 s over LiveKit.
    emu.faults = Faults(**network, seed=3)
    client = connect(_stamped(model))
    session = emu.wait_for_session(session_id=client.session_id)
    frames = client.frames(timeout=20)
    wait_for_frame(frames, lambda frame: read_checked(frame) is not None)
    indexes = [read_checked(frame) for _, frame in _frames_for(frames, 2 * MEASURE)]
    damaged = sum(index is None for index in indexes)
    fresh = len(set(indexes) - {None})
    print(f"{model.transport} {network}: {fresh} fresh, {damaged} damaged; {session.network}")
    assert damaged == 0, f"{damaged} damaged frames of {len(indexes)}"
    assert fresh >= 2 * MEASURE * model.fps / 2  # the picture moved on all along
    assert all(lost > 0 for _, lost in session.network.values()), session.network


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
    before = session.frames_in
    measured = _frames_for(frames, MEASURE)
    fps, fps_in = len(measured) / MEASURE, (session.frames_in - before) / MEASURE
    print(f"{model.transport}: {fps:.1f} fps out, {fps_in:.1f} in; {session.network}")
    assert fps >= 0.9 * model.fps, f"{fps:.1f} fps under 5% loss and 30 ms jitter"
    # The model's input flows too (the picture is still: without it the output would be
    # right on the one frame that got through). Measured with transports/recovery.py on
    # 2026-12-04: 24.2 to 25.8 fps of 25 over LiveKit, 23.8 to 25.5 over webrtc (8 runs
    # each); before it learnt that LiveKit's publisher pads, 7.8 to 25 over LiveKit.
    assert fps_in >= 0.8 * model.fps, f"{fps_in:.1f} fps into the model"
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
    assert longest > seconds - 0.5 and start - 0.3 < began < start + 0.5, (
        f"longest gap {longest:.2f} s at {began - start:+.2f} s from the blackout; "
        f"the emulator's network: {session.network}, {len(seen)} frames"
    )
    # ... and they came back afterwards, on the same iterator, with the right picture.
    assert any(t > end for t, _ in seen)
    wait_for_frame(frames, close_to(invert(frame)), timeout=5)
    # The model's input came back too (a keyframe was asked for).
    decoded = session.frames_in
    wait_until(lambda: session.frames_in > decoded + model.fps, 10, "the input resuming")
    _, lost = session.network["out"]
    assert lost > 0.9 * seconds * model.fps  # every frame of the window at least
    # Only the media went dark (ICE, DTLS and signaling went on): the connection did not
    # fail, so the client kept it rather than reconnecting.
    assert client.stats["reconnects"] == 0
    assert "reconnecting" not in states and "disconnected" not in states, states


@pytest.mark.parametrize(
    ("model", "emu"),
    [(LK_SMALL, v1) for v1 in SIGNALING.values()],
    ids=[f"livekit-{path}" for path in SIGNALING],
    indirect=["emu"],
)
def test_latency_is_back_soon_after_a_blackout(connect, emu, model) -> None:
    # Glass to glass per frame comes with LiveKit's frame timing. Within 2 s of the link's
    # return it must be back near what it was before (within 1.5x, or 100 ms more on a
    # busy machine), and stay there: no queue left behind anywhere on the way. With the
    # emulator's senders resending stale packets, about one run in four came back 500 ms
    # late, falling by 100 ms a second (libwebrtc's playout delay, after it decoded frames
    # made during the outage).
    at, seconds = 5.0, 3.0
    emu.faults = Faults(blackout=(at, seconds))
    client = connect(_stamped(model))
    session = emu.wait_for_session(session_id=client.session_id)
    frames = client.frames(timeout=20, with_info=True)
    start, end = session.started + at, session.started + at + seconds
    assert time.monotonic() < start - 2.0, "the session took too long to start"
    timed: list[tuple[float, float]] = []
    for _, info in frames:
        now = time.monotonic()
        if now > end + 6.0:
            break
        if info.g2g_ms is not None:
            timed.append((now, info.g2g_ms))

    def median_between(first: float, last: float) -> float:
        values = sorted(g2g for t, g2g in timed if first <= t < last)
        # A few: after an outage the camera's sender may take a while to get its rate back.
        assert len(values) >= 3, f"{len(values)} timed frames from {first - end:+.1f} s"
        return values[len(values) // 2]

    before = median_between(start - 2.0, start)
    after = [median_between(end + k, end + k + 1.0) for k in (2.0, 3.0, 4.0, 5.0)]
    print(f"g2g before {before:.0f} ms, after the blackout {[round(a) for a in after]} ms")
    assert all(a <= max(1.5 * before, before + 100) for a in after), (before, after)


@_transports(HD, LK_HD)
def test_a_1280x720_camera_keeps_its_size_under_a_rate_cap(connect, emu, model) -> None:
    emu.faults = Faults(bandwidth_kbps=1500)
    client = connect(_moving(model))
    served = emu.wait_for_session(session_id=client.session_id)
    frames = client.frames(timeout=10)
    _frames_for(frames, 2.0)  # the encoder finds the rate
    sizes: set[tuple[int, int]] = set()
    before = served.frames_in
    for _, frame in _frames_for(frames, MEASURE):
        assert frame.shape == (720, 1280, 3)
        if served.last_frame_in is not None:
            sizes.add((served.last_frame_in.width, served.last_frame_in.height))
    fps_in = (served.frames_in - before) / MEASURE
    print(f"{model.transport}: {fps_in:.1f} fps in at {sizes} under 1.5 Mbit/s; {served.network}")
    assert sizes == {(1280, 720)}
    # It keeps its size by sending fewer frames when it must, not by collapsing: 26-30 fps
    # measured on a quiet machine, 8-17 on one busy with other sessions. How many is the
    # network benchmark's figure (its cap1500 profile), not this test's.
    assert fps_in >= 0.25 * model.fps
