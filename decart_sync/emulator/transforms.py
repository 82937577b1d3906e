"""The emulator's stand-in for a model: exact, vectorised per-frame arithmetic.

Pure numpy, no I/O: the package docstring is the specification, this module is
its implementation, and ``tests/unit/test_emulator_transforms.py`` checks it bit for bit.
Integer arithmetic throughout (products need up to 18 bits, so uint32 where
weights are involved, uint16 for sums of two bytes), so results are exact and
the same on every machine.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Weights in thousandths: BT.601 luma and the classic sepia matrix (rows: R', G', B').
_LUMA = (299, 587, 114)
_SEPIA = ((393, 769, 189), (349, 686, 168), (272, 534, 131))


def apply(rgb: np.ndarray, prompt: str | None, image: np.ndarray | None) -> np.ndarray:
    """The output frame for one input frame (``HxWx3`` uint8 RGB in, the same out)."""
    out = styled(rgb, prompt)
    if image is not None:
        out = blend(out, image)
    return out


def styled(rgb: np.ndarray, prompt: str | None) -> np.ndarray:
    if prompt is None:
        return rgb
    text = prompt.lower()
    if "invert" in text:
        return 255 - rgb
    if "grayscale" in text or "greyscale" in text:
        return grayscale(rgb)
    if "sepia" in text:
        return sepia(rgb)
    return blend(rgb, tint_color(prompt))


def grayscale(rgb: np.ndarray) -> np.ndarray:
    """Y = round(0.299 R + 0.587 G + 0.114 B), halves rounded up, in all three channels."""
    y = _weighted(rgb, _LUMA)
    return np.repeat(y[..., None], 3, axis=-1)


def sepia(rgb: np.ndarray) -> np.ndarray:
    """Each channel a rounded (halves up) weighted sum of R, G, B, clipped to 255."""
    return np.stack([_weighted(rgb, row) for row in _SEPIA], axis=-1)


def tint_color(prompt: str) -> np.ndarray:
    """The first three bytes of sha256(prompt as UTF-8), as an RGB colour."""
    return np.frombuffer(hashlib.sha256(prompt.encode("utf-8")).digest()[:3], np.uint8)


def blend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a + b) // 2, per channel; ``b`` may be a full frame or one colour."""
    total = np.add(a, b, dtype=np.uint16)
    total >>= 1
    return total.astype(np.uint8)


def brightness(rms: float) -> float:
    """The avatar's gain for an audio level: 0.25 when silent, 1.0 from rms 0.25 up."""
    return 0.25 + 0.75 * min(1.0, 4.0 * max(0.0, rms))


def gain_steps(gain: float) -> int:
    """A gain in 1/256 steps: the unit `scaled()` works in."""
    return round(min(1.0, max(0.0, gain)) * 256)


def scaled(rgb: np.ndarray, steps: int) -> np.ndarray:
    """rgb * steps / 256, rounded to nearest (halves up)."""
    return ((rgb.astype(np.uint16) * steps + 128) >> 8).astype(np.uint8)


def _weighted(rgb: np.ndarray, weights: tuple[int, int, int]) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    total = (r * weights[0] + g * weights[1] + b * weights[2] + 500) // 1000
    return np.minimum(total, 255).astype(np.uint8)
