"""decart-sync generate as a person runs it: a subprocess against the emulator's REST port.

A picture and a video through their models into playable files (read back
with av), the overwrite rule, a failed job and a refused input leaving
nothing on disk, Ctrl-C stopping the wait at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import KEY, wait_until

from decart_sync.emulator import Emulator, Faults, transforms
from decart_sync.emulator.batch_media import png

pytestmark = pytest.mark.timeout(120)

COLOUR = (200, 100, 50)


@pytest.fixture(scope="module")
def emu():
    with Emulator(api_keys=KEY) as emu:
        yield emu


@pytest.fixture(autouse=True)
def quick(emu: Emulator) -> None:
    emu.faults = Faults(job_pace=0.05)


def command(emu: Emulator, *args: str) -> list[str]:
    return [sys.executable, "-m", "decart_sync.cli", "generate", "--base-url", emu.rest_url,
            "--api-key", KEY, "--poll-interval", "0.1", *args]  # fmt: skip


def run(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(emu, *args), capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def write_clip(path: Path, frames: int = 5) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), COLOUR, np.uint8), "rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_picture_through_an_image_model(emu: Emulator, tmp_path) -> None:
    ys, xs = np.mgrid[0:24, 0:40]
    rgb = np.stack([xs * 6, ys * 9, xs + ys], axis=-1).astype(np.uint8)
    (tmp_path / "in.png").write_bytes(png(rgb))
    done = run(emu, "--model", "lucy-image-2", "--prompt", "sepia", str(tmp_path / "in.png"),
               "--out", str(tmp_path / "out.png"), "--seed", "1",
               "--no-enhance-prompt")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and "40x24 picture" in done.stderr
    [out] = frames_of(tmp_path / "out.png")
    assert np.array_equal(out, transforms.apply(rgb, "sepia", None))
    converted = run(emu, "--model", "lucy-image-2", "--prompt", "invert",
                    str(tmp_path / "in.png"), "--out", str(tmp_path / "out.jpg"))  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "out.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, as named


def test_a_video_through_a_job_into_a_playable_file(emu: Emulator, tmp_path) -> None:
    source, out = tmp_path / "in.mp4", tmp_path / "out.mkv"
    write_clip(source)
    emu.faults.job_pace = 0.3
    done = run(emu, "--model", "lucy-2.1", "--prompt", "invert", str(source), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "processing" in done.stderr and "completed" in done.stderr  # the live line
    assert "5 frames, 64x48 at 10 fps" in done.stderr
    with av.open(str(out)) as container:
        assert container.format.name.startswith("matroska")  # remuxed to what --out names
    frames = frames_of(out)
    assert len(frames) == 5
    inverted = 255 - np.full((48, 64, 3), COLOUR, np.uint8)
    assert all(np.abs(f.astype(int) - inverted).mean() < 6 for f in frames)
    assert leftovers(tmp_path) == []
    refused = run(emu, "--model", "lucy-2.1", "--prompt", "x", str(source), "--out", str(out))
    assert refused.returncode == 1 and "pass -y" in refused.stderr
    assert len(frames_of(out)) == 5  # untouched
    again = run(emu, "--model", "lucy-2.1", "--prompt", "x", str(source), "--out", str(out), "-y")
    assert again.returncode == 0, again.stderr


def test_failures_leave_nothing_on_disk(emu: Emulator, tmp_path) -> None:
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_clip(source, frames=2)
    emu.faults.fail_jobs = 1
    failed = run(emu, "--model", "lucy-2.1", "--prompt", "", str(source), "--out", str(out))
    assert failed.returncode == 1 and "failed: Job failed" in failed.stderr
    picture = tmp_path / "in.png"
    picture.write_bytes(png(np.zeros((8, 8, 3), np.uint8)))
    still = run(emu, "--model", "lucy-2.1", "--prompt", "x", str(picture), "--out", str(out))
    assert still.returncode == 1 and "INVALID_INPUT" in still.stderr
    unknown = run(emu, "--model", "lucy-9", "--prompt", "x", str(source), "--out", str(out))
    assert unknown.returncode == 1 and "MODEL_NOT_FOUND" in unknown.stderr
    named = run(emu, "--model", "lucy-2.1", "--prompt", "x", str(source), "--out", "out.gif")
    assert named.returncode == 1 and ".mp4" in named.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_ctrl_c_stops_the_wait_at_once(emu: Emulator, tmp_path) -> None:
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_clip(source, frames=2)
    emu.faults.job_pace = 120.0
    jobs = len(emu.batch.jobs)
    proc = subprocess.Popen(
        command(emu, "--model", "lucy-2.1", "--prompt", "x", str(source), "--out", str(out)),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: len(emu.batch.jobs) > jobs, 30, "the job's submission")
        job = emu.batch.jobs[-1]
        wait_until(lambda: job.polls > 0, 30, "the client's first status request")  # it has the id
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 2.0
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert f"job {job.job_id} goes on at the service" in stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_stream_points_files_to_generate() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "decart_sync.cli", "stream", "-h"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "decart-sync generate" in " ".join(done.stdout.split())
