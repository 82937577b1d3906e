"""The emulator's transforms, checked bit for bit against an independent, exact (Fraction)
statement of the spec; its level meter and image decoding too. No session runs here."""

from __future__ import annotations

import base64
import fractions
import math

import numpy as np
import pytest
from av import AudioFrame
from raw_client import gradient, png_base64

from decart_sync.emulator import transforms
from decart_sync.emulator.images import ImageError, decode_image
from decart_sync.emulator.media import LevelMeter

pytestmark = pytest.mark.timeout(60)


# -- transforms: exact arithmetic -----------------------------------------------


def _round_half_up(value: fractions.Fraction) -> int:
    return math.floor(value + fractions.Fraction(1, 2))


def _exact(weights: tuple[str, str, str], pixel: np.ndarray) -> int:
    terms = (fractions.Fraction(w) * int(c) for w, c in zip(weights, pixel, strict=True))
    total = sum(terms, fractions.Fraction(0))
    return min(255, _round_half_up(total))


RANDOM = np.random.default_rng(7).integers(0, 256, (9, 11, 3), dtype=np.uint8)


def test_passthrough_and_invert() -> None:
    assert np.array_equal(transforms.apply(RANDOM, None, None), RANDOM)
    assert np.array_equal(transforms.apply(RANDOM, "please INVERT it", None), 255 - RANDOM)


def test_grayscale_is_rounded_bt601_luma() -> None:
    out = transforms.apply(RANDOM, "Greyscale", None)
    assert out.dtype == np.uint8 and out.shape == RANDOM.shape
    for pixel, got in zip(RANDOM.reshape(-1, 3), out.reshape(-1, 3), strict=True):
        y = _exact(("0.299", "0.587", "0.114"), pixel)
        assert got.tolist() == [y, y, y]
    assert np.array_equal(transforms.apply(RANDOM, "grayscale", None), out)
    white = np.full((1, 1, 3), 255, np.uint8)
    assert transforms.apply(white, "grayscale", None).tolist() == [[[255, 255, 255]]]


def test_sepia_matrix_is_rounded_and_clipped() -> None:
    rows = (
        ("0.393", "0.769", "0.189"),
        ("0.349", "0.686", "0.168"),
        ("0.272", "0.534", "0.131"),
    )
    out = transforms.apply(RANDOM, "a Sepia photo", None)
    for pixel, got in zip(RANDOM.reshape(-1, 3), out.reshape(-1, 3), strict=True):
        assert got.tolist() == [_exact(row, pixel) for row in rows]
    white = np.full((1, 1, 3), 255, np.uint8)
    assert transforms.apply(white, "sepia", None).tolist() == [[[255, 255, 239]]]


def test_keyword_order() -> None:
    assert np.array_equal(transforms.apply(RANDOM, "sepia then invert", None), 255 - RANDOM)
    grey = transforms.apply(RANDOM, "grayscale", None)
    assert np.array_equal(transforms.apply(RANDOM, "sepia greyscale", None), grey)


def test_tint_is_the_prompt_hash() -> None:
    # sha256("hello") = 2cf24dba...: the tint is (0x2c, 0xf2, 0x4d).
    x = np.array([[[100, 101, 0]]], np.uint8)
    assert transforms.apply(x, "hello", None).tolist() == [[[72, 171, 38]]]
    # Case matters for the hash (keywords aside): two prompts, two tints.
    assert not np.array_equal(
        transforms.apply(RANDOM, "Hello", None), transforms.apply(RANDOM, "hello", None)
    )


def test_reference_image_is_averaged_in_last() -> None:
    image = np.random.default_rng(3).integers(0, 256, RANDOM.shape, dtype=np.uint8)
    expected = ((255 - RANDOM.astype(np.uint16)) + image) // 2
    assert np.array_equal(transforms.apply(RANDOM, "invert", image), expected)
    plain = (RANDOM.astype(np.uint16) + image) // 2
    assert np.array_equal(transforms.apply(RANDOM, None, image), plain)


def test_avatar_gain() -> None:
    assert transforms.brightness(0.0) == 0.25
    assert transforms.brightness(0.125) == pytest.approx(0.625)
    assert transforms.brightness(0.3) == 1.0
    assert transforms.gain_steps(0.25) == 64
    image = np.full((2, 2, 3), 200, np.uint8)
    assert transforms.scaled(image, 64).tolist() == np.full((2, 2, 3), 50).tolist()
    assert np.array_equal(transforms.scaled(RANDOM, 256), RANDOM)


def test_level_meter_uses_the_last_40_ms() -> None:
    now = [0.0]
    meter = LevelMeter(clock=lambda: now[0])
    assert meter.rms() == 0.0

    def chunk(value: int) -> AudioFrame:
        samples = np.full((1, 960 * 2), value, np.int16)  # 20 ms of s16 stereo at 48 kHz
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = 48000
        return frame

    meter.feed(chunk(16384))
    assert meter.rms() == pytest.approx(0.5)
    meter.feed(chunk(0))
    assert meter.rms() == pytest.approx(math.sqrt(0.125))
    meter.feed(chunk(0))  # the loud chunk is now older than 40 ms
    assert meter.rms() == 0.0
    meter.feed(chunk(-8192))
    now[0] = 1.0  # nothing received for a second: silence
    assert meter.rms() == 0.0


def test_decode_image() -> None:
    rgb = gradient(32, 16)
    assert np.array_equal(decode_image(png_base64(rgb), 32, 16), rgb)
    assert decode_image("data:image/png;base64," + png_base64(rgb), 8, 4).shape == (4, 8, 3)
    for bad in ("", "!!!", base64.b64encode(b"not an image").decode()):
        with pytest.raises(ImageError):
            decode_image(bad, 32, 16)
