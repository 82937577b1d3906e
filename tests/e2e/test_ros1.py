"""The ROS node end to end on a real ROS 1 graph (Debian's rospy), against the emulator.

A master on a free loopback port, the node (``python -m decart_sync.ros``) and a
test node (``tests/drivers/ros1_probe.py``) as processes; the emulator is this
process's. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DRIVERS, SMALL, wait_until

from decart_sync import models
from decart_sync.emulator import Emulator

DIST_PACKAGES = "/usr/lib/python3/dist-packages"
ROSMASTER = shutil.which("rosmaster")
ROSNODE = shutil.which("rosnode")
MISSING = [
    name
    for name in ("rospy", "rosmaster", "sensor_msgs", "std_msgs", "diagnostic_msgs", "genpy")
    if not os.path.isdir(os.path.join(DIST_PACKAGES, name))
]
if MISSING or not ROSMASTER or not ROSNODE:
    pytest.skip(
        "ROS 1 END-TO-END TESTS SKIPPED: Debian's ROS packages are not installed "
        f"(missing {', '.join(MISSING) or 'rosmaster/rosnode'}); "
        "apt-get install python3-rospy python3-rosmaster python3-rosnode python3-sensor-msgs "
        "python3-std-msgs python3-diagnostic-msgs",
        allow_module_level=True,
    )

MODEL = models.spec(SMALL)
SECRET = "sk-never-in-the-logs-4f1e"
OK, ERROR = 0, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process whose output goes to a file, stopped for sure at the end."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path, **kw: Any):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._file = self.log.open("w")
        self.popen = subprocess.Popen(
            args, env=env, stdout=kw.pop("stdout", self._file), stderr=self._file, **kw
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._file.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Probe:
    """tests/drivers/ros1_probe.py: one JSON command, one JSON reply."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        assert proc.popen.stdout is not None
        self._reader = threading.Thread(target=self._read, name="probe-reader", daemon=True)
        self._reader.start()
        assert self.replies.get(timeout=30).get("ready"), proc.text()

    def _read(self) -> None:
        assert self.proc.popen.stdout is not None
        for line in self.proc.popen.stdout:
            self.replies.put(json.loads(line))

    def __call__(self, cmd: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.popen.stdin is not None
        self.proc.popen.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.popen.stdin.flush()
        try:
            return self.replies.get(timeout=float(kw.get("timeout", 20)) + 10)
        except queue.Empty:
            raise AssertionError(f"probe gave no answer to {cmd}:\n{self.proc.text()}") from None

    def must(self, cmd: str, **kw: Any) -> dict[str, Any]:
        reply = self(cmd, **kw)
        assert reply.get("ok"), f"{cmd} {kw}: {reply}"
        return reply


class Graph:
    """A master, the processes started on it, and where their logs go."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.env = {
            **os.environ,
            "ROS_MASTER_URI": f"http://127.0.0.1:{self.port}",
            "ROS_IP": "127.0.0.1",
            "ROS_HOSTNAME": "127.0.0.1",
            "ROS_HOME": str(tmp / "ros_home"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("DECART_API_KEY", None)
        self.env.pop("ROS_VERSION", None)
        self.procs: list[Proc] = []
        self.master = self.start("master", [str(ROSMASTER), "--core", "-p", str(self.port)])
        api = xmlrpc.client.ServerProxy(self.env["ROS_MASTER_URI"])

        def master_up() -> bool:
            try:
                return api.getSystemState("/test")[0] == 1  # type: ignore[index]
            except OSError:
                return False

        wait_until(master_up, 20, "the ROS master answering")

    def start(self, name: str, args: list[str], **kw: Any) -> Proc:
        proc = Proc(name, args, kw.pop("env", self.env), self.tmp, **kw)
        self.procs.append(proc)
        return proc

    def node(self, emulator: Emulator, **params: str) -> Proc:
        settings = {
            "model": MODEL,
            "emulator_url": emulator.url,
            "stats_interval": "0.5",
            **params,
        }
        env = {**self.env, "DECART_API_KEY": SECRET}  # must not reach the logs nor the emulator
        args = [sys.executable, "-m", "decart_sync.ros", "__name:=decart_sync"]
        args += [f"_{k}:={v}" for k, v in settings.items()]
        return self.start("node", args, env=env)

    def probe(self) -> Probe:
        proc = self.start(
            "probe",
            [sys.executable, str(DRIVERS / "ros1_probe.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return Probe(proc)

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.text()}" for p in self.procs)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.stdin is not None and proc.popen.poll() is None:
                try:
                    proc.popen.stdin.write('{"cmd": "quit"}\n')
                    proc.popen.stdin.close()
                    proc.popen.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            proc.stop()


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[Graph]:
    g = Graph(tmp_path)
    try:
        yield g
    finally:
        g.close()
        print(g.logs())  # pytest shows it when the test failed


def stop_within(proc: Proc, seconds: float = 3.0) -> float:
    """Wait for the node to exit after it was told to; returns how long it took."""
    started = time.monotonic()
    try:
        proc.popen.wait(seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the node did not exit within {seconds} s:\n{proc.text()}") from None
    return time.monotonic() - started


def leftovers(graph: Graph) -> list[str]:
    """Processes still on this test's ROS graph, besides the master and the probe."""
    mine = {p.popen.pid for p in graph.procs if p.name in ("master", "probe")}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        uri = graph.env["ROS_MASTER_URI"].encode() + b"\0"
        if int(pid) not in mine and uri in environ:
            found.append(f"{pid}: {cmdline.decode(errors='replace')}")
    return found


def test_restyles_a_topic_end_to_end(graph: Graph, emulator: Emulator) -> None:
    node = graph.node(emulator, prompt="invert")
    probe = graph.probe()
    probe.must("subscribe")
    probe.must("publish", rate=15.0)

    out = probe.must("wait_image", style="invert", timeout=30)
    assert out["stamp_known"], f"image_out's stamp is none of image_in's: {out}"
    assert out["frame_id"] == "camera_optical"

    probe.must("prompt_topic", text="grayscale")  # the prompt topic
    out = probe.must("wait_image", style="grayscale")
    assert out["stamp_known"] and out["frame_id"] == "camera_optical"

    answer = probe.must("service", text="invert")  # the set_prompt service waits for the ack
    assert answer["success"], answer
    probe.must("wait_image", style="invert")
    assert emulator.sessions[-1].prompt == "invert"

    probe.must("param", text="grayscale")  # `rosparam set` at run time
    probe.must("wait_image", style="grayscale")
    # Each prompt reached the service once, in order (the first is the start-up
    # ~prompt): the parameter poll, every 0.25 s all along, never put that one
    # back over the topic's.
    sent = [m["prompt"] for m in emulator.sessions[-1].messages if m.get("type") == "prompt"]
    assert sent == ["invert", "grayscale", "invert", "grayscale"], sent

    diag = probe.must("wait_diag", level=OK, contains="generating", flowing=True)
    assert float(diag["values"]["fps in"]) > 0 and float(diag["values"]["fps out"]) > 0, diag
    assert diag["values"]["rtt ms"]  # a number once the library reports one, else "unknown"
    probe.must("wait_state", state="generating")

    # A permanent error from the service: logged with its code, diagnostics ERROR.
    assert emulator.send({"type": "error", "error": "Invalid API key"}) >= 1
    diag = probe.must("wait_diag", level=ERROR, contains="permanent")
    assert "INVALID_API_KEY" in diag["message"] or "Invalid API key" in diag["message"], diag
    probe.must("wait_state", state="disconnected")
    wait_until(lambda: "permanent error" in node.text(), 5, "the permanent error logged")

    node.popen.send_signal(signal.SIGINT)  # Ctrl-C
    print(f"node exited {stop_within(node):.2f} s after SIGINT")
    assert node.popen.returncode == 0, node.text()
    assert not leftovers(graph)
    assert SECRET not in graph.logs()
    assert all(SECRET not in (s.offer_sdp or "") + str(s.messages) for s in emulator.history)


def test_lazy_connects_only_while_image_out_is_watched(graph: Graph, emulator: Emulator) -> None:
    before = len(emulator.history)
    node = graph.node(emulator, prompt="invert", lazy="true")
    probe = graph.probe()
    probe.must("publish", rate=15.0)
    diag = probe.must("wait_diag", level=OK, contains="idle")
    assert diag["values"]["state"] == "disconnected"
    assert len(emulator.history) == before, "connected with nobody watching image_out"

    probe.must("subscribe")
    probe.must("wait_image", style="invert", timeout=30)
    assert len(emulator.history) == before + 1

    probe.must("unsubscribe")
    probe.must("wait_state", state="disconnected")
    wait_until(lambda: not emulator.sessions, 10, "the emulator session closing")
    probe.must("wait_diag", level=OK, contains="idle")

    probe.must("subscribe")  # and back
    probe.must("wait_image", style="invert", timeout=30)
    assert len(emulator.history) == before + 2

    # rosnode kill returns once it told the node to shut down; the node must be gone 3 s later.
    killed = subprocess.run(
        [str(ROSNODE), "kill", "/decart_sync"], env=graph.env, capture_output=True, timeout=20
    )
    assert killed.returncode == 0, killed
    print(f"node exited {stop_within(node):.2f} s after rosnode kill returned")
    assert node.popen.returncode == 0, node.text()
    assert not leftovers(graph)
    wait_until(lambda: not emulator.sessions, 5, "the session closed by the node's shutdown")
