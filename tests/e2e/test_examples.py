"""Every script in examples/ runs, as a user would start it, against an emulator.

Each runs in a subprocess with a time limit and no API key: basic.py starts
its own emulator (what a first-time user gets), the others are pointed at the
test emulator with DECART_REALTIME_BASE_URL. opencv_camera.py opens a real
window on an Xvfb display, in the venv of OpenCV's windowed wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import ROOT, SMALL, pattern

pytestmark = pytest.mark.timeout(600)

EXAMPLES = ROOT / "examples"


def run(
    script: str,
    *args: str,
    url: str | None = None,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    limit: float = 120,
) -> str:
    env = dict(env if env is not None else os.environ)
    env.pop("DECART_API_KEY", None)
    env.pop("DECART_REALTIME_BASE_URL", None)
    if url is not None:
        env["DECART_REALTIME_BASE_URL"] = url
    done = subprocess.run(
        [python, str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=limit,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_example_is_tested_here() -> None:
    tested = {"basic.py", "live_avatar.py", "opencv_camera.py", "subscribe_viewer.py"}
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_basic_with_its_own_emulator() -> None:
    out = run("basic.py")
    assert "state: generating" in out
    assert "frame (720, 1280, 3) uint8 session " in out, out  # lucy-2.1


def test_live_avatar(emulator, tmp_path: Path) -> None:
    portrait, speech = tmp_path / "portrait.png", tmp_path / "speech.wav"
    with av.open(str(portrait), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 64, 64, "rgb24"
        picture = np.full((64, 64, 3), (200, 120, 60), np.uint8)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
    tone = (np.sin(np.arange(24_000) * 2 * np.pi * 440 / 48_000) * 12_000).astype(np.int16)
    with wave.open(str(speech), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(tone.tobytes())
    out_text = run("live_avatar.py", str(portrait), str(speech), url=emulator.url)
    assert out_text.strip() == "avatar frame: (720, 1280, 3)"


def test_subscribe_viewer(connect, emulator) -> None:
    client = connect(iter(lambda: pattern(), None))
    assert client.read(timeout=15)[0] and client.subscribe_token
    out = run("subscribe_viewer.py", client.subscribe_token, "20", url=emulator.url)
    lines = out.splitlines()
    assert lines[0] == "frame 1: (704, 1280, 3)" and lines[-1] == "frame 20: (704, 1280, 3)", out
    assert len(lines) == 20


def test_opencv_camera_in_a_window(gui, emulator, tmp_path: Path) -> None:
    # A count, not a time: how many frames a loaded machine restyles in a few seconds
    # is no property of the example. The clip outlasts the count: 10 s at 25 fps.
    shown = 25
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = SMALL.width, SMALL.height, "yuv420p"
        for i in range(250):
            frame = av.VideoFrame.from_ndarray(pattern(), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    python, env = gui
    out = run(
        "opencv_camera.py", "--source", str(clip), "--frames", str(shown),
        url=emulator.url, python=python, env=env,
    )  # fmt: skip
    assert out.strip() == f"shown {shown} restyled frames of 1280x720", out
