"""A real X display (Xvfb) and a Python with OpenCV's windowed wheel, for GUI tests.

The windowed ``opencv-python`` wheel (Qt inside) is never a dependency of this
package: it goes into a virtualenv of its own, made once under ``.bench/``
(benchmarks/venvs.py, as for the official SDKs), together with this package.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# (name under .bench/, what pip installs there): the wheel, and this package over it.
OPENCV_VENV = ("opencv-venv", ("opencv-python", "-e", str(ROOT)))


class Xvfb:
    """An X server on a free display, unix socket only; ``.env`` has its DISPLAY."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    @staticmethod
    def missing() -> str | None:
        if shutil.which("Xvfb"):
            return None
        return "Xvfb is not installed (Debian: apt-get install xvfb)"

    def __enter__(self) -> Xvfb:
        read, write = os.pipe()
        try:
            command = ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp"]
            self.proc = subprocess.Popen(
                [*command, "-screen", "0", "800x600x24"],
                pass_fds=(write,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(write)
        try:
            number = _read_line(read, 30)
        finally:
            os.close(read)
        if not number.isdigit():
            self.__exit__()
            raise RuntimeError("Xvfb did not start within 30 s")
        self.env = {**os.environ, "DISPLAY": f":{number}"}
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _read_line(fd: int, timeout: float) -> str:
    """Xvfb writes its display number, then a newline, once it accepts clients; the
    pipe must stay open until both came (a failed write of the newline kills it)."""
    text = b""
    while not text.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        chunk = os.read(fd, 64) if ready else b""
        if not chunk:
            break
        text += chunk
    return text.decode().strip()
