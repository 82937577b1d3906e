"""The main job: decart-sync stream records a restyled video (embedded emulator)."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys

import av
import numpy as np
import pytest

import decart_sync
from decart_sync import cli, models
from decart_sync._version import __version__
from decart_sync.sources import synthetic

pytestmark = pytest.mark.timeout(120)


def test_stream_writes_the_restyled_video(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    out = tmp_path / "out.mp4"
    code = cli.main(
        [
            "stream",
            "--source",
            "synthetic",
            "--model",
            "lucy-restyle",
            "--prompt",
            "invert",
            "--seconds",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().err  # like ffmpeg: what it says goes to stderr
    assert "embedded emulator" in printed
    model = models.realtime("lucy-restyle")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (model.width, model.height)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) >= 25  # 3 s at 25 fps, minus start-up
    # The synthetic source's green channel is a vertical ramp from 0: inverted, the top is white.
    top_green = float(np.median(decoded[-1][4:20, :, 1]))
    assert top_green > 230


def test_stream_reports_bad_options(capsys) -> None:
    assert cli.main(["stream", "--model", "no-such-model", "--seconds", "1"]) == 1
    assert "MODEL_NOT_FOUND" in capsys.readouterr().err


def test_stream_without_the_emulator_extra_says_what_to_install(tmp_path) -> None:
    # A plain `pip install .` has no websockets: the embedded emulator cannot start.
    script = (
        "import sys\n"
        "sys.modules['websockets'] = None  # as if it were not installed\n"
        "from decart_sync import cli\n"
        "sys.exit(cli.main(['stream', '--seconds', '1', '--out', sys.argv[1]]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DECART_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "out.mp4")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1
    assert "pip install 'decart-sync[emulator]'" in done.stderr
    assert "Traceback" not in done.stderr


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line a subprocess prints, within ``timeout`` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"nothing printed within {timeout} s")
    return proc.stdout.readline()


def test_the_emulator_subcommand_takes_the_emulators_options(small) -> None:
    command = [sys.executable, "-m", "decart_sync.cli", "emulator", "--port", "0", "--rest-port",
               "0", "--model", "test-small:25:320x192", "--api-key", "cli-key"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first_line(proc, 30)
        match = re.search(r"serving at (ws://127\.0\.0\.1:\d+)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = match[1]
        source = synthetic(small)
        with decart_sync.connect(
            source, model=small, api_key="cli-key", base_url=url, reconnect=False
        ) as client:
            ok, frame = client.read(timeout=10)
            assert ok and frame is not None and frame.shape == (small.height, small.width, 3)
            # Its subcommands too: this session dropped through `decart-sync emulator drop`.
            dropped = subprocess.run(
                [sys.executable, "-m", "decart_sync.cli", "emulator", "drop", "--url", url],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert dropped.returncode == 0, dropped.stderr
            assert "dropped 1 session(s)" in dropped.stdout
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0  # SIGTERM closes it as Ctrl-C does


def test_the_emulator_subcommand_refuses_what_the_emulator_refuses(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["emulator", "--port", "not-a-port"])
    assert exited.value.code == 2
    assert "decart-sync emulator: error: argument --port" in capsys.readouterr().err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"decart-sync {__version__}"


@pytest.mark.parametrize("command", [[], ["stream"], ["doctor"], ["emulator"]])
def test_help_reads_as_plain_text(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: decart-sync")
    for markup in ("``", ":func:", ":class:", ":mod:", ":meth:", ":data:"):
        assert markup not in shown, (markup, shown)
