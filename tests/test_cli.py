"""The main job: decart-sync stream records a restyled video (embedded emulator)."""

from __future__ import annotations

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
    printed = capsys.readouterr().out
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
