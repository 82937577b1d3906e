"""The ROS node's image conversions, on the fake rclpy's messages (tests/support/fake_rclpy.py)."""

from __future__ import annotations

import fake_rclpy
import numpy as np
import pytest
from helpers import pattern

from decart_sync.ros import images


def test_images_conversion() -> None:
    rgb = pattern()
    h, w = rgb.shape[:2]
    padded = np.zeros((h, w * 3 + 8), np.uint8)
    padded[:, : w * 3] = rgb[..., ::-1].reshape(h, -1)
    msg = fake_rclpy.Image(height=h, width=w, encoding="bgr8", step=w * 3 + 8)
    msg.data = padded.tobytes()
    assert np.array_equal(images.to_array(msg, "rgb8"), rgb)
    assert np.array_equal(images.to_array(msg, "bgr8"), rgb[..., ::-1])
    mono = fake_rclpy.Image(height=2, width=3, encoding="mono8", step=4)
    mono.data = bytes(range(8))
    assert images.to_array(mono).tolist() == [[0, 1, 2], [4, 5, 6]]
    with pytest.raises(images.UnsupportedEncoding):
        images.to_array(fake_rclpy.Image(height=1, width=1, encoding="yuv422", step=2))
    out = images.fill(fake_rclpy.Image(), rgb, "rgb8", msg.header)
    assert (out.step, bytes(out.data)) == (w * 3, rgb.tobytes())
