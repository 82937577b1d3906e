"""The image and video models' table and input rules, and client tokens' claims: pure logic."""

from __future__ import annotations

import base64
import io
import json
import warnings

import av
import numpy as np
import pytest

from decart_sync import models
from decart_sync.errors import (
    InvalidInputError,
    InvalidOptionsError,
    ModelNotFoundError,
    TokenDecodeError,
)
from decart_sync.rest import inputs, verify
from decart_sync.rest.inputs import Form

PICTURE = np.full((8, 10, 3), (10, 200, 30), np.uint8)


def small_video(frames: int = 3) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def test_the_official_tables() -> None:
    assert models.image.names() == ["lucy-image-2", "lucy-image-latest", "lucy-pro-i2i"]
    assert "lucy-restyle-v2v" in models.video.names() and "lucy-2.6" in models.video.names()
    image = models.image("lucy-image-2")
    assert (image.url_path, image.fps, image.width, image.height, image.inputs) == (
        "/v1/generate/lucy-image-2", 25, 1280, 704, "image"
    )  # fmt: skip
    restyle = models.video("lucy-restyle-2")
    assert (restyle.url_path, restyle.fps, restyle.height, restyle.inputs) == (
        "/v1/jobs/lucy-restyle-2", 22, 704, "restyle"
    )  # fmt: skip
    assert models.video("lucy-2.1").inputs == "video"
    assert models.realtime("lucy-2.1").inputs is None  # the realtime one is another definition


def test_unknown_names_say_where_to_look() -> None:
    with pytest.raises(ModelNotFoundError, match=r"'lucy-2\.1' is a video model"):
        models.image("lucy-2.1")
    with pytest.raises(ModelNotFoundError, match="video models"):
        models.video("nope")


def test_deprecated_names_warn_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models.image("lucy-pro-i2i")
        models.image("lucy-pro-i2i")
    assert [str(w.message) for w in caught] == [
        "model name 'lucy-pro-i2i' is deprecated; use 'lucy-image-2'"
    ]


def test_a_batch_model_is_no_realtime_session() -> None:
    with pytest.raises(InvalidOptionsError, match="not a realtime one"):
        models.resolve(models.video("lucy-2.1"))


@pytest.mark.parametrize(
    ("model", "given", "match"),
    [
        ("lucy-image-2", {"prompt": "x"}, "needs data"),
        ("lucy-image-2", {"data": b"", "prompt": ""}, "at least one character"),
        ("lucy-image-2", {"data": b"x"}, "needs a prompt"),
        ("lucy-image-2", {"data": b"x", "prompt": "p" * 1001}, "1001 characters"),
        ("lucy-image-2", {"data": b"x", "prompt": 5}, "prompt must be text"),
        ("lucy-image-2", {"data": b"x", "prompt": "p", "strength": 2}, "not strength"),
        ("lucy-image-2", {"data": b"x", "prompt": "p", "seed": "7"}, "seed must be an integer"),
        ("lucy-image-2", {"data": b"x", "prompt": "p", "seed": True}, "seed must be an integer"),
        ("lucy-image-2", {"data": b"x", "prompt": "p", "resolution": 720}, "resolution"),
        ("lucy-image-2", {"data": b"x", "prompt": "p", "enhance_prompt": "no"}, "True or False"),
        ("lucy-2.1", {"data": b"x"}, r"needs a prompt \(''"),
        ("lucy-restyle-2", {"data": b"x"}, "not both and not neither"),
        ("lucy-restyle-2", {"data": b"x", "prompt": "p", "reference_image": b"y"}, "not both"),
        (
            "lucy-restyle-2",
            {"data": b"x", "reference_image": b"y", "enhance_prompt": True},
            "enhance_prompt goes with a prompt",
        ),
    ],
)
def test_input_rules(model: str, given: dict, match: str) -> None:
    definition = models.image(model) if model.startswith("lucy-image") else models.video(model)
    with pytest.raises(InvalidInputError, match=match):
        inputs.check(definition, given)


def test_rules_that_pass() -> None:
    video = models.video("lucy-2.1")
    assert inputs.check(video, {"data": b"x", "prompt": "", "seed": None}) == {
        "data": b"x",
        "prompt": "",
    }
    restyle = models.video("lucy-restyle-2")
    inputs.check(restyle, {"data": b"x", "reference_image": b"y"})
    inputs.check(restyle, {"data": b"x", "prompt": "p", "enhance_prompt": False})


def test_the_form_as_the_wire_has_it(tmp_path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(small_video())
    form = inputs.build(
        models.video("lucy-2.1"),
        {"data": path, "prompt": "anime", "seed": np.int64(7), "enhance_prompt": False},
    )
    assert form.fields == {"prompt": "anime", "seed": "7", "enhance_prompt": "false"}
    [data] = form.files
    assert (data.field, data.filename, data.mime) == ("data", "clip.mp4", "video/mp4")
    image = inputs.build(models.image("lucy-image-2"), {"data": PICTURE, "prompt": "p"})
    [picture] = image.files
    assert (picture.filename, picture.mime) == ("data.png", "image/png")
    assert picture.content.startswith(b"\x89PNG")
    assert isinstance(image, Form) and image.multipart()[0] == ("prompt", "p")


@pytest.mark.parametrize(
    ("model", "data", "match"),
    [
        ("lucy-image-2", b"not a picture", "data is not a picture"),
        ("lucy-image-2", np.zeros((4, 4), np.uint8), r"\(height, width, 3\) uint8"),
        ("lucy-image-2", 3.5, "must be a path, bytes"),
        ("lucy-image-2", "/no/such/file.png", "cannot read data"),
        ("lucy-2.1", b"not a video", "not a video FFmpeg can read"),
        ("lucy-2.1", PICTURE, "not an array"),
        ("lucy-2.1", io.StringIO("text"), "binary mode"),
    ],
)
def test_files_are_checked_before_anything_is_sent(model: str, data: object, match: str) -> None:
    definition = models.image(model) if model.startswith("lucy-image") else models.video(model)
    with pytest.raises(InvalidInputError, match=match):
        inputs.build(definition, {"data": data, "prompt": "p"})


def test_a_still_picture_is_no_video() -> None:
    png = inputs.read_part("data", PICTURE, video=False).content
    with pytest.raises(InvalidInputError, match="still picture"):
        inputs.read_part("data", png, video=True)
    assert inputs.read_part("data", small_video(), video=True).mime == "video/mp4"


def _jwt(payload: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'EdDSA'})}.{part(payload)}.c2ln"


def test_decode_maps_the_claims_as_decart_0_2_4() -> None:
    claims = verify.decode_client_token(
        _jwt(
            {
                "sub": "user-1",
                "exp": 2_000_000_000,
                "organizationId": "org-1",
                "jti": "jti-1",
                "service_tier": "0",
                "models": ["lucy-2.1"],
                "zeroDataRetention": 1,
                "realtimeConcurrentSessionLimit": 2,
            }
        )
    )
    assert claims.user_id == "user-1" and claims.organization_id == "org-1"
    assert claims.api_key_id == "jti-1" and claims.service_tier == 0 and claims.pool == "free"
    assert claims.allowed_models == ["lucy-2.1"] and claims.allowed_origins is None
    assert claims.zero_data_retention is True and claims.realtime_concurrent_session_limit == 2
    assert claims.expires_at.timestamp() == 2_000_000_000 and claims.expires_at.tzinfo
    assert claims.claims["jti"] == "jti-1"


@pytest.mark.parametrize(
    ("payload", "tier"),
    [
        ({"service_tier": 2}, 2),
        ({"service_tier": True}, None),
        ({"service_tier": 7}, None),
        ({"service_tier": " 1 "}, 1),
        ({"priority": True}, 3),
        ({"service_tier": 0, "priority": True}, 0),
    ],
)
def test_service_tier(payload: dict, tier: int | None) -> None:
    assert verify.service_tier(payload) == tier


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "not.base64!.x", _jwt({"exp": 1}), _jwt({"sub": "u"}), _jwt({"sub": 1, "exp": 1})],
)
def test_decode_refuses_what_is_no_client_token(token: str) -> None:
    with pytest.raises(TokenDecodeError) as caught:
        verify.decode_client_token(token)
    assert caught.value.code == "TOKEN_DECODE_ERROR"


def test_the_signature_check_against_rfc_8037() -> None:
    # RFC 8037 appendix A.4: an Ed25519 JWS over a known key (A.2), checked the way
    # verify_client_token checks a token: the key from the JWK's x, the first two parts signed.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    jws = (
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )
    keys = verify.keys_of({"keys": [jwk]})
    assert verify.signature_ok(keys[None], jws)
    assert not verify.signature_ok(keys[None], jws.replace("RXhh", "RXhi"))
