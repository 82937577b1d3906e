"""Reference images: whatever the user has, to the base64 the wire wants.

Accepted: bytes, a file path (str or ``os.PathLike``), a ``data:`` URL, an
``http(s)://`` URL (fetched with requests), a raw base64 string, or a numpy
array (height, width, 3) uint8 in the client's pixel format. Every image is
decoded once with av before it is sent, so a file that is not an image fails
here, with ``INVALID_INPUT``, instead of at the server.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from typing import Any

import av
import numpy as np
import requests

from ..errors import InvalidInputError
from .messages import FILE_REF_PREFIX

MAX_IMAGE_BYTES = 10 * 1024 * 1024
FETCH_TIMEOUT = 10.0
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def to_wire(image: Any, *, pixel_format: str = "rgb24", fetch_timeout: float | None = None) -> str:
    """What a ``set_image`` carries: an uploaded file's ``"file_..."`` id as it is
    (sent as ``image_ref``), any other image as checked base64 (`to_base64()`)."""
    if is_file_ref(image):
        return str(image).strip()
    return to_base64(image, pixel_format=pixel_format, fetch_timeout=fetch_timeout)


def is_file_ref(value: Any) -> bool:
    """A ``"file_..."`` id, as the JS SDK's ``isFileRefId``; but a string naming an
    existing file on this machine is that file (``"file_1.png"`` sends its picture)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text.startswith(FILE_REF_PREFIX) and not os.path.exists(text)


def to_base64(
    image: Any, *, pixel_format: str = "rgb24", fetch_timeout: float | None = None
) -> str:
    """Normalise an image to base64 (no ``data:`` prefix), checking it decodes.

    A URL is fetched within ``fetch_timeout`` seconds (at most ``FETCH_TIMEOUT``).
    """
    timeout = FETCH_TIMEOUT if fetch_timeout is None else min(fetch_timeout, FETCH_TIMEOUT)
    data = _to_bytes(image, pixel_format, timeout)
    if not data:
        raise InvalidInputError("the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInputError(
            f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes. "
            "Resize or recompress it"
        )
    decode(data)
    return base64.b64encode(data).decode("ascii")


def decode(data: bytes) -> av.VideoFrame:
    """The first frame of an encoded image, or INVALID_INPUT."""
    try:
        with av.open(io.BytesIO(data)) as container:
            for frame in container.decode(video=0):
                return frame
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise InvalidInputError(
            f"the image could not be decoded ({exc}); use a PNG, JPEG or WebP file", cause=exc
        ) from None
    raise InvalidInputError("the image holds no picture; use a PNG, JPEG or WebP file")


def _to_bytes(image: Any, pixel_format: str, timeout: float) -> bytes:
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, np.ndarray):
        return encode_png(image, pixel_format)
    if isinstance(image, os.PathLike):
        return _read_file(os.fspath(image))
    if not isinstance(image, str):
        raise InvalidInputError(
            "an image must be bytes, a file path, a data: or http(s) URL, base64 text "
            f"or a numpy array, got {type(image).__name__}"
        )
    text = image.strip()
    if text.startswith("data:"):
        return _from_data_url(text)
    if text.lower().startswith(("http://", "https://")):
        return _fetch(text, timeout)
    if _SCHEME.match(text):
        raise InvalidInputError(
            f"unsupported image URL scheme in {text.split('://')[0]!r}://; use http(s) or data:"
        )
    if os.path.exists(text):
        return _read_file(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{text[:60]!r} is neither an existing file, a URL nor base64 image data"
        ) from None


def encode_png(array: np.ndarray, pixel_format: str = "rgb24") -> bytes:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise InvalidInputError(
            f"an image array must be (height, width, 3) uint8, got {array.shape} {array.dtype}"
        )
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=pixel_format)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    packets = codec.encode(frame.reformat(format="rgb24")) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


def _read_file(path: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > MAX_IMAGE_BYTES:
            raise InvalidInputError(
                f"image file {path!r} is {size} bytes; the limit is {MAX_IMAGE_BYTES} bytes"
            )
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InvalidInputError(f"cannot read image file {path!r}: {exc}", cause=exc) from None


def _from_data_url(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep:
        raise InvalidInputError("a data: URL needs a comma before its payload")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        from urllib.parse import unquote_to_bytes

        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise InvalidInputError("the data: URL's base64 payload is malformed") from None


def _fetch(url: str, timeout: float) -> bytes:
    try:
        with requests.get(url, timeout=timeout, stream=True) as response:
            response.raise_for_status()
            chunks, total = [], 0
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > MAX_IMAGE_BYTES:
                    raise InvalidInputError(
                        f"the image at {url} is over the {MAX_IMAGE_BYTES}-byte limit"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as exc:
        raise InvalidInputError(f"could not fetch the image at {url}: {exc}", cause=exc) from None
