"""OpenCV users: a live camera is drained, decart_sync.VideoCapture, lazy media imports."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from helpers import SMALL, close_to, wait_until

from benchmarks.stamp import read_stamp, stamp

pytestmark = pytest.mark.timeout(120)


class BufferingCamera:
    """A camera whose driver buffers without limit, as a network stream does.

    A thread produces frames stamped with their index at ``fps`` into a deque;
    ``read()`` pops the oldest, waiting for one when the buffer is empty.
    """

    def __init__(self, fps: float, frame: np.ndarray) -> None:
        self.period = 1.0 / fps
        self.frame = frame
        self.buffer: deque[np.ndarray] = deque()
        self.produced = 0
        self.ready = threading.Condition()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._produce, daemon=True)
        self.thread.start()

    def _produce(self) -> None:
        due = time.monotonic()
        while not self.stopped.wait(max(0.0, due - time.monotonic())):
            frame = self.frame.copy()
            stamp(frame, self.produced)
            with self.ready:
                self.buffer.append(frame)
                self.produced += 1
                self.ready.notify()
            due += self.period

    def read(self) -> tuple[bool, np.ndarray | None]:
        with self.ready:
            self.ready.wait_for(lambda: self.buffer or self.stopped.is_set(), timeout=5)
            if not self.buffer:
                return False, None
            return True, self.buffer.popleft()

    def release(self) -> None:
        self.stopped.set()
        with self.ready:
            self.ready.notify_all()
        self.thread.join(5)


def grey(model=SMALL, level: int = 90) -> np.ndarray:
    return np.full((model.height, model.width, 3), level, np.uint8)


def test_live_camera_is_drained_as_fast_as_it_produces(connect, emulator) -> None:
    # 30 fps into a 25 fps model: read at the model's rate, the buffer would grow by
    # 5 frames a second and every frame sent would be older than the one before.
    camera = BufferingCamera(30, grey())
    try:
        client = connect(camera)
        served = emulator.session(client.session_id)
        assert served is not None
        start = camera.produced
        wait_until(lambda: camera.produced >= start + 300, 20, "10 s of camera frames")
        # Each frame the emulator receives, seen within a few ms of its arrival, against
        # the newest frame the camera had produced by then.
        lags: list[int] = []
        seen = served.last_frame_in
        deadline = time.monotonic() + 5
        while len(lags) < 25 and time.monotonic() < deadline:
            received = served.last_frame_in
            if received is not None and received is not seen:
                newest = camera.produced - 1  # read after: a lag can only look larger
                lags.append(newest - read_stamp(as_rgb(received)))
                seen = received
            time.sleep(0.003)  # polling for the next arrival
        print(f"frames behind the newest produced: {lags}; buffered: {len(camera.buffer)}")
        assert len(lags) >= 20, lags
        assert statistics.median(lags) <= 2, lags
        assert len(camera.buffer) <= 2
    finally:
        camera.release()


def test_import_decart_sync_loads_no_media_stack() -> None:
    code = (
        "import sys, decart_sync\n"
        "from decart_sync import models, signals, DecartSDKError, ModelDefinition\n"
        "print(sorted(m for m in ('av', 'aiortc', 'cv2') if m in sys.modules))\n"
        "from decart_sync import connect, DecartClient, RealtimeClient\n"
        "print(callable(connect), 'av' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.splitlines() == ["[]", "True True"], out


class StillCamera:
    """What cv2.VideoCapture offers a source: read() -> (ok, frame) in BGR order."""

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame
        self.released = False

    def read(self) -> tuple[bool, np.ndarray]:
        return True, self.frame

    def release(self) -> None:
        self.released = True


def channel_means(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


def as_rgb(frame: Any) -> np.ndarray:
    """An emulator frame as RGB, with a converter of our own: the emulator's worker may
    be converting the same frame, and a frame's own converter is not thread-safe."""
    from av.video.reformatter import VideoReformatter

    return VideoReformatter().reformat(frame, format="rgb24").to_ndarray()


def settles_at(expected: tuple[int, int, int]):
    """Each channel's mean within 6 of ``expected``: a swap of red and blue fails it."""
    return lambda frame: bool(np.all(np.abs(channel_means(frame) - expected) < 6))


def grabbed(cap) -> Iterator[np.ndarray]:
    """Frames by cap.grab() then cap.retrieve(), each step checked."""
    while True:
        assert cap.grab()
        ok, frame = cap.retrieve()
        assert ok and frame is not None
        yield frame


def reads(cap) -> Iterator[np.ndarray]:
    """cap.read() frames, each one checked to be there."""
    while True:
        ok, frame = cap.read()
        assert ok and frame is not None
        yield frame


def test_video_capture_restyles_bgr_frames(emulator) -> None:
    from helpers import KEY, wait_for_frame, wait_until

    import decart_sync

    # Mostly red, in OpenCV's BGR order: blue 30, green 40, red 220.
    camera = StillCamera(np.full((SMALL.height, SMALL.width, 3), (30, 40, 220), np.uint8))
    with decart_sync.VideoCapture(
        camera, model=SMALL, prompt="invert", api_key=KEY, base_url=emulator.url
    ) as cap:
        assert cap.isOpened()
        assert (cap.get(3), cap.get(4), cap.get(5)) == (320.0, 192.0, 25.0)
        assert cap.get(42) == 0.0 and cap.set(3, 640) is False
        # The model saw red (RGB 220, 40, 30); its inverse, in BGR: 255 - (30, 40, 220).
        wait_for_frame(reads(cap), settles_at((225, 215, 35)))
        served = emulator.session(cap.client.session_id)
        # What the emulator received settles too (VP8's quality climbs over the first frames).
        wait_until(
            lambda: settles_at((220, 40, 30))(as_rgb(served.last_frame_in)),
            10,
            "the emulator's input settling at the camera's red",
        )
        wait_for_frame(grabbed(cap), settles_at((225, 215, 35)))  # grab() + retrieve()

        # The rest of the client: BT.601 luma of RGB (220, 40, 30) is 93 (58 if swapped).
        cap.client.set_prompt("grayscale")
        wait_for_frame(reads(cap), settles_at((93, 93, 93)))
    assert not cap.isOpened()
    assert cap.read() == (False, None) and cap.retrieve() == (False, None)
    cap.release()  # again: nothing happens
    assert not camera.released  # the user's capture is the user's to release


def test_video_capture_opens_camera_indexes_with_opencv(emulator, monkeypatch) -> None:
    from helpers import KEY, invert, pattern, wait_for_frame

    import decart_sync

    opened: list[object] = []
    frame = pattern()

    class FakeCV2:
        """The one call VideoCapture makes of OpenCV, around a still camera."""

        @staticmethod
        def VideoCapture(index: object) -> StillCamera:
            opened.append(index)
            camera = StillCamera(frame[..., ::-1].copy())
            camera.isOpened = lambda: True  # type: ignore[attr-defined]
            return camera

    monkeypatch.setitem(sys.modules, "cv2", FakeCV2)
    cap = decart_sync.VideoCapture(
        0, model=SMALL, prompt="invert", api_key=KEY, base_url=emulator.url
    )
    try:
        wait_for_frame(reads(cap), close_to(invert(frame[..., ::-1])))
    finally:
        cap.release()
    assert opened == [0] and cap._owned is None


def test_which_captures_are_live() -> None:
    """Drained: cameras and streams (OpenCV reports no frame count for them, -1 or 0)
    and objects with read() alone; paced: captures of files (a frame count)."""
    from decart_sync.sources import _is_live

    class Capture:
        def __init__(self, count: object) -> None:
            self.count = count

        def read(self) -> tuple[bool, None]:
            return False, None

        def get(self, prop: int) -> object:
            if self.count == "raise":
                raise ValueError(prop)
            return self.count if prop == 7 else 640.0

    assert _is_live(StillCamera(grey()))
    assert _is_live(Capture(-1.0)) and _is_live(Capture(0.0)) and _is_live(Capture("raise"))
    assert not _is_live(Capture(250.0))
