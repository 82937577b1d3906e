"""Pure logic: the colour description of a client's pictures (emulator/colour.py).

The conversion is checked against the matrices' own arithmetic, done here in
floats from the BT.709 and BT.601 definitions; tests/e2e/test_browser.py checks
what Chromium sees come back.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from decart_sync.emulator import colour, media


def planes(y: int, cb: int, cr: int, width: int = 64, height: int = 48) -> np.ndarray:
    flat = np.empty((height * 3 // 2, width), np.uint8)
    flat[:height] = y
    flat[height : height + height // 4] = cb
    flat[height + height // 4 :] = cr
    return flat


def bt709_full(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = (v / 255 for v in rgb)
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return round(255 * y), round(128 + 255 * (b - y) / 1.8556), round(128 + 255 * (r - y) / 1.5748)


def bt601_limited_rgb(y: int, cb: int, cr: int) -> np.ndarray:
    ey, pb, pr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
    r, b = ey + 1.402 * pr, ey + 1.772 * pb
    g = (ey - 0.299 * r - 0.114 * b) / 0.587
    return np.array([r, g, b]) * 255


@pytest.mark.parametrize("rgb", [(40, 160, 90), (200, 60, 40), (230, 230, 230), (60, 90, 220)])
def test_bt709_full_range_becomes_bt601_limited_within_a_level(rgb: tuple[int, int, int]) -> None:
    out = colour.to_default(planes(*bt709_full(rgb)), 1, True)
    y, cb, cr = int(out[0, 0]), int(out[48, 0]), int(out[-1, -1])
    assert np.abs(bt601_limited_rgb(y, cb, cr) - rgb).max() <= 2.0
    assert (out[:48] == y).all()  # flat stays flat


def test_a_frame_says_its_description_and_a_default_one_says_nothing() -> None:
    frame = av.VideoFrame.from_ndarray(planes(129, 107, 71), format="yuv420p")
    assert colour.description(frame) is None  # untagged: BT.601 limited is assumed
    frame.colorspace, frame.color_range = 1, colour.FULL
    assert colour.description(frame) == (1, True)
    frame.colorspace, frame.color_range = 5, colour.LIMITED
    assert colour.description(frame) is None


def test_passthrough_and_transforms_read_the_description() -> None:
    rgb = (40, 160, 90)
    frame = av.VideoFrame.from_ndarray(planes(*bt709_full(rgb)), format="yuv420p")
    frame.colorspace, frame.color_range = 1, colour.FULL
    for prompt in (None, "grayscale"):
        out = media.camera_planes(frame, 64, 48, prompt, None)
        seen = av.VideoFrame.from_ndarray(out, format="yuv420p").to_ndarray(format="rgb24")
        expected = rgb if prompt is None else (round(0.299 * 40 + 0.587 * 160 + 0.114 * 90),) * 3
        assert np.abs(seen[24, 32].astype(int) - expected).max() <= 3, (prompt, seen[24, 32])


def test_the_answer_takes_the_offers_extension_and_packets_say_the_description() -> None:
    offer = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=extmap:8 " + colour.URI + "\r\n"
    answer = "v=0\r\nm=audio 9 X 111\r\na=mid:a\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"
    edited = colour.answer_with_colour(offer, answer).splitlines()
    assert edited.count(f"a=extmap:8 {colour.URI}") == 1
    assert edited.index(f"a=extmap:8 {colour.URI}") == edited.index("a=mid:0") + 1
    assert colour.answer_with_colour("m=video 9 X 96\r\n", answer) == answer
    watch = colour.Watch.of(offer)
    assert watch is not None and watch.ext_id == 8
    watch.record({8: bytes([1, 1, 1, colour.FULL << 4])})  # BT.709 all through, full range
    assert (watch.matrix, watch.range) == (1, colour.FULL)
    watch.record({3: b"\x00\x01"})  # a packet without it changes nothing
    assert (watch.matrix, watch.range) == (1, colour.FULL)
