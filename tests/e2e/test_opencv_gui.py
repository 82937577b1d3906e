"""cv2.imshow works whatever the order of ``import decart_sync`` and ``import cv2``.

PyAV loaded before OpenCV's windowed wheel freezes the first imshow/waitKey at
100% CPU (see decart_sync/_process.py). Each order runs in a subprocess of
the OpenCV venv (the ``gui`` fixture) on an Xvfb display, with a time limit.
"""

from __future__ import annotations

import subprocess

import pytest
from helpers import DRIVERS

pytestmark = pytest.mark.timeout(600)  # the first run makes the OpenCV venv

PROBE = str(DRIVERS / "opencv_gui_probe.py")
LIMIT = 60.0  # seconds; the probe itself needs about 2


def probe(gui: tuple[str, dict[str, str]], order: str, url: str = "", limit: float = LIMIT) -> str:
    python, env = gui
    try:
        done = subprocess.run(
            [python, PROBE, order, url], env=env, capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        return "TIMEOUT"
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_clash_is_there_without_decart_sync(gui) -> None:
    """The control: av before cv2 freezes here, so the tests below can fail."""
    out = probe(gui, "av,cv2", limit=15)
    if out != "TIMEOUT":
        pytest.skip(f"this OpenCV and PyAV do not clash here ({out.strip()}): nothing to prove")


@pytest.mark.parametrize("order", ["decart_sync,cv2", "cv2,decart_sync"])
def test_imshow_after_import_in_either_order(gui, order: str) -> None:
    out = probe(gui, order)
    assert out.startswith("SHOWN 10 frames") and "visible 1.0" in out, out


def test_imshow_of_restyled_frames_when_cv2_comes_after_connect(gui, emulator) -> None:
    out = probe(gui, "decart_sync,connect,cv2", emulator.url)
    assert out.startswith("SHOWN 10 frames") and "visible 1.0" in out, out
