"""README's main command, exactly as written, in a fresh clone with a fresh virtualenv.

It installs decart-sync and its dependencies from the package index, so it runs only
when downloads are on (``DECART_SYNC_TEST_DOWNLOADS=1``, as CI sets it). The clone is
of the repository's HEAD: what is committed, as a new user gets it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest
from helpers import ROOT

SWITCH = "DECART_SYNC_TEST_DOWNLOADS"
pytestmark = pytest.mark.timeout(1200)


def readme_main_command() -> str:
    """The first command of README's "The two commands", as a user would paste it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    found = [line for line in lines if line.startswith("pip install") and "stream" in line]
    assert len(found) == 1, found
    return found[0]


def sepia_like(frame: np.ndarray, tolerance: int = 12) -> float:
    """The share of pixels with R >= G >= B: every row of the sepia matrix outweighs the
    next, so a sepia picture has them all, a colourful one far from all."""
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return float(np.mean((r + tolerance >= g) & (g + tolerance >= b)))


def test_the_readme_main_command_in_a_fresh_clone(tmp_path) -> None:
    if os.environ.get(SWITCH) != "1":
        pytest.skip(f"installs decart-sync from the package index; set {SWITCH}=1 to run it")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    command = readme_main_command()
    clone = tmp_path / "decart-sync"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DECART_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    done = subprocess.run(
        ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=1100
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "embedded emulator" in done.stderr  # no key: the emulator, and it says so
    with av.open(str(clone / "restyled.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1280, 720)  # lucy-2.1
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    # A stream, not a still: how many of the 300 frames a loaded 2-core machine encodes,
    # decodes and encodes again is the benchmark's to measure (46 at a load of 10).
    assert len(frames) >= 20, len(frames)
    assert min(sepia_like(frame) for frame in frames[-10:]) > 0.97  # the prompt's effect
