"""Numpy frames to JPEG for the notebook's live view (an ``ipywidgets.Image`` shows JPEG)."""

from __future__ import annotations

import fractions
from typing import Any

import av
import numpy as np

from ..realtime.tracks import SCALER_THREADS


class Jpeg:
    """Numpy frames to JPEG bytes with av's mjpeg encoder, one context per frame size."""

    def __init__(self, pixel_format: str) -> None:
        self._pixel_format = pixel_format
        self._codec: Any = None
        self._pts = 0

    def encode(self, frame: np.ndarray) -> bytes:
        height, width = frame.shape[:2]
        if self._codec is None or (self._codec.width, self._codec.height) != (width, height):
            self._codec = av.CodecContext.create("mjpeg", "w")
            self._codec.width, self._codec.height = width, height
            self._codec.pix_fmt = "yuvj420p"
            self._codec.time_base = fractions.Fraction(1, 25)
        picture = av.VideoFrame.from_ndarray(frame, format=self._pixel_format).reformat(
            format="yuvj420p", threads=SCALER_THREADS
        )
        picture.pts = self._pts  # the encoder refuses frames without one
        self._pts += 1
        return b"".join(bytes(packet) for packet in self._codec.encode(picture))
