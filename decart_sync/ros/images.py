"""``sensor_msgs/Image`` <-> numpy, over the message buffer (no cv_bridge).

Works on any object with the message's fields (ROS 1 ``bytes`` data and ROS 2
``array.array('B')`` data alike): ``height``, ``width``, ``encoding``, ``step``,
``data``, ``header``. Rows may be padded (``step`` > ``width * channels``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: encoding -> (channels, order of the channels as an index into RGB, or None for mono)
INPUT_ENCODINGS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
    "8UC1": (1, None),
    "8UC3": (3, (2, 1, 0)),  # OpenCV's default channel order
}
OUTPUT_ENCODINGS = ("rgb8", "bgr8")
#: the library's pixel_format that gives an output encoding without a copy
PIXEL_FORMATS = {"rgb8": "rgb24", "bgr8": "bgr24"}


class UnsupportedEncoding(ValueError):
    """The image's encoding is not one this node converts."""


def to_array(msg: Any, order: str = "rgb8") -> np.ndarray:
    """The image as ``HxW`` (mono) or ``HxWx3`` uint8 in ``order`` (``rgb8``/``bgr8``).

    A view of the message's buffer where no reordering is needed.
    """
    encoding = str(msg.encoding)
    try:
        channels, rgb = INPUT_ENCODINGS[encoding]
    except KeyError:
        raise UnsupportedEncoding(
            f"image encoding {encoding!r} is not supported; use one of {', '.join(INPUT_ENCODINGS)}"
        ) from None
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row = width * channels
    if height <= 0 or width <= 0 or step < row:
        raise ValueError(f"bad image geometry: {width}x{height}, step {step}, {encoding}")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < height * step - (step - row):
        raise ValueError(
            f"image data is {buffer.size} bytes; {width}x{height} {encoding} needs more"
        )
    if buffer.size < height * step:  # the last row's padding may be missing
        buffer = np.concatenate([buffer, np.zeros(height * step - buffer.size, np.uint8)])
    rows = buffer[: height * step].reshape(height, step)[:, :row]
    if rgb is None:
        return rows
    pixels = rows.reshape(height, width, channels)
    wanted = rgb if order == "rgb8" else rgb[::-1]
    if channels == 3 and wanted == (0, 1, 2):
        return pixels
    if channels == 3 and wanted == (2, 1, 0):
        return pixels[..., ::-1]
    return pixels[..., list(wanted)]


def fill(msg: Any, frame: np.ndarray, encoding: str, header: Any) -> Any:
    """Fill an Image message from an ``HxWx3`` frame already in ``encoding``'s order."""
    if encoding not in OUTPUT_ENCODINGS:
        raise UnsupportedEncoding(f"output encoding must be one of {OUTPUT_ENCODINGS}")
    height, width = frame.shape[:2]
    if header is not None:
        msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * 3
    msg.data = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
    return msg
