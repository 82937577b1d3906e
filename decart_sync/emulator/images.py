"""Reference images as the service receives them: base64 text to model-size RGB."""

from __future__ import annotations

import base64
import binascii
import io

import av
import numpy as np

# Larger uploads are refused rather than decoded.
MAX_IMAGE_BYTES = 32 * 1024 * 1024


class ImageError(ValueError):
    """The image could not be read; the text goes back in ``set_image_ack.error``."""


def decode_image(data: str, width: int, height: int) -> np.ndarray:
    """Base64 (a ``data:`` URL prefix is tolerated) to ``height x width x 3`` uint8 RGB."""
    if not isinstance(data, str) or not data.strip():
        raise ImageError("image_data must be base64 text or null")
    text = data.strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=_altchars(text))
    except (binascii.Error, ValueError):
        raise ImageError("image_data is not valid base64") from None
    if not raw:
        raise ImageError("image_data is empty")
    if len(raw) > MAX_IMAGE_BYTES:
        raise ImageError(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        with av.open(io.BytesIO(raw)) as container:
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24", width=width, height=height)
    except (av.FFmpegError, ValueError, IndexError, StopIteration) as exc:
        raise ImageError(f"could not decode the image: {exc}") from None
    raise ImageError("could not decode the image: no picture in it")


def grey(width: int, height: int, level: int = 128) -> np.ndarray:
    return np.full((height, width, 3), level, np.uint8)


def _altchars(text: str) -> bytes | None:
    # URL-safe base64 (the Python SDK's habit for tokens) decodes too.
    return b"-_" if ("-" in text or "_" in text) else None
