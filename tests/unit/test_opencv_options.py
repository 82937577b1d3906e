"""decart_sync.VideoCapture's checks before any session: OpenCV missing, options in conflict."""

from __future__ import annotations

import sys

import pytest
from helpers import SMALL


def test_video_capture_without_opencv_says_what_to_install(monkeypatch) -> None:
    import decart_sync

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    with pytest.raises(decart_sync.InvalidInputError, match="pip install opencv-python") as info:
        decart_sync.VideoCapture(0, model=SMALL, api_key="k", base_url="ws://127.0.0.1:9")
    assert info.value.code == "INVALID_INPUT"
    with pytest.raises(decart_sync.InvalidOptionsError) as options:
        decart_sync.VideoCapture(
            None, model=SMALL, prompt="a", initial_state={"prompt": {"text": "b"}}
        )
    assert options.value.code == "INVALID_OPTIONS"
