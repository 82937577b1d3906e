"""``--preview``: input and output side by side in an OpenCV window (OpenCV is optional)."""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from ..models import ModelDefinition
from ..realtime.tracks import SCALER_THREADS

WINDOW = "decart-sync: input | output (q to stop)"
INSTALL = "--preview needs OpenCV, which is not installed: pip install opencv-python"


def load_cv2() -> Any:
    """The cv2 module, or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


class Preview:
    def __init__(self, cv2: Any, model: ModelDefinition) -> None:
        self._cv2 = cv2
        self._model = model
        self._blank = np.zeros((model.height, model.width, 3), np.uint8)

    def show(self, source: Any, output: np.ndarray) -> bool:
        """Draw one pair (rgb24 output); False once the person asked to stop."""
        left = self._bgr(source)
        self._cv2.imshow(WINDOW, np.hstack([left, np.ascontiguousarray(output[..., ::-1])]))
        return self._cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def _bgr(self, source: Any) -> np.ndarray:
        """The newest input (an av frame, or an rgb24/grey array) at the model's size."""
        width, height = self._model.width, self._model.height
        if isinstance(source, av.VideoFrame):
            return source.to_ndarray(
                format="bgr24", width=width, height=height, threads=SCALER_THREADS
            )
        if isinstance(source, np.ndarray) and source.ndim in (2, 3):
            bgr = (
                self._cv2.cvtColor(source, self._cv2.COLOR_GRAY2BGR)
                if source.ndim == 2
                else (np.ascontiguousarray(source[..., ::-1]))
            )
            return self._cv2.resize(bgr, (width, height))
        return self._blank

    def close(self) -> None:
        self._cv2.destroyWindow(WINDOW)
        self._cv2.waitKey(1)
