"""What tests share besides fixtures: the small model, synthetic frames, waits, paths."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import decart_sync
from decart_sync import ModelDefinition, models

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = ROOT / "tests" / "drivers"  # programs the tests run as subprocesses
EXAMPLES = ROOT / "examples"

# A small model keeps VP8 cheap on a 2-core CI machine; full-size runs are tested too.
SMALL = ModelDefinition("test-small", fps=25, width=320, height=192)
KEY = "test-key"


def pattern(model: ModelDefinition = SMALL) -> np.ndarray:
    """Smooth gradients in every channel: they survive VP8 well at small bitrates."""
    h, w = model.height, model.width
    ys, xs = np.mgrid[0:h, 0:w]
    r = 40 + xs * 170 // w
    g = 40 + ys * 170 // h
    b = 200 - (xs + ys) * 150 // (w + h)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def repeat(frame: np.ndarray) -> Iterator[np.ndarray]:
    """An endless source of one frame."""
    while True:
        yield frame


def invert(x: np.ndarray) -> np.ndarray:
    return 255 - x


def grayscale(x: np.ndarray) -> np.ndarray:
    y = np.round(x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114)
    return np.repeat(y[..., None], 3, axis=-1).astype(np.uint8)


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# VP8 at aiortc's default bitrate, on smooth content: well under this once settled.
TOLERANCE = 10.0


def wait_for_frame(
    frames: Iterator[np.ndarray],
    predicate: Callable[[np.ndarray], bool],
    timeout: float = 15.0,
) -> np.ndarray:
    """The first frame that satisfies ``predicate``; fails with the last error seen."""
    deadline = time.monotonic() + timeout
    last = None
    for frame in frames:
        last = frame
        if predicate(frame):
            return frame
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no matching frame within {timeout} s (last frame: {_describe(last)})")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def _describe(frame: np.ndarray | None) -> str:
    if frame is None:
        return "none"
    return f"shape {frame.shape}, mean {frame.reshape(-1, 3).mean(axis=0).round(1).tolist()}"


def close_to(expected: np.ndarray, tolerance: float = TOLERANCE) -> Callable[[np.ndarray], bool]:
    return lambda frame: frame.shape == expected.shape and mean_error(frame, expected) < tolerance


def published_stats(client: Any) -> list[Any]:
    """LiveKit's own stats of what a LiveKit client publishes (its camera track): the
    client's account of what it sends, which the public figures do not carry."""
    return client.media_report(timeout=5)


@contextlib.contextmanager
def emulator_process() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """An emulator in a process of its own serving SMALL: its URL, and the process."""
    command = [sys.executable, "-m", "decart_sync.emulator", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--model", models.spec(SMALL)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"ws://127\.0\.0\.1:\d+", line)
        assert match, f"emulator did not print its URL: {line!r}"
        yield match.group(0), proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def clients_of(url: str, **defaults: Any) -> Iterator[Callable[..., decart_sync.RealtimeClient]]:
    """``connect(source, **options)`` against ``url``, ``defaults`` and the test key filled
    in (``options`` win); every client it made is closed on the way out."""
    made: list[decart_sync.RealtimeClient] = []

    def _connect(source: object = None, **options: Any) -> decart_sync.RealtimeClient:
        settings = {"api_key": KEY, "base_url": url, "timeout": 20.0, **defaults, **options}
        client = decart_sync.connect(source, **settings)
        made.append(client)
        return client

    try:
        yield _connect
    finally:
        for client in made:
            client.close()


# The emulator's LiveKit signaling, by test id: /rtc/v1 (one peer connection, what LiveKit
# clients try first) or a server without it, where they fall back to /rtc (two).
SIGNALING = {"rtc-v1": True, "rtc": False}
ON_BOTH_PATHS = pytest.mark.parametrize(
    "emu", list(SIGNALING.values()), ids=list(SIGNALING), indirect=True
)


def livekit_joins(emu: Any) -> list[Any]:
    """Every LiveKit signal connection the emulator's sessions' rooms served (the clients'
    and viewers'), oldest session first: `Participation` records."""
    return [p for s in emu.history if s.room is not None for p in list(s.room.participations)]


@contextlib.contextmanager
def took_its_path(emu: Any) -> Iterator[list[Any]]:
    """Checks, after the block, that each LiveKit participant that joined during it took the
    emulator's signaling path: on /rtc/v1 one peer connection, connected; on /rtc two, at
    least one connected (a viewer's publisher PC never connects). Yields those joins."""
    before = {id(p) for p in livekit_joins(emu)}
    joined: list[Any] = []
    yield joined
    joined.extend(p for p in livekit_joins(emu) if id(p) not in before)
    path, peers = ("/rtc/v1", 1) if emu.livekit_v1 else ("/rtc", 2)
    for join in joined:
        taken = (join.path, join.peer_connections)
        assert taken == (path, peers), f"{join.identity} took {taken}, not {(path, peers)}"
        if emu.livekit_v1:
            assert join.connected == 1, f"{join.identity}: {join.connected} peers connected"


class Clock:
    """A clock that moves only when a test moves it (``clock.now += 0.5``): stands in for
    ``time.monotonic`` or ``time.time`` where a unit test needs time to pass."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
