"""OpenCV users: a live camera is drained, decart_sync.VideoCapture, lazy media imports."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from collections import deque

import numpy as np
import pytest
from conftest import SMALL, wait_until

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
                lags.append(newest - read_stamp(received.to_ndarray(format="rgb24")))
                seen = received
            time.sleep(0.003)  # polling for the next arrival
        print(f"frames behind the newest produced: {lags}; left in the buffer: {len(camera.buffer)}")
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
