"""Bad input gets the right code, a usable message, and the session survives it."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from helpers import KEY, SMALL, close_to, invert, pattern, wait_for_frame

import decart_sync
from decart_sync import DecartSDKError, models
from decart_sync._portal import Deadline
from decart_sync.emulator import Emulator

pytestmark = pytest.mark.timeout(90)


def code_of(call, *args, **kwargs) -> str:
    with pytest.raises(DecartSDKError) as info:
        call(*args, **kwargs)
    assert info.value.message  # a person can act on it
    return info.value.code


def test_unknown_model() -> None:
    assert code_of(models.realtime, "no-such-model") == "MODEL_NOT_FOUND"
    assert code_of(decart_sync.connect, None, model="no-such-model", api_key=KEY) == (
        "MODEL_NOT_FOUND"
    )


def test_model_the_server_does_not_know(emulator) -> None:
    unknown = decart_sync.ModelDefinition("not-served", fps=25, width=320, height=192)
    code = code_of(
        decart_sync.connect, None, model=unknown, api_key=KEY, base_url=emulator.url, timeout=10
    )
    assert code == "MODEL_NOT_FOUND"  # the server's "Unknown model" has the local check's code


def test_missing_api_key(monkeypatch, emulator) -> None:
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    code = code_of(decart_sync.connect, None, model=SMALL, base_url=emulator.url)
    assert code == "INVALID_API_KEY"


def test_rejected_api_key() -> None:
    with Emulator(api_keys={"the-right-key"}, models={SMALL.name: SMALL}) as emu:
        start = time.monotonic()
        code = code_of(
            decart_sync.connect, None, model=SMALL, api_key="wrong", base_url=emu.url, timeout=20
        )
        assert code == "INVALID_API_KEY"
        assert time.monotonic() - start < 10  # aborted at once, not at the timeout


def test_unreachable_server_fails_within_the_timeout() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    code = code_of(
        decart_sync.connect,
        None,
        model=SMALL,
        api_key=KEY,
        base_url=f"ws://127.0.0.1:{port}",
        timeout=3,
    )
    assert code in ("WEBRTC_WEBSOCKET_ERROR", "WEBRTC_TIMEOUT_ERROR")
    assert time.monotonic() - start < 5


def test_bad_options() -> None:
    assert code_of(decart_sync.connect, None, model=SMALL, api_key=KEY, base_url="ftp://x") == (
        "INVALID_BASE_URL"
    )
    assert code_of(decart_sync.connect, None, model=SMALL, api_key=KEY, pixel_format="yuv") == (
        "INVALID_OPTIONS"
    )
    assert code_of(decart_sync.connect, None, api_key=KEY) == "INVALID_OPTIONS"
    assert code_of(decart_sync.ModelDefinition, "x", width=0) == "INVALID_OPTIONS"
    assert (
        code_of(
            decart_sync.connect,
            None,
            model=SMALL,
            api_key=KEY,
            initial_state={"prompt": {"text": "  "}},
        )
        == "INVALID_INPUT"
    )


def test_bad_input_leaves_the_session_usable(connect, tmp_path) -> None:
    frame_in = pattern()
    client = connect(None)
    client.send_frame(frame_in)
    assert code_of(client.set_prompt, "") == "INVALID_INPUT"
    assert code_of(client.set_prompt, "   ") == "INVALID_INPUT"
    assert code_of(client.set_prompt, "x" * 1001) == "INVALID_INPUT"
    assert code_of(client.set) == "INVALID_INPUT"
    assert code_of(client.send_frame, frame_in.astype(np.float32)) == "INVALID_INPUT"
    assert code_of(client.send_frame, frame_in[..., :2]) == "INVALID_INPUT"
    assert code_of(client.send_frame, np.zeros((0, 10, 3), np.uint8)) == "INVALID_INPUT"
    assert code_of(client.send_frame, [[1, 2, 3]]) == "INVALID_INPUT"
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    assert code_of(client.set_image, str(not_an_image)) == "INVALID_INPUT"
    assert code_of(client.set_image, tmp_path / "missing.png") == "INVALID_INPUT"
    assert code_of(client.set_image, "ftp://example.invalid/a.png") == "INVALID_INPUT"
    assert code_of(client.play_audio, b"") == "INVALID_OPTIONS"  # not a live_avatar client
    # None of that reached the server or broke the session.
    client.set_prompt("invert")
    wait_for_frame(client.frames(timeout=10), close_to(invert(frame_in)))


def test_server_rejection_of_a_prompt_is_reported(connect, emulator) -> None:
    client = connect(None)
    # The emulator refuses prompts that are not text; bypass our own check to see the ack path.
    with pytest.raises(DecartSDKError) as info:
        client._call(Deadline(10), "the prompt", client._session.set_prompt, None, True)
    assert info.value.code == "WEBRTC_SERVER_ERROR"
    client.set_prompt("still fine")
