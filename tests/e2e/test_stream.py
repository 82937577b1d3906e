"""Frames through the emulator over real WebRTC: shapes, transforms, passthrough."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    SMALL,
    close_to,
    grayscale,
    invert,
    mean_error,
    pattern,
    repeat,
    wait_for_frame,
)

from decart_sync import models

pytestmark = pytest.mark.timeout(90)


def test_initial_prompt_frames_have_model_shape(connect) -> None:
    frame_in = pattern()
    client = connect(repeat(frame_in), initial_state={"prompt": {"text": "invert"}})
    assert client.is_connected()
    assert client.session_id
    frames = client.frames(timeout=10)
    out = next(frames)
    assert out.shape == (SMALL.height, SMALL.width, 3)
    assert out.dtype == np.uint8
    # The initial prompt applies from the first frames on.
    wait_for_frame(frames, close_to(invert(frame_in)))


def test_set_prompt_changes_the_transform(connect) -> None:
    frame_in = pattern()
    client = connect(None)
    client.send_frame(frame_in)
    frames = client.frames(timeout=10)
    wait_for_frame(frames, close_to(frame_in))  # passthrough: no initial state
    client.set_prompt("invert")
    wait_for_frame(frames, close_to(invert(frame_in)))
    client.set_prompt("grayscale", enhance=False)
    wait_for_frame(frames, close_to(grayscale(frame_in)))
    # Tints derive from the text: two prompts, two different colours.
    client.set_prompt("a watercolor painting")
    first = wait_for_frame(frames, lambda f: mean_error(f, frame_in) > 20)
    client.set_prompt("cyberpunk neon")
    wait_for_frame(frames, lambda f: mean_error(f, first) > 10)


def test_reference_image_is_blended_in(connect, tmp_path) -> None:
    frame_in = pattern()
    reference = np.zeros_like(frame_in)
    reference[:, :, 2] = 255  # pure blue
    path = tmp_path / "blue.png"
    from decart_sync.realtime.images import encode_png

    path.write_bytes(encode_png(reference))
    client = connect(None)
    client.send_frame(frame_in)
    frames = client.frames(timeout=10)
    client.set_image(str(path))
    expected = ((frame_in.astype(np.uint16) + reference) // 2).astype(np.uint8)
    wait_for_frame(frames, close_to(expected))
    client.set_image(None)  # clearing brings the plain passthrough back
    wait_for_frame(frames, close_to(frame_in))


@pytest.mark.timeout(120)
def test_full_size_mirage(connect) -> None:
    model = models.realtime.mirage()
    frame_in = pattern(model)
    client = connect(None, model=model, initial_state={"prompt": {"text": "invert"}})
    client.send_frame(frame_in)
    out = wait_for_frame(client.frames(timeout=15), close_to(invert(frame_in)), timeout=30)
    assert out.shape == (704, 1280, 3)
