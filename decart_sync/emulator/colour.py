"""The colour description of a client's pictures, kept through the emulator.

YUV values mean nothing without their description: the matrix (BT.601, BT.709 ...)
and the range (limited, 16-235, or full, 0-255). VP8 has no room for it and
H.264 may leave it out, so libwebrtc sends it beside the media, in the
color-space RTP header extension (webrtc's ``experiments/rtp-hdrext/color-space``:
primaries, transfer, matrix as in ITU-T H.273, then ``range << 4 | chroma
siting``), on the last packet of each key frame. Chromium's canvas capture
sends BT.709 full range; read as BT.601 limited, what a receiver assumes
without the extension, flat (40, 160, 90) came back as (42, 186, 86).

The emulator asks for the extension in its answers (`answer_with_colour()`),
keeps the last description each connection sent (`Watch`), tags the decoded
frames of its tracks with it (`tag()`: PyAV's conversions to RGB then read
them right), and converts what it passes through to the description its own
output has, BT.601 limited (it sends no extension): `to_default()`.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

URI = "http://www.webrtc.org/experiments/rtp-hdrext/color-space"
# H.273 matrix coefficients (FFmpeg's AVColorSpace has the same numbers) -> (Kr, Kb).
MATRICES = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 9: (0.2627, 0.0593)}
DEFAULT_MATRIX = 6  # SMPTE 170M: BT.601, what receivers assume of VP8 and H.264
LIMITED, FULL = 1, 2  # the extension's range ids, FFmpeg's AVColorRange too

_watches: weakref.WeakKeyDictionary[Any, Watch] = weakref.WeakKeyDictionary()


def answer_with_colour(offer: str, answer: str) -> str:
    """``answer`` accepting the extension in each video m-section whose offer has it (one
    id across a bundle, as the offer gave it)."""
    ext_id = extension_id(offer)
    if ext_id is None:
        return answer
    line = f"a=extmap:{ext_id} {URI}"
    out: list[str] = []
    video = False
    for text in answer.splitlines():
        if text.startswith("m="):
            video = text.startswith("m=video") and text.split()[1] != "0"
        out.append(text)
        if video and text.startswith("a=mid:"):
            out.append(line)
    return "\r\n".join(out) + "\r\n"


class Watch:
    """The last colour description a connection's packets carried: (matrix, range)."""

    @classmethod
    def of(cls, offer: str) -> Watch | None:
        """A watch for the extension ``offer`` announces; None if it has none."""
        ext_id = extension_id(offer)
        return None if ext_id is None else cls(ext_id)

    def __init__(self, ext_id: int) -> None:
        self.ext_id = ext_id
        self.matrix: int | None = None
        self.range: int | None = None

    def record(self, found: dict[int, bytes]) -> None:
        """``found``: one RTP packet's header extensions by id."""
        value = found.get(self.ext_id)
        if value is not None and len(value) >= 4:
            self.matrix = value[2] if value[2] in MATRICES else None
            self.range = value[3] >> 4 if value[3] >> 4 in (LIMITED, FULL) else None


def extension_id(offer: str) -> int | None:
    found = re.search(rf"^a=extmap:(\d+)(?:/\w+)? {re.escape(URI)}\s*$", offer, re.M)
    return int(found.group(1)) if found else None


def follow(track: Any, watch: Watch) -> None:
    """``track``'s frames take ``watch``'s description (`tag()`)."""
    _watches[track] = watch


def tag(track: Any, frame: Any) -> None:
    """Give a decoded ``frame`` of ``track`` the description its sender announced."""
    watch = _watches.get(track)
    if watch is None:
        return
    if watch.matrix is not None:
        frame.colorspace = watch.matrix
    if watch.range is not None:
        frame.color_range = watch.range


def description(frame: Any) -> tuple[int, bool] | None:
    """A decoded frame's (matrix, full range), None when it is BT.601 limited or says
    nothing else."""
    matrix = frame.colorspace if frame.colorspace in MATRICES else DEFAULT_MATRIX
    full = frame.color_range == FULL
    if MATRICES[matrix] == MATRICES[DEFAULT_MATRIX] and not full:
        return None
    return matrix, full


def install(transport: Any, watch: Watch, parse: Callable[[bytes], dict[int, bytes]]) -> None:
    """Record the descriptions arriving on ``transport`` (aiortc's RTCDtlsTransport, its
    private ``_handle_rtp_data``: aiortc keeps no extension it does not know)."""
    receive = transport._handle_rtp_data

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        if len(data) > 1 and not 192 <= data[1] <= 223:  # RTP, not RTCP (RFC 5761)
            watch.record(parse(data))
        await receive(data, arrival_time_ms)

    transport._handle_rtp_data = handle_rtp_data


def to_default(planes: np.ndarray, matrix: int, full: bool) -> np.ndarray:
    """yuv420p planes (``(H * 3 / 2) x W``) of ``matrix`` and range as BT.601 limited,
    exactly (one linear map in floats, rounded once): swscale's own conversion between
    YUV descriptions is up to 3 levels off."""
    height = planes.shape[0] * 2 // 3
    width = planes.shape[1]
    y = planes[:height].astype(np.float32)
    chroma = planes[height:].reshape(2, height // 2, width // 2).astype(np.float32)
    offset, luma_scale, chroma_scale = (0.0, 255.0, 255.0) if full else (16.0, 219.0, 224.0)
    mix = _mix(matrix)
    ey = (y - offset) / luma_scale
    pb, pr = (chroma - 128.0) / chroma_scale
    up = np.ones((2, 2), np.float32)
    out_y = mix[0, 0] * ey + np.kron(mix[0, 1] * pb + mix[0, 2] * pr, up)
    mean_y = ey.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    out_pb = mix[1, 0] * mean_y + mix[1, 1] * pb + mix[1, 2] * pr
    out_pr = mix[2, 0] * mean_y + mix[2, 1] * pb + mix[2, 2] * pr
    out = np.empty_like(planes)
    out[:height] = np.clip(np.rint(16.0 + 219.0 * out_y), 0, 255)
    out[height:] = np.clip(np.rint(128.0 + 224.0 * np.stack([out_pb, out_pr])), 0, 255).reshape(
        height // 2, width
    )
    return out


def _mix(matrix: int) -> np.ndarray:
    """(E'Y, E'Pb, E'Pr) of ``matrix`` -> the same of BT.601."""
    return _to_ypbpr(*MATRICES[DEFAULT_MATRIX]) @ np.linalg.inv(_to_ypbpr(*MATRICES[matrix]))


def _to_ypbpr(kr: float, kb: float) -> np.ndarray:
    kg = 1.0 - kr - kb
    return np.array(
        [
            [kr, kg, kb],
            [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
            [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
        ]
    )
