"""A ROS 1 test node driven by tests/e2e/test_ros1.py over stdin/stdout, one JSON line each way.

It publishes camera images on ``image_in`` and prompts on the node's topic,
subscribes ``image_out``, the state topic and ``/diagnostics``, calls the
set_prompt service, and answers each command once its condition holds or its
deadline passed. Its own process, because rospy allows one node per process
and keeps threads until the process ends.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

sys.path.append("/usr/lib/python3/dist-packages")  # Debian's ROS 1, after the venv's packages

import numpy as np
import rospy
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import String

from decart_sync.ros.ros1 import set_prompt_service

NODE = "/decart_sync"
FRAME_ID = "camera_optical"
WIDTH, HEIGHT, PAD = 320, 192, 16  # rows padded by PAD bytes: the node must honour step
TOLERANCE = 12.0


def pattern() -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    r = 40 + xs * 170 // WIDTH
    g = 40 + ys * 170 // HEIGHT
    b = 200 - (xs + ys) * 150 // (WIDTH + HEIGHT)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def expected(style: str, rgb: np.ndarray) -> np.ndarray:
    if style == "invert":
        return 255 - rgb
    if style == "grayscale":
        y = np.round(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)
        return np.repeat(y[..., None], 3, axis=-1).astype(np.uint8)
    return rgb


class Probe:
    def __init__(self) -> None:
        rospy.init_node("probe", disable_signals=True)
        self.lock = threading.Condition()
        self.rgb = pattern()
        self.stamps: set[tuple[int, int]] = set()
        self.output: Any = None
        self.outputs = 0
        self.state: str | None = None
        self.diag: Any = None
        self.image_in = rospy.Publisher("image_in", Image, queue_size=1)
        self.prompt = rospy.Publisher(NODE + "/prompt", String, queue_size=1, latch=True)
        self.image_sub: Any = None
        rospy.Subscriber(NODE + "/state", String, self._on_state)
        rospy.Subscriber("/diagnostics", DiagnosticArray, self._on_diag)
        self.stop = threading.Event()
        self.publisher: threading.Thread | None = None

    # -- callbacks -----------------------------------------------------------------

    def _on_image(self, msg: Any) -> None:
        with self.lock:
            self.output = msg
            self.outputs += 1
            self.lock.notify_all()

    def _on_state(self, msg: Any) -> None:
        with self.lock:
            self.state = msg.data
            self.lock.notify_all()

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.hardware_id == "decart_sync":
                with self.lock:
                    self.diag = status
                    self.lock.notify_all()

    def _wait(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(remaining)
            return True

    # -- commands ------------------------------------------------------------------

    def publish(self, rate: float = 15.0) -> dict[str, Any]:
        bgr = self.rgb[..., ::-1]
        padded = np.zeros((HEIGHT, WIDTH * 3 + PAD), np.uint8)
        padded[:, : WIDTH * 3] = bgr.reshape(HEIGHT, WIDTH * 3)
        data = padded.tobytes()

        def run() -> None:
            while not self.stop.wait(1.0 / rate):
                msg = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", step=WIDTH * 3 + PAD)
                msg.data = data
                msg.header.stamp = rospy.Time.now()
                msg.header.frame_id = FRAME_ID
                with self.lock:
                    self.stamps.add((msg.header.stamp.secs, msg.header.stamp.nsecs))
                self.image_in.publish(msg)

        self.publisher = threading.Thread(target=run, name="probe-publisher", daemon=True)
        self.publisher.start()
        return {"ok": True}

    def subscribe(self) -> dict[str, Any]:
        if self.image_sub is None:
            self.image_sub = rospy.Subscriber("image_out", Image, self._on_image, queue_size=1)
        return {"ok": True}

    def unsubscribe(self) -> dict[str, Any]:
        if self.image_sub is not None:
            self.image_sub.unregister()
            self.image_sub = None
        return {"ok": True}

    def wait_image(self, style: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for an image_out frame close to ``style`` applied to the input pattern."""
        want = expected(style, self.rgb).reshape(HEIGHT, -1).astype(np.int16)
        errors: list[float] = []
        matched: list[Any] = []

        def matches() -> bool:
            msg, self.output = self.output, None  # judge each frame once
            if msg is None or msg.encoding != "rgb8" or (msg.width, msg.height) != (WIDTH, HEIGHT):
                return False
            frame = np.frombuffer(msg.data, np.uint8).reshape(HEIGHT, msg.step)[:, : WIDTH * 3]
            errors.append(float(np.abs(frame.astype(np.int16) - want).mean()))
            if errors[-1] < TOLERANCE:
                matched.append(msg)
            return bool(matched)

        with self.lock:
            self.output = None
        if not self._wait(matches, timeout):
            return {"ok": False, "error": f"no {style} frame in {timeout} s", "errors": errors[-5:]}
        msg = matched[0]
        stamp = (msg.header.stamp.secs, msg.header.stamp.nsecs)
        return {
            "ok": True,
            "stamp_known": stamp in self.stamps,
            "frame_id": msg.header.frame_id,
            "outputs": self.outputs,
        }

    def prompt_topic(self, text: str) -> dict[str, Any]:
        self.prompt.publish(String(data=text))
        return {"ok": True}

    def param(self, text: str) -> dict[str, Any]:
        rospy.set_param(NODE + "/prompt", text)  # as `rosparam set /decart_sync/prompt ...`
        return {"ok": True}

    def service(self, text: str, timeout: float = 20.0) -> dict[str, Any]:
        service = NODE + "/set_prompt"
        rospy.wait_for_service(service, timeout)
        call = rospy.ServiceProxy(service, set_prompt_service())
        response = call(prompt=text, enhance=False)
        return {"ok": True, "success": response.success, "message": response.message}

    def wait_state(self, state: str, timeout: float = 20.0) -> dict[str, Any]:
        ok = self._wait(lambda: self.state == state, timeout)
        return {"ok": ok, "state": self.state}

    def wait_diag(
        self, level: int, contains: str = "", timeout: float = 20.0, flowing: bool = False
    ) -> dict[str, Any]:
        """The newest diagnostics once they match; ``flowing``: frames in and out too
        (a report covers the second before it, which on a loaded machine may have had
        no new output)."""

        def seen() -> bool:
            d = self.diag
            if d is None or d.level != level or contains not in d.message:
                return False
            values = {kv.key: kv.value for kv in d.values}
            return not flowing or (float(values["fps in"]) > 0 and float(values["fps out"]) > 0)

        ok = self._wait(seen, timeout)
        d = self.diag
        if d is None:
            return {"ok": False, "error": "no diagnostics"}
        values = {kv.key: kv.value for kv in d.values}
        return {"ok": ok, "level": d.level, "message": d.message, "values": values}


def main() -> None:
    probe = Probe()
    print(json.dumps({"ok": True, "ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "quit":
            break
        try:
            reply = getattr(probe, name)(**command)
        except Exception as exc:
            reply = {"ok": False, "error": repr(exc)}
        print(json.dumps(reply), flush=True)
    probe.stop.set()
    rospy.signal_shutdown("test over")


if __name__ == "__main__":
    main()
