"""Virtualenvs under ``.bench/`` for packages this project never depends on: the
official SDKs the benchmark and the comparison tests run, OpenCV's windowed wheel.

Each is made once. A marker written after a successful install holds what was
installed, so a venv left half-made (an interrupted or failed pip) is installed
into again instead of being taken as ready.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
OFFICIAL = "decart[realtime]==0.0.37"  # the classic models' generation: plain WebRTC
OFFICIAL_LIVEKIT = "decart[realtime]==0.2.4"  # today's: LiveKit
# name under .bench/: what pip installs there
OFFICIAL_VENV = ("official-venv", (OFFICIAL, "numpy"))
OFFICIAL_LIVEKIT_VENV = ("official-livekit-venv", (OFFICIAL_LIVEKIT, "numpy"))
MARKER = "installed.txt"
# Seconds for pip; with the venv's own 60 within the 600 the tests that wait for it allow.
INSTALL_TIMEOUT = 480.0


def venv_python(name: str, requirements: tuple[str, ...]) -> tuple[str | None, str]:
    """The python of ``.bench/NAME`` with ``requirements`` (pip arguments) installed,
    or None and why not."""
    venv = BENCH / name
    python = venv / "bin" / "python"
    marker = venv / MARKER
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python), ""
    step = f"python -m venv {venv}"
    try:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(venv)],
                check=True,
                timeout=60,
                capture_output=True,
                text=True,
            )
        step = f"pip install {' '.join(requirements)} into {venv}"
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements],
            check=True,
            timeout=INSTALL_TIMEOUT,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or exc.stdout or "").strip()[-800:]
        return None, f"{step} failed: {said}"
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"{step} failed: {exc!r}"
    marker.write_text(wanted)
    return str(python), ""
