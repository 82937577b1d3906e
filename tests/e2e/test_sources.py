"""Every kind of input source, both pixel formats, read() and concurrent iterators."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest
from helpers import SMALL, close_to, invert, pattern, repeat, wait_for_frame, wait_until

pytestmark = pytest.mark.timeout(90)


def test_iterator_source(connect) -> None:
    frame_in = pattern()
    client = connect(repeat(frame_in), initial_state={"prompt": {"text": "invert"}})
    wait_for_frame(client.frames(timeout=10), close_to(invert(frame_in)))


def test_finite_iterable_repeats_its_last_frame(connect) -> None:
    frame_in = pattern()
    client = connect([frame_in] * 3, initial_state={"prompt": {"text": "invert"}})
    wait_for_frame(client.frames(timeout=10), close_to(invert(frame_in)))
    wait_until(lambda: client.source_finished, 5, "the source's end")
    # Three input frames, yet output keeps flowing after them: the track repeats the last.
    frames = client.frames(timeout=5)
    after_end = [next(frames) for _ in range(25)]
    assert all(close_to(invert(frame_in))(frame) for frame in after_end)


class FakeCapture:
    """What cv2.VideoCapture offers: read() -> (ok, frame), BGR order."""

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame
        self.reads = 0

    def read(self) -> tuple[bool, np.ndarray]:
        self.reads += 1
        return True, self.frame


def test_capture_source_bgr_round_trip(connect) -> None:
    rgb = pattern()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    capture = FakeCapture(bgr)
    client = connect(capture, pixel_format="bgr24")
    out = wait_for_frame(client.frames(timeout=10), close_to(bgr))
    # Channel order survived the trip: the first channel is blue, as sent.
    assert abs(float(out[..., 0].mean()) - float(bgr[..., 0].mean())) < 5
    assert capture.reads > 0


def test_file_source(connect, tmp_path) -> None:
    frame_in = pattern()
    path = tmp_path / "input.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = SMALL.width, SMALL.height, "yuv420p"
        for i in range(100):
            video = av.VideoFrame.from_ndarray(frame_in, format="rgb24")
            video.pts = i
            container.mux(stream.encode(video))
        container.mux(stream.encode(None))
    client = connect(str(path), initial_state={"prompt": {"text": "invert"}})
    wait_for_frame(client.frames(timeout=10), close_to(invert(frame_in)))


def test_send_frame_of_any_size_and_grayscale(connect) -> None:
    client = connect(None)
    frames = client.frames(timeout=10)
    big = np.full((480, 640, 3), 200, np.uint8)  # scaled down by av
    client.send_frame(big)
    wait_for_frame(frames, close_to(np.full((SMALL.height, SMALL.width, 3), 200, np.uint8)))
    gray = np.full((100, 100), 60, np.uint8)
    client.send_frame(gray)
    wait_for_frame(frames, close_to(np.full((SMALL.height, SMALL.width, 3), 60, np.uint8)))


def test_read_and_concurrent_iterators(connect) -> None:
    frame_in = pattern()
    client = connect(repeat(frame_in))
    ok, frame = client.read(timeout=10)
    assert ok and frame is not None and frame.shape == frame_in.shape
    counts = [0, 0, 0]

    def consume(index: int) -> None:
        for count, _ in enumerate(client.frames(timeout=10), start=1):
            counts[index] = count
            if count >= 20:
                return

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert counts == [20, 20, 20]
    assert client.latest_frame is not None


def test_slow_consumer_drops_instead_of_buffering(connect) -> None:
    client = connect(repeat(pattern()))
    frames = client.frames(timeout=10)
    next(frames)
    received = client.stats["frames_received"]
    # Hold the iterator while more frames arrive: wait on the hub's counter, not the clock.
    assert client.read(timeout=10)[0]
    while client.stats["frames_received"] < received + 10:
        assert client.read(timeout=10)[0]
    next(frames)
    assert frames.dropped >= 5
    assert frames.delivered == 2
