"""The emulator's batch models without a server: the form's rules and the picture's arithmetic."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from decart_sync.emulator import batch_media, transforms
from decart_sync.emulator.accounts import StoreError
from decart_sync.emulator.batch import parse
from decart_sync.models import IMAGE_MODELS, VIDEO_MODELS

IMAGE = IMAGE_MODELS["lucy-image-2"]
VIDEO = VIDEO_MODELS["lucy-2.1"]
RESTYLE = VIDEO_MODELS["lucy-restyle-2"]


def picture(rgb: np.ndarray) -> bytes:
    return batch_media.png(rgb)


def decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.mark.parametrize(
    ("model", "fields", "match"),
    [
        (IMAGE, {"prompt": b"p"}, "data is required"),
        (IMAGE, {"data": b"x"}, "prompt is required"),
        (IMAGE, {"data": b"x", "prompt": b""}, "must not be empty"),
        (IMAGE, {"data": b"x", "prompt": b"p" * 1001}, "Prompt is too long"),
        (IMAGE, {"data": b"x", "prompt": b"p", "seed": b"seven"}, "seed must be an integer"),
        (IMAGE, {"data": b"x", "prompt": b"p", "resolution": b"1080p"}, "resolution"),
        (IMAGE, {"data": b"x", "prompt": b"p", "enhance_prompt": b"maybe"}, "true or false"),
        (RESTYLE, {"data": b"x"}, "either 'prompt' or 'reference_image'"),
        (RESTYLE, {"data": b"x", "reference_image": b"y", "enhance_prompt": b"true"}, "only"),
    ],
)
def test_the_forms_rules(model, fields: dict, match: str) -> None:
    with pytest.raises(StoreError, match=match) as caught:
        parse(model, fields)
    assert caught.value.status == 422


def test_what_the_wire_carries_is_read_as_the_sdks_send_it() -> None:
    # decart 0.2.4 sends str(True) ("True"); the JS SDK String(true) ("true").
    request = parse(IMAGE, {"data": b"x", "prompt": b"p", "seed": b"42", "enhance_prompt": b"True"})
    assert (request.seed, request.enhance_prompt, request.resolution) == (42, True, None)
    empty = parse(VIDEO, {"data": b"x", "prompt": b""})
    assert empty.prompt is None  # a video model's empty prompt: the frames as they are


def test_a_picture_gets_the_realtime_models_arithmetic_exactly() -> None:
    ys, xs = np.mgrid[0:30, 0:50]
    rgb = np.stack([xs * 5, ys * 8, (xs + ys) * 3], axis=-1).astype(np.uint8)
    reference = np.full((10, 10, 3), 200, np.uint8)
    out = decode(batch_media.edit_picture(picture(rgb), "sepia", picture(reference)))
    expected = transforms.apply(rgb, "sepia", np.full((30, 50, 3), 200, np.uint8))
    assert out.shape == (30, 50, 3)
    assert np.array_equal(out, expected)


def test_media_that_is_not_media_is_refused() -> None:
    with pytest.raises(StoreError, match="could not be decoded as a picture"):
        batch_media.edit_picture(b"garbage", "invert", None)
    with pytest.raises(StoreError, match="data is not a video"):
        batch_media.probe_video(picture(np.zeros((4, 4, 3), np.uint8)))
