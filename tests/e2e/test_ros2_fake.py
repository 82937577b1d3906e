"""The ROS 2 adapter against a fake rclpy (tests/support/fake_rclpy.py), driving the real core,
the real library and the emulator: rclpy cannot be installed on these machines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import fake_rclpy
import pytest
from helpers import SMALL, grayscale, invert, mean_error, pattern, wait_until

from decart_sync import models
from decart_sync.emulator import Emulator
from decart_sync.ros import images

MODEL = models.spec(SMALL)
OK, ERROR = b"\x00", b"\x02"


class Camera:
    """Publishes rgb8 images on /image_in at 15 Hz, each with its own stamp."""

    def __init__(self, graph: fake_rclpy.Graph) -> None:
        self.graph = graph
        self.frame = pattern()
        self.stamps: set[tuple[int, int]] = set()
        self.encoding = "rgb8"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-camera", daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(1 / 15):
            n += 1
            h, w = self.frame.shape[:2]
            msg = fake_rclpy.Image(height=h, width=w, encoding=self.encoding, step=w * 3)
            msg.data = self.frame.tobytes()
            msg.header.stamp = fake_rclpy.Time(sec=100 + n, nanosec=n * 1000)
            msg.header.frame_id = "cam"
            self.stamps.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
            self.graph.publish("/image_in", msg)


@pytest.fixture
def ros2(monkeypatch: pytest.MonkeyPatch) -> Iterator[fake_rclpy.Graph]:
    graph = fake_rclpy.install(monkeypatch)
    yield graph
    graph.shutdown()


def start_node(ros2: fake_rclpy.Graph, **params: str) -> tuple[list[int], threading.Thread]:
    """The ROS 2 node's main() on a thread of its own, with these parameters; once spinning."""
    from decart_sync.ros import ros2 as adapter

    args = ["--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    result: list[int] = []
    main = threading.Thread(target=lambda: result.append(adapter.main(args)), name="fake-ros2-main")
    main.start()
    assert ros2.spinning.wait(10), ros2.logs
    return result, main


def looks_like(style: Any) -> Any:
    want = style(pattern())

    def check(msg: Any) -> bool:
        if msg.encoding != "bgr8":
            return False
        frame = images.to_array(msg, "rgb8")  # back to RGB, through the node's own converter
        return frame.shape == want.shape and mean_error(frame, want) < 10

    return check


def test_ros2_adapter_on_a_fake_rclpy(ros2: fake_rclpy.Graph, emulator: Emulator) -> None:

    threads_before = {t.name for t in threading.enumerate()}
    sessions_before = len(emulator.history)
    result, main = start_node(
        ros2,
        model=MODEL,
        emulator_url=emulator.url,
        prompt="invert",
        lazy="true",
        encoding="bgr8",
        stats_interval="0.2",
    )
    camera = Camera(ros2)
    camera.thread.start()
    try:
        # lazy: nobody subscribes image_out, so no session
        ros2.wait_published(
            "/diagnostics", lambda d: "idle" in d.status[0].message and d.status[0].level == OK, 5
        )
        assert len(emulator.history) == sessions_before

        ros2.set_subscribers("/image_out", 1)
        out = ros2.wait_published("/image_out", looks_like(invert), 30)
        assert (out.header.stamp.sec, out.header.stamp.nanosec) in camera.stamps
        assert out.header.frame_id == "cam"
        ros2.wait_published("/decart_sync/state", lambda m: m.data == "generating", 5)

        # a parameter change goes through set_prompt on the worker; the callback returns at once
        started = time.monotonic()
        assert ros2.set_parameters({"prompt": "grayscale"}).successful
        assert time.monotonic() - started < 0.5
        ros2.wait_published("/image_out", looks_like(grayscale), 15)
        assert not ros2.set_parameters({"model": "lucy-restyle"}).successful  # fixed at start

        # the prompt topic
        ros2.publish("/decart_sync/prompt", fake_rclpy.String(data="invert"))
        ros2.wait_published("/image_out", looks_like(invert), 15)

        # an encoding it cannot take: one log line, frames skipped, the rest goes on
        camera.encoding = "16UC1"
        wait_until(lambda: any("16UC1" in line for line in ros2.logs), 5, "the encoding logged")
        camera.encoding = "rgb8"
        diag = ros2.wait_published(
            "/diagnostics",
            lambda d: d.status[0].level == OK and d.status[0].message == "generating",
            10,
            after=len(ros2.published["/diagnostics"]),
        )
        values = {kv.key: kv.value for kv in diag.status[0].values}
        assert int(values["skipped (encoding)"]) > 0
        assert float(values["fps out"]) > 0
        assert sum("16UC1" in line for line in ros2.logs) == 1

        ros2.set_subscribers("/image_out", 0)
        ros2.wait_published("/decart_sync/state", lambda m: m.data == "disconnected", 10)
        wait_until(lambda: not emulator.sessions, 10, "the session closing with no subscriber")
    finally:
        camera.stop.set()
        camera.thread.join(2)
        started = time.monotonic()
        ros2.shutdown()  # rclpy.shutdown() from elsewhere, as a launch system does
        main.join(5)
    assert not main.is_alive() and time.monotonic() - started < 3.0, ros2.logs
    assert result == [0]
    assert ros2.node is not None and ros2.node.destroyed
    ours = ("decart-sync-ros", "decart-sync-loop", "decart-sync-events", "decart-sync-signaling")
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith(ours)],
        5,
        "the node's threads ending",
    )
    left = {t.name for t in threading.enumerate()} - threads_before
    assert all(name.startswith("decart-sync-emulator") for name in left), left  # its pool


class ChangingCamera(Camera):
    """Each image a flat grey of its own, so an output tells which input it came from."""

    @staticmethod
    def level(n: int) -> int:
        return 40 + (n * 37) % 170

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(1 / 15):
            n += 1
            h, w = self.frame.shape[:2]
            msg = fake_rclpy.Image(height=h, width=w, encoding="rgb8", step=w * 3)
            msg.data = bytes([self.level(n)]) * (h * w * 3)
            msg.header.stamp = fake_rclpy.Time(sec=100 + n, nanosec=0)
            msg.header.frame_id = "cam"
            self.graph.publish("/image_in", msg)


def test_over_livekit_image_out_has_the_header_of_its_own_input(
    ros2: fake_rclpy.Graph, emulator: Emulator
) -> None:
    result, main = start_node(
        ros2,
        model=MODEL,
        transport="livekit",
        emulator_url=emulator.url,
        prompt="invert",
        lazy="false",
    )
    camera = ChangingCamera(ros2)
    camera.thread.start()
    try:
        ros2.set_subscribers("/image_out", 1)
        # The first few outputs of a connection may come before LiveKit's receiver knows
        # of the frame timing (they take the newest input's header); from then on each
        # names its own input.
        ros2.wait_published("/image_out", lambda m: True, 30)
        start = len(ros2.published["/image_out"]) + 5
        wait_until(lambda: len(ros2.published["/image_out"]) >= start + 10, 20, "ten outputs")
        for msg in ros2.published["/image_out"][start : start + 10]:
            frame = images.to_array(msg, "rgb8")
            level = ChangingCamera.level(msg.header.stamp.sec - 100)
            # The inverse of the very input its header names, not of a newer one.
            assert abs(float(frame.mean()) - (255 - level)) < 8, (msg.header.stamp.sec, level)
    finally:
        camera.stop.set()
        camera.thread.join(2)
        ros2.shutdown()
        main.join(10)
    assert result == [0]
