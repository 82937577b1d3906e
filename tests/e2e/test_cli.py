"""The main job: decart-sync stream records a restyled video (embedded emulator)."""

from __future__ import annotations

import json
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
    # A stream, not a still; how many of 75 a loaded machine makes is the benchmark's to say.
    assert len(decoded) >= 5
    # The synthetic source's green channel is a vertical ramp from 0: inverted, the top is white.
    top_green = float(np.median(decoded[-1][4:20, :, 1]))
    assert top_green > 230


def test_stream_with_no_model_streams_todays_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    out = tmp_path / "out.mp4"
    args = ["stream", "--source", "synthetic", "--prompt", "none", "--seconds", "2"]
    assert cli.main([*args, "--out", str(out)]) == 0
    assert "no --model given: streaming lucy-2.1" in capsys.readouterr().err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1280, 720)
        assert sum(1 for _ in container.decode(stream)) > 0


def test_models_lists_the_table(capsys) -> None:
    assert cli.main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(models.REGISTRY)
    today = models.realtime("lucy-2.1")
    assert rows["lucy-2.1"]["size"] == f"{today.width}x{today.height}"
    assert (rows["lucy-2.1"]["fps"], rows["lucy-2.1"]["transport"]) == (today.fps, "livekit")
    assert rows["lucy-2.5"]["speeds"] == ["fast"]
    assert rows["mirage"]["deprecated_for"] == "lucy-restyle"
    assert rows["mirage"]["transport"] == "webrtc"
    assert cli.main(["models"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["name", "size", "fps", "transport", "speeds", "notes"]
    assert table[1].split()[:4] == ["lucy-2.1", "1280x720", "30", "livekit"]  # today's first
    assert any("deprecated: use lucy-restyle" in line for line in table)


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
