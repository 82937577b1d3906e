"""Whether an error is permanent is decided when it is made, never by searching its text."""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
from collections.abc import Iterator

import pytest
from aiortc import RTCPeerConnection

from decart_sync import errors
from decart_sync.realtime import messages
from decart_sync.realtime.acks import Acks
from decart_sync.realtime.signaling import Signaling
from decart_sync.realtime.transports import webrtc


@pytest.mark.parametrize(
    "text",
    [
        "Invalid API key",
        "401 Unauthorized",
        "HTTP 401",
        "unauthorised",
        "Permission denied for this model",
        "streaming is not allowed on this plan",
        "Invalid session",
    ],
)
def test_server_words_that_are_permanent(text: str) -> None:
    error = errors.server_error(text)
    assert error.permanent and errors.is_permanent(error) and errors.is_permanent(text)


@pytest.mark.parametrize(
    "text",
    ["server overloaded", "error 14010", "retry on port 4010", "x401y", "session 4015 busy"],
)
def test_server_words_that_are_not(text: str) -> None:
    error = errors.server_error(text)
    assert error.code == "WEBRTC_SERVER_ERROR"
    assert not error.permanent and not errors.is_permanent(error)


def test_bad_key_gets_its_code_and_other_refusals_keep_theirs() -> None:
    assert errors.server_error("401 Unauthorized").code == "INVALID_API_KEY"
    unknown = errors.server_error("Unknown model: lucy-9")
    assert unknown.code == "MODEL_NOT_FOUND" and unknown.permanent
    denied = errors.server_error("Permission denied")
    assert denied.code == "WEBRTC_SERVER_ERROR" and denied.permanent


def test_permanence_by_class_and_our_wording_never_counts() -> None:
    for cls in (
        errors.InvalidAPIKeyError,
        errors.InvalidBaseURLError,
        errors.InvalidInputError,
        errors.InvalidOptionsError,
        errors.ModelNotFoundError,
    ):
        assert cls("x").permanent
    # Our own texts hold URLs, ports and model names: none of them decides anything.
    url = "ws://127.0.0.1:14010/v1/stream?model=cam-401&api_key=***"
    for cls in (errors.WebSocketError, errors.ICEError, errors.TimeoutError_, errors.ServerError):
        assert not errors.is_permanent(cls(f"could not open {url}: 401 Unauthorized"))
    assert not errors.is_permanent(ValueError("401"))  # not ours: no verdict, so retried


def test_permanence_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(errors.ServerError("Permission denied", permanent=True)))
    assert error.permanent and error.code == "WEBRTC_SERVER_ERROR"
    assert not pickle.loads(pickle.dumps(errors.ServerError("busy"))).permanent


def test_a_signaling_error_whose_url_says_401_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v1/stream?model=cam-401&api_key=secret"
    error = asyncio.run(_open(url))
    assert error.code == "WEBRTC_WEBSOCKET_ERROR" and "cam-401" in error.message
    assert not error.permanent


@pytest.fixture
def http_401() -> Iterator[int]:
    """A server that answers every WebSocket handshake with HTTP 401."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    thread.join(5)


def test_a_handshake_refused_with_401_is_a_bad_key(http_401: int) -> None:
    error = asyncio.run(_open(f"ws://127.0.0.1:{http_401}/v1/stream?api_key=sekrit-key"))
    assert error.code == "INVALID_API_KEY" and error.permanent
    assert "sekrit-key" not in error.message  # the key stays out of messages


async def _open(url: str) -> errors.DecartSDKError:
    signaling = Signaling(url, on_message=lambda m: None, on_closed=lambda e: None)
    try:
        await signaling.open(5.0)
    except errors.DecartSDKError as exc:
        return exc
    finally:
        await asyncio.to_thread(signaling.close)
    raise AssertionError("the WebSocket opened")


def test_a_rejected_prompt_is_judged_by_the_servers_reason_alone() -> None:
    async def reject(prompt: str, reason: str) -> errors.DecartSDKError:
        acks = Acks()
        request = messages.prompt(prompt, True)
        fut = acks.expect(request)
        acks.settle({"type": "prompt_ack", "prompt": prompt, "success": False, "error": reason})
        with pytest.raises(errors.DecartSDKError) as info:
            await fut
        return info.value

    assert not asyncio.run(reject("room 401 in sepia", "content policy")).permanent
    assert asyncio.run(reject("sepia", "not allowed on this plan")).permanent


def test_aiortcs_connect_task_is_still_where_we_hook_it() -> None:
    # If aiortc renames it, media-stack failures during connect would wait out the timeout.
    assert callable(getattr(RTCPeerConnection, webrtc.CONNECT_TASK, None))
