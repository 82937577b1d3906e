"""The main job: decart-sync stream records a restyled video (embedded emulator)."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pytest

from decart_sync import cli, models

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
