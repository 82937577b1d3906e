"""The processes a benchmark runs: the emulator, and one worker per client and run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from decart_sync import models
from decart_sync.models import ModelDefinition

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("decart_sync", "bare_aiortc", "official_sdk")
LIVEKIT_VARIANTS = ("decart_sync", "bare_livekit", "official_livekit")
TRANSPORTS = ("webrtc", "livekit")
# Worker command per (transport, variant); the LiveKit clients are all named one model.
WORKERS = {
    ("webrtc", "decart_sync"): ["benchmarks.worker_sync"],
    ("webrtc", "bare_aiortc"): ["benchmarks.worker_bare"],
    ("webrtc", "official_sdk"): ["benchmarks.worker_official"],
    ("livekit", "decart_sync"): ["benchmarks.worker_sync", "--transport", "livekit"],
    ("livekit", "bare_livekit"): ["benchmarks.worker_bare_livekit"],
    ("livekit", "official_livekit"): ["benchmarks.worker_official_livekit"],
}
LIVEKIT_MODEL = "bench-livekit"  # served by the emulator at --livekit-* size and fps


class Emulator:
    """The emulator in its own process, its CPU not the client's, serving ``extra_models``
    besides the registry's."""

    def __init__(self, *extra_models: ModelDefinition, faults: Sequence[str] = ()) -> None:
        self.cmd = [sys.executable, "-m", "decart_sync.emulator", "--port", "0"]
        for model in extra_models:
            self.cmd += ["--model", models.spec(model)]
        for fault in faults:
            self.cmd += ["--fault", fault]

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"ws://[\d.]+:\d+", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"the emulator did not start: {line!r}")
        return match.group(0)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_worker(cmd: list[str], timeout: float) -> dict | None:
    """A worker's ``RESULT`` line, or None (and why, printed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        print(f"  timed out: {' '.join(cmd[:3])}")
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    print(f"  failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return None


def livekit_model(width: int, height: int, fps: float) -> ModelDefinition:
    """The custom model both LiveKit clients are named."""
    return ModelDefinition(LIVEKIT_MODEL, fps=fps, width=width, height=height, transport="livekit")


def machine() -> str:
    import platform

    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
