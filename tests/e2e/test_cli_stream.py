"""decart-sync stream as a person runs it: a subprocess against the emulator, each source kind
that can be made offline, prompts, Ctrl-C, overwrite refusal, the avatar's audio."""

from __future__ import annotations

import functools
import http.server
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import KEY, SMALL, invert, mean_error, pattern

from decart_sync import models

pytestmark = pytest.mark.timeout(120)

MODEL = models.spec(SMALL)
COLOUR = (0x30, 0x60, 0xA0)
FLAT = f"lavfi:color=c=0x{COLOUR[0]:02x}{COLOUR[1]:02x}{COLOUR[2]:02x}:size=320x192:rate=25"
TOLERANCE = 12.0  # two lossy codecs (VP8 there and back, H264 into the file)


def command(emulator, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "decart_sync.cli",
        "stream",
        "--base-url",
        emulator.url,
        "--api-key",
        KEY,
        *args,
    ]


def run(emulator, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(emulator, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def video_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (SMALL.width, SMALL.height)
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]


def write_clip(path: Path, frame: np.ndarray, seconds: float, codec: str = "libx264") -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
        for i in range(int(seconds * 25)):
            video = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video.pts = i
            container.mux(stream.encode(video))
        container.mux(stream.encode(None))


def flat(colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (SMALL.height, SMALL.width, 3))


def test_a_file_source_is_restyled_to_its_end(emulator, tmp_path) -> None:
    clip, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_clip(clip, pattern(), 2.0)
    done = run(
        emulator, "--source", str(clip), "--model", MODEL, "--prompt", "invert", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    frames = video_of(out)
    assert 25 <= len(frames) <= 2.0 * 25 + 40  # the file's 2 s, then a short tail
    assert mean_error(frames[-1], invert(pattern())) < TOLERANCE
    assert " / 2.0 s" in done.stderr and "fps in" in done.stderr  # status lines, total known
    assert "wrote" in done.stderr


def test_a_lavfi_pattern_with_stats_json(emulator, tmp_path) -> None:
    out, report = tmp_path / "out.mp4", tmp_path / "stats.json"
    out.write_bytes(b"an old file")
    done = run(
        emulator,
        "--source",
        FLAT,
        "--model",
        MODEL,
        "--prompt",
        "invert",
        "--seconds",
        "2.5",
        "--out",
        str(out),
        "-y",
        "--stats-json",
        str(report),
    )
    assert done.returncode == 0, done.stderr
    frames = video_of(out)
    assert 0.5 * 2.5 * 25 <= len(frames) <= 2.5 * 25 + 5
    expected = 255 - np.array(COLOUR)
    assert np.abs(frames[-1].reshape(-1, 3).mean(axis=0) - expected).max() < 8
    figures = json.loads(report.read_text())
    assert figures["frames_written"] == len(frames) and not figures["interrupted"]
    stats = figures["stats"]
    assert stats["fps_out"] > 0 and stats["frames_received"] >= len(frames)
    assert stats["bitrate_in_kbps"] > 0 and stats["connect_seconds"] > 0


def test_the_synthetic_source(emulator, tmp_path) -> None:
    out = tmp_path / "out.mkv"
    done = run(
        emulator, "--model", MODEL, "--prompt", "invert", "--seconds", "2", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    frames = video_of(out)
    assert len(frames) >= 25
    # The synthetic pattern's green channel is a vertical ramp from 0: inverted, the top is white.
    assert float(np.median(frames[-1][2:10, :, 1])) > 220


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path), **{})
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_an_http_stream(emulator, http_root) -> None:
    root, url = http_root
    write_clip(root / "clip.ts", pattern(), 2.0)
    out = root / "out.mp4"
    done = run(
        emulator,
        "--source",
        f"{url}/clip.ts",
        "--model",
        MODEL,
        "--prompt",
        "invert",
        "--seconds",
        "4",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    frames = video_of(out)
    assert len(frames) >= 20
    assert mean_error(frames[-1], invert(pattern())) < TOLERANCE


class Running:
    """A CLI process whose standard error is read line by line as it comes."""

    def __init__(self, args: list[str], **popen: object) -> None:
        self.proc = subprocess.Popen(
            args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, **popen
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """The first line holding ``text``."""
        return self.wait_line(lambda line: text in line, text, timeout)

    def wait_frames(self, count: int, timeout: float = 30) -> str:
        """The first status line that counts at least ``count`` frames written."""

        def enough(line: str) -> bool:
            match = re.search(r" frames (\d+) ", line)
            return match is not None and int(match.group(1)) >= count

        return self.wait_line(enough, f"{count} frames written", timeout)

    def wait_line(self, match: Callable[[str], bool], what: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if match(line):
                return line
        raise AssertionError(f"{what!r} not printed within {timeout} s: {''.join(self.seen)}")

    def finish(self, timeout: float = 30) -> str:
        self.proc.wait(timeout)
        self._reader.join(5)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def test_ctrl_c_still_finishes_the_file(emulator, tmp_path) -> None:
    out = tmp_path / "out.mp4"
    cli = Running(command(emulator, "--source", FLAT, "--model", MODEL, "--out", str(out)))
    cli.wait_for("connected to")
    cli.wait_frames(20)
    cli.proc.send_signal(signal.SIGINT)
    printed = cli.finish()
    assert cli.proc.returncode == 130, printed
    assert "stopped by Ctrl-C" in printed and "Traceback" not in printed
    assert len(video_of(out)) >= 20  # the file is complete: it decodes to the end


def test_prompts_typed_on_stdin(emulator, tmp_path) -> None:
    out = tmp_path / "out.mp4"
    cli = Running(
        command(
            emulator,
            "--source",
            FLAT,
            "--model",
            MODEL,
            "--prompt",
            "none",
            "--seconds",
            "4",
            "--out",
            str(out),
        ),
        stdin=subprocess.PIPE,
    )
    cli.wait_frames(10)
    assert cli.proc.stdin is not None
    cli.proc.stdin.write("invert\n")
    cli.proc.stdin.flush()
    cli.wait_for("prompt 'invert' acknowledged")
    printed = cli.finish()
    assert cli.proc.returncode == 0, printed
    means = np.array([frame.reshape(-1, 3).mean(axis=0) for frame in video_of(out)])
    inverted = np.abs(means - (255 - np.array(COLOUR))).max(axis=1) < 8
    passthrough = np.abs(means - COLOUR).max(axis=1) < 24  # VP8 starts coarse; inverted is far
    assert inverted[-1], means.round()  # inverted at the end
    first = int(np.argmax(inverted))
    assert passthrough[:first].any(), means.round()  # and the colour as it was before


def test_prompts_on_a_timer(emulator, tmp_path) -> None:
    out = tmp_path / "out.mp4"
    done = run(
        emulator,
        "--source",
        FLAT,
        "--model",
        MODEL,
        "--prompts",
        "grayscale",
        "invert",
        "--every",
        "1",
        "--seconds",
        "3.5",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "prompt 'invert' acknowledged" in done.stderr
    assert "prompt 'grayscale' acknowledged" in done.stderr  # cycled back
    means = np.array([frame.reshape(-1, 3).mean(axis=0) for frame in video_of(out)])
    grey = (299 * COLOUR[0] + 587 * COLOUR[1] + 114 * COLOUR[2]) / 1000
    assert (np.abs(means - grey).max(axis=1) < 8).any()
    assert (np.abs(means - (255 - np.array(COLOUR))).max(axis=1) < 8).any()


def test_refusals_say_what_to_do(emulator, tmp_path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    done = run(emulator, "--model", MODEL, "--seconds", "1", "--out", str(out))
    assert done.returncode == 1
    assert "already exists; pass -y to overwrite it" in done.stderr
    assert out.read_bytes() == b"keep me"
    missing = run(
        emulator,
        "--source",
        str(tmp_path / "nope.mp4"),
        "--model",
        MODEL,
        "--out",
        str(tmp_path / "new.mp4"),
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_preview_without_opencv_says_what_to_install(emulator, tmp_path) -> None:
    script = (
        "import sys\n"
        "sys.modules['cv2'] = None  # as if OpenCV were not installed\n"
        "from decart_sync import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    args = command(emulator, "--model", MODEL, "--preview", "--out", str(tmp_path / "o.mp4"))
    done = subprocess.run(
        [sys.executable, "-c", script, *args[3:]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "pip install opencv-python" in done.stderr and "Traceback" not in done.stderr


def test_livekit_transport_passes_through(emulator, tmp_path) -> None:
    out = tmp_path / "out.mp4"
    cli = Running(
        command(emulator, "--source", FLAT, "--model", MODEL, "--prompt", "invert",
                "--transport", "livekit", "--seconds", "2.5", "--out", str(out)),
    )  # fmt: skip
    cli.wait_frames(1)
    assert "livekit" in [s.mode for s in emulator.sessions]
    printed = cli.finish()
    assert cli.proc.returncode == 0, printed
    frames = video_of(out)
    assert np.abs(frames[-1].reshape(-1, 3).mean(axis=0) - (255 - np.array(COLOUR))).max() < 8


def test_live_avatar_audio_goes_into_the_file(emulator, tmp_path) -> None:
    tone, out = tmp_path / "tone.wav", tmp_path / "avatar.mp4"
    rate = 16_000
    t = np.arange(int(rate * 1.5)) / rate
    pcm = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    with av.open(str(tone), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    done = run(emulator, "--model", "live_avatar", "--audio", str(tone), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "s of audio" in done.stderr
    with av.open(str(out)) as container:
        assert container.streams.video and container.streams.audio
        rate_out = container.streams.audio[0].rate
        audio = np.concatenate(
            [f.to_ndarray().reshape(-1) for f in container.decode(container.streams.audio[0])]
        )
    window = rate_out // 2  # the loudest half second: the echoed tone (stereo, interleaved)
    rms = [
        float(np.sqrt(np.mean(audio[i : i + window] ** 2)))
        for i in range(0, max(1, len(audio) - window), window // 2)
    ]
    assert max(rms) > 0.2, f"the returned audio is silent (rms {max(rms):.3f})"
    assert os.path.getsize(out) > 0
