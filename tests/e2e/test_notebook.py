"""decart_sync.notebook: the live view in this process, and in a real Jupyter kernel.

The in-process tests drive the widgets the way a front end's messages do
(setting the prompt box's value, clicking the button) over real sessions
against the emulator. The kernel tests run the example notebook with nbclient
and drive an ipykernel over its own protocol: cell ids, interrupts, outputs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import nbformat
import numpy as np
import pytest
from helpers import KEY, ROOT, SMALL, TOLERANCE, invert, mean_error, pattern, repeat, wait_until
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from decart_sync.emulator import Emulator, Faults
from decart_sync.notebook import LiveView, live_view
from decart_sync.sources import synthetic

EXAMPLE = ROOT / "examples" / "notebook.ipynb"
KERNEL = "decart-sync-test"


def client_threads() -> list[str]:
    """Threads of clients and views (the emulator's own are not the view's to stop)."""
    return sorted(
        t.name
        for t in threading.enumerate()
        if t.name.startswith("decart-sync") and not t.name.startswith("decart-sync-emulator")
    )


def texts(view: LiveView) -> str:
    return "".join(entry["text"] for entry in view.output.outputs)


@pytest.fixture
def view_of(emulator: Emulator) -> Iterator[Any]:
    views: list[LiveView] = []

    def make(source: Any = None, **options: Any) -> LiveView:
        options.setdefault("model", SMALL)
        options.setdefault("api_key", KEY)
        options.setdefault("base_url", emulator.url)
        view = live_view(source, **options)
        views.append(view)
        return view

    yield make
    for view in views:
        view.stop()


# -- a live view in this process, over real sessions -------------------------------


def decode_jpeg(data: bytes) -> np.ndarray:
    decoder = av.CodecContext.create("mjpeg", "r")
    return decoder.decode(av.Packet(data))[0].to_ndarray(format="rgb24")


def test_view_shows_jpeg_of_the_output_at_a_capped_rate(view_of: Any) -> None:
    view = view_of(repeat(pattern()), prompt="invert", max_fps=5)
    view.wait_for_frames(1)
    started = time.monotonic()
    view.wait_for_frames(6)
    # The model makes 25 frames a second; at most 5 are shown, the rest skipped.
    assert time.monotonic() - started >= 6 * 0.2 * 0.95
    assert view.frames_skipped > 0
    shown = decode_jpeg(view.image.value)
    assert mean_error(shown, invert(pattern())) < TOLERANCE
    assert view.last_frame is not None and view.last_frame.shape == pattern().shape


def test_bgr_views_show_true_colours(view_of: Any) -> None:
    frame = pattern()[..., ::-1].copy()  # the same picture, in OpenCV's order
    view = view_of(repeat(frame), prompt="invert", pixel_format="bgr24")
    view.wait_for(lambda shown: mean_error(shown, invert(frame)) < TOLERANCE)
    view.wait_for_frames(1)
    assert mean_error(decode_jpeg(view.image.value), invert(pattern())) < TOLERANCE


def test_prompt_box_is_applied_on_the_worker_and_reported(view_of: Any) -> None:
    with Emulator(models=[SMALL]) as emu:
        view = view_of(repeat(pattern()), base_url=emu.url)
        emu.faults = Faults(ack_delay=3.0)
        view.prompt_box.value = "invert"  # what a front end does when Enter is pressed
        # The widget callback returned while the service still holds the ack.
        assert "acknowledged" not in texts(view)
        wait_until(lambda: "prompt 'invert' acknowledged" in texts(view), 15, "the ack")
        assert view.prompt == "invert"
        assert "'invert'" in view.status.value
        view.wait_for(lambda frame: mean_error(frame, invert(pattern())) < TOLERANCE)

        view.prompt_box.value = "grayscale"  # its ack is held 3 s: stop does not wait for it
        session = emu.sessions[0]
        wait_until(lambda: session.prompt == "grayscale", 10, "the prompt reaching the service")
        view.stop()
        assert view.client.state == "disconnected"
        assert client_threads() == []
        assert "'grayscale' acknowledged" not in texts(view)


def test_handler_output_and_errors_go_to_the_views_output(view_of: Any, capsys: Any) -> None:
    stdout = sys.stdout
    view = view_of(repeat(pattern()), prompt="invert")

    def fails(state: str) -> None:
        raise ValueError(f"broken handler saw {state}")

    view.on("connection_change", lambda state: print("handler says", state))
    view.on("connection_change", fails)
    view.stop()
    captured = texts(view)
    assert "handler says disconnected" in captured
    assert "ValueError: broken handler saw disconnected" in captured
    assert "state: disconnected" in captured  # the view's own message
    assert "handler says" not in capsys.readouterr().out
    assert sys.stdout is stdout


def test_stop_button_and_a_new_view_stop_the_session(view_of: Any) -> None:
    first = view_of(repeat(pattern()), prompt="invert")
    second = view_of(repeat(pattern()), prompt="invert")  # outside a kernel: no cell id
    assert first.stopped and first.client.state == "disconnected"
    second.wait_for_frames(1)
    second.stop_button.click()
    wait_until(lambda: second.stopped, 5, "the stop button's stop")
    assert second.client.state == "disconnected"
    assert second.stop_button.disabled and second.prompt_box.disabled
    wait_until(lambda: client_threads() == [], 5, "the stopping thread's end")
    with pytest.raises(ConnectionError):
        second.wait_for_frames(1)
    second.stop()  # idempotent


def test_sigint_stops_views_then_runs_the_previous_handler(view_of: Any) -> None:
    before = signal.getsignal(signal.SIGINT)
    try:
        view = view_of(repeat(pattern()), prompt="invert")
        view.wait_for_frames(1)
        with pytest.raises(KeyboardInterrupt):  # Python's own handler, chained
            os.kill(os.getpid(), signal.SIGINT)
            wait_until(lambda: False, 5, "KeyboardInterrupt")
        wait_until(lambda: view.stopped, 5, "the view's stop")
        wait_until(lambda: client_threads() == [], 5, "the stopping threads' end")
    finally:
        signal.signal(signal.SIGINT, before)


# -- a real kernel -------------------------------------------------------------------


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: Any) -> str:
    """A kernel spec for this interpreter, so the kernel imports this checkout."""
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    # The notebook's own emulator, never the service.
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    return KERNEL


def numbers(text: str, label: str, fact: str) -> np.ndarray:
    match = re.search(rf"\[{label}\] {re.escape(fact)}: ([\d. ]+)", text)
    assert match, f"no '[{label}] {fact}' in the notebook's output:\n{text}"
    return np.array([float(x) for x in match.group(1).split()])


def test_example_notebook_runs_headless_on_the_emulator(kernel_name: str) -> None:
    nb = nbformat.read(EXAMPLE, as_version=4)
    client = NotebookClient(
        nb,
        timeout=60,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(EXAMPLE.parent)}},
    )
    client.execute()
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs)

    # What the emulator's prompts make of the synthetic pattern, in exact integers.
    model = SMALL  # the notebook's model has the same size
    frames = [f.astype(np.int32) for f in synthetic(model, seconds=4)]
    grey = [(f[..., 0] * 299 + f[..., 1] * 587 + f[..., 2] * 114 + 500) // 1000 for f in frames]

    def band(f: np.ndarray) -> np.ndarray:
        return f[: model.height // 4].reshape(-1, 3).mean(axis=0)

    cases = {
        "invert": [255 - f for f in frames],
        "grayscale": [np.repeat(g[..., None], 3, axis=-1) for g in grey],
    }
    for label, expected in cases.items():
        assert re.search(rf"\[{label}\] state: generating", text), text
        assert numbers(text, label, "frames shown")[0] >= 10
        top = numbers(text, label, "top quarter (R G B)")
        assert np.abs(top - band(expected[0])).max() < 6, (label, top, band(expected[0]))
        mean = numbers(text, label, "mean colour (R G B)")
        means = np.array([f.reshape(-1, 3).mean(axis=0) for f in expected])
        assert np.all(mean > means.min(axis=0) - 6) and np.all(mean < means.max(axis=0) + 6)
    assert "[stopped] state: disconnected" in text
    assert "[stopped] decart_sync threads left: []" in text


class Kernel:
    """An ipykernel driven over its protocol, keeping every stream message it sends."""

    def __init__(self, name: str) -> None:
        self.manager, self.client = start_new_kernel(kernel_name=name, startup_timeout=60)
        self.streams: list[str] = []

    def start(self, code: str, cell_id: str | None = None) -> str:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.client.session.msg("execute_request", content, metadata=metadata)
        self.client.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def finish(self, msg_id: str, timeout: float = 30.0, until: str | None = None) -> str:
        """The cell's stream text, up to its end (or until ``until`` appears)."""
        text = ""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            kind, content = msg["msg_type"], msg["content"]
            ours = msg["parent_header"].get("msg_id") == msg_id
            if kind == "stream":
                self.streams.append(content["text"])
                text += content["text"] if ours else ""
            if ours and kind == "error":
                text += f"{content['ename']}: {content['evalue']}\n"
            if until is not None and until in text:
                return text
            if ours and kind == "status" and content["execution_state"] == "idle":
                return text

    def run(self, code: str, cell_id: str | None = None) -> str:
        return self.finish(self.start(code, cell_id))

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


SETUP = """
import threading, time
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator
from decart_sync.notebook import live_view
from decart_sync.sources import synthetic
model = ModelDefinition("classroom", fps=25, width=320, height=192)
emulator = Emulator(models=[model]).start()
options = {"base_url": emulator.url, "api_key": "local", "model": model, "prompt": "invert"}
views_a = []
def wait(condition):
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
def texts(view):
    return "".join(o["text"] for o in view.output.outputs)
def threads():
    names = (t.name for t in threading.enumerate() if t.name.startswith("decart-sync"))
    return sorted(name for name in names if not name.startswith("decart-sync-emulator"))
"""


def test_kernel_rerun_interrupt_and_handler_output(kernel_name: str) -> None:
    kernel = Kernel(kernel_name)
    try:
        assert "Error" not in kernel.run(SETUP)
        make_a = (
            "views_a.append(live_view(synthetic(model), **options))\nviews_a[-1].wait_for_frames(1)"
        )
        kernel.run(make_a, cell_id="cell-a")
        kernel.run("vb = live_view(synthetic(model), **options)", cell_id="cell-b")
        kernel.run(make_a, cell_id="cell-a")  # the same cell again: its first view stops
        out = kernel.run("print('stopped:', [v.stopped for v in views_a], vb.stopped)")
        assert "stopped: [True, False] False" in out, out

        # A handler's print goes to the view's Output, not to the cell that runs then.
        kernel.run("vb.on('connection_change', lambda state: print('vb says', state))")
        kernel.manager.interrupt_kernel()  # between cells: ipykernel itself ignores it
        out = kernel.run(
            "wait(lambda: vb.stopped and views_a[-1].stopped and not threads())\n"
            "print('stopped:', vb.stopped, views_a[-1].stopped, 'threads:', threads())\n"
            "print('captured:', texts(vb).count('vb says disconnected'))"
        )
        assert "stopped: True True threads: []" in out, out
        assert "captured: 1" in out, out
        assert not [s for s in kernel.streams if "vb says" in s]

        # An interrupt while another cell runs stops the views and interrupts that cell.
        kernel.run("ve = live_view(synthetic(model), **options); ve.wait_for_frames(1)")
        msg_id = kernel.start("print('waiting', flush=True)\nwhile True:\n    time.sleep(0.05)")
        kernel.finish(msg_id, until="waiting")
        kernel.manager.interrupt_kernel()
        assert "KeyboardInterrupt" in kernel.finish(msg_id)
        out = kernel.run(
            "wait(lambda: ve.stopped and not threads()); print('stopped:', ve.stopped, threads())"
        )
        assert "stopped: True []" in out, out
        kernel.run("emulator.close()")
    finally:
        kernel.close()
