"""End to end: uploaded images used by id, and client tokens.

Real parts: ``DecartClient.files`` / ``.tokens`` over HTTP to the emulator's REST
port, sessions over its stream endpoint on loopback (the plain WebRTC path:
the control WebSocket, where image_ref and the Origin header travel, is the
same for both transports).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest
import requests
from helpers import KEY, SMALL, clients_of, close_to, invert, pattern, repeat, wait_for_frame
from helpers import wait_until as wait_for

from decart_sync import DecartClient, DecartSDKError, ModelDefinition, local, models
from decart_sync.emulator import Emulator
from decart_sync.realtime import session as session_module
from decart_sync.realtime.images import encode_png

pytestmark = pytest.mark.timeout(120)

FRAME = pattern(SMALL)
OTHER = ModelDefinition("test-other", fps=25, width=320, height=192)
LK_SMALL = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(models=[SMALL, OTHER, LK_SMALL]) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def account(emu: Emulator) -> DecartClient:
    return DecartClient(api_key=KEY, base_url=emu.rest_url, realtime_base_url=emu.url)


@pytest.fixture
def connect(emu: Emulator) -> Iterator:
    with clients_of(emu.url, model=SMALL) as connect:
        yield connect


def flat(value: int) -> bytes:
    return encode_png(np.full((48, 64, 3), value, np.uint8))


def mixed(value: int) -> np.ndarray:
    """The emulator's output for FRAME under "invert" with a flat reference image."""
    return ((invert(FRAME).astype(int) + value) // 2).astype(np.uint8)


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every generation_ended message the clients received, as the service sent it."""
    seen: list[dict] = []
    original = session_module.interpret

    def record(message: dict, transport: str) -> object:
        if message.get("type") == "generation_ended":
            seen.append(message)
        return original(message, transport)

    monkeypatch.setattr(session_module, "interpret", record)
    return seen


def refused(call, *args, **kwargs) -> DecartSDKError:
    with pytest.raises(DecartSDKError) as info:
        call(*args, **kwargs)
    return info.value


def test_an_uploaded_image_is_used_by_id(connect, emu: Emulator, account: DecartClient) -> None:
    first = account.files.upload(flat(200), ttl_seconds=600)
    assert first.id.startswith("file_") and first.mime_type == "image/png"
    assert account.files.get(first.id) == first

    # At connect, as the initial state's image: the output is as with the image itself.
    client = connect(repeat(FRAME), initial_state={"prompt": "invert", "image": first.id})
    served = emu.wait_for_session(session_id=client.session_id)
    sent = served.wait_message("set_image")
    assert sent["image_ref"] == first.id and "image_data" not in sent
    frames = client.frames(timeout=10)
    wait_for_frame(frames, close_to(mixed(200)))

    # Mid-session; the prompt stays.
    second = account.files.upload(flat(40))
    client.set_image(second.id)
    wait_for_frame(frames, close_to(mixed(40)))
    assert served.messages[-1] == {"type": "set_image", "image_ref": second.id}

    # A reconnect replays the reference, as any image.
    emu.drop_sessions("both")
    again = emu.wait_for_session(predicate=lambda s: s is not served)
    assert again.wait_message("set_image")["image_ref"] == second.id
    wait_for_frame(client.frames(timeout=10), close_to(mixed(40)), timeout=20)

    # Deleted, the id is refused with a clear error; the session goes on as it was.
    account.files.delete(second.id)
    error = refused(client.set_image, second.id)
    assert error.code == "WEBRTC_SERVER_ERROR" and "File not found" in error.message
    assert client.state in ("connected", "generating")
    wait_for_frame(client.frames(timeout=10), close_to(mixed(40)))

    # ... and a session cannot start with it (at once: permanent, no retries).
    started = time.monotonic()
    error = refused(connect, repeat(FRAME), initial_state={"image": second.id}, reconnect=False)
    assert "File not found" in error.message and error.permanent
    assert time.monotonic() - started < 10


def test_files_api_errors_carry_codes(emu: Emulator, account: DecartClient, tmp_path) -> None:
    assert refused(account.files.upload, flat(1), ttl_seconds=59).code == "INVALID_INPUT"
    assert refused(account.files.upload, flat(1), ttl_seconds="forever").code == "INVALID_INPUT"
    assert refused(account.files.upload, tmp_path / "missing.png").code == "INVALID_INPUT"
    error = refused(account.files.get, "file_nope")
    assert (error.code, error.data) == ("FILES_GET_ERROR", {"status": 404})
    assert refused(account.files.delete, "file_nope").code == "FILES_DELETE_ERROR"

    path = tmp_path / "face.png"
    path.write_bytes(flat(90))
    with path.open("rb") as f:
        by_object = account.files.upload(f, ttl_seconds="persistent")
    assert (by_object.filename, by_object.expires_at, by_object.size_bytes) == (
        "face.png",
        None,
        path.stat().st_size,
    )
    assert account.files.upload(path).filename == "face.png"

    strict = Emulator(api_keys=["right"]).start()
    try:
        wrong = DecartClient(api_key="wrong", base_url=strict.rest_url)
        assert refused(wrong.files.upload, flat(1)).code == "INVALID_API_KEY"
        assert refused(wrong.tokens.create).code == "INVALID_API_KEY"
        closed = strict.rest_url
    finally:
        strict.close()
    gone = DecartClient(api_key="k", base_url=closed).files
    error = refused(gone.upload, flat(1), timeout=5)
    assert error.code == "FILES_UPLOAD_ERROR" and "unreachable" in error.message


def test_a_client_token_is_bound_to_its_model_origin_and_expiry(
    connect, emu: Emulator, account: DecartClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = account.tokens.create(
        allowed_models=[SMALL], allowed_origins=[ORIGIN], expires_in=300, metadata={"who": "t"}
    )
    assert token.api_key.startswith("ek_") and token.api_key not in repr(token)
    assert token.permissions == {"models": [SMALL.name], "origins": [ORIGIN]}

    client = connect(repeat(FRAME), api_key=token.api_key, origin=ORIGIN, reconnect=False)
    served = emu.wait_for_session(session_id=client.session_id)
    assert served.ws.request is not None and served.ws.request.headers["Origin"] == ORIGIN
    wait_for_frame(client.frames(timeout=10), close_to(FRAME))
    client.close()

    no_origin = refused(connect, None, api_key=token.api_key)
    assert no_origin.code == "WEBRTC_SERVER_ERROR" and no_origin.permanent
    assert "Origin (none) is not allowed" in no_origin.message
    other = refused(connect, None, api_key=token.api_key, origin="https://evil.example")
    assert "is not allowed" in other.message and other.permanent
    model = refused(connect, None, model=OTHER, api_key=token.api_key, origin=ORIGIN)
    assert "Model test-other is not allowed" in model.message and model.permanent
    assert refused(connect, None, api_key="ek_unknown").code == "INVALID_API_KEY"
    assert refused(connect, None, origin="https://app.example/").code == "INVALID_OPTIONS"

    brief = account.tokens.create(expires_in=1)
    expires = emu.tokens.get(brief.api_key).expires
    wait_for(lambda: emu.tokens.now() > expires, 5, "the token's expiry")
    expired = refused(connect, None, api_key=brief.api_key)
    assert expired.code == "INVALID_API_KEY" and "expired" in expired.message
    assert token.api_key not in caplog.text and brief.api_key not in caplog.text


def test_a_tokens_max_session_duration_ends_the_session(
    connect, emu: Emulator, account: DecartClient, ended: list[dict]
) -> None:
    token = account.tokens.create(max_session_duration=2)
    assert token.constraints == {"realtime": {"maxSessionDuration": 2}}
    started = time.monotonic()
    client = connect(repeat(FRAME), api_key=token.api_key, reconnect=False)
    served = emu.wait_for_session(session_id=client.session_id)
    wait_for_frame(client.frames(timeout=10), close_to(FRAME))
    assert served.wait(lambda: served.closed, 10), "the session outlived its token's limit"
    assert served.close_reason == "timeout" and time.monotonic() - started >= 2
    # The service's generation_ended {reason: "timeout"} came first; the client, told not
    # to reconnect, is left disconnected.
    wait_for(lambda: client.state == "disconnected", 10, "the client's disconnect")
    assert [m["reason"] for m in ended] == ["timeout"] and ended[0]["seconds"] >= 1


def test_over_livekit_a_token_with_an_origin_and_an_image_by_id(
    connect, emu: Emulator, account: DecartClient
) -> None:
    token = account.tokens.create(
        allowed_models=[LK_SMALL], allowed_origins=[ORIGIN], max_session_duration=4
    )
    # A token bound to a model still uploads (as a page does with it): files have no model.
    ref = DecartClient(api_key=token.api_key, base_url=emu.rest_url).files.upload(flat(200))
    client = connect(
        repeat(FRAME),
        model=LK_SMALL,
        api_key=token.api_key,
        origin=ORIGIN,
        initial_state={"prompt": "invert", "image": ref.id},
    )
    errors: queue.Queue[DecartSDKError] = queue.Queue()
    client.on("error", errors.put)
    served = emu.wait_for_session(session_id=client.session_id)
    assert served.mode == "livekit" and served.messages[1]["image_ref"] == ref.id
    sessions = len(emu.history)
    wait_for_frame(client.frames(timeout=10), close_to(mixed(200)), timeout=20)
    assert served.wait(lambda: served.closed, 15), "the session outlived its token's limit"
    assert served.close_reason == "timeout"
    # LiveKit sessions take generation_ended "timeout" as the end, as the service means it:
    # no reconnect.
    error = errors.get(timeout=10)
    assert error.code == "WEBRTC_TIMEOUT_ERROR" and "time limit" in error.message
    wait_for(lambda: client.state == "disconnected", 10, "the client's disconnect")
    assert len(emu.history) == sessions  # it did not come back


def test_the_clis_image_takes_a_file_id(emu: Emulator, account: DecartClient, tmp_path) -> None:
    ref = account.files.upload(flat(200))
    out = tmp_path / "out.mp4"
    model = models.spec(SMALL)
    done = subprocess.run(
        [sys.executable, "-m", "decart_sync.cli", "stream", "--base-url", emu.url,
         "--api-key", KEY, "--source", "lavfi:color=c=0x306090:size=320x192:rate=25",
         "--model", model, "--prompt", "invert", "--image", ref.id, "--seconds", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    served = next(s for s in reversed(emu.history) if s.model.name == SMALL.name)
    assert served.messages[0]["image_ref"] == ref.id
    with av.open(str(out)) as container:
        last = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][-1]
    expected = (255 - np.array([0x30, 0x60, 0x90]) + 200) // 2
    assert np.abs(last.reshape(-1, 3).mean(axis=0) - expected).max() < 8


def test_local_client_and_the_emulator_cli_hand_out_the_rest_url(monkeypatch) -> None:
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    monkeypatch.delenv("DECART_REALTIME_BASE_URL", raising=False)
    with contextlib.ExitStack() as stack:
        here = local.client(stack)
        assert here.base_url.startswith("http://127.0.0.1:")
        assert here.files.upload(flat(1)).id.startswith("file_")

    command = [sys.executable, "-m", "decart_sync.emulator", "--port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"serving at (ws://\S+), REST API at (http://\S+) ", line)
        assert match, line
        there = DecartClient(api_key=KEY, base_url=match[2], realtime_base_url=match[1])
        assert there.tokens.create(expires_in=5).api_key.startswith("ek_")
    finally:
        proc.terminate()
        proc.wait(10)


def test_browsers_may_call_from_another_origin(emu: Emulator) -> None:
    """What a page's fetch needs (the browser test runs the JS SDK itself): a preflight
    answered, and every answer, errors included, readable from any origin."""
    page = {"Origin": "http://127.0.0.1:9"}
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-api-key"}
    preflight = requests.options(f"{emu.rest_url}/v1/client/tokens", headers={**page, **asked},
                                 timeout=5)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type,x-api-key"
    created = requests.post(f"{emu.rest_url}/v1/client/tokens", json={}, timeout=5,
                            headers={**page, "X-API-KEY": KEY})
    assert created.status_code == 200 and created.json()["token"]
    for answer in (
        created,
        requests.get(f"{emu.rest_url}/v1/files/file_none", headers={**page, "X-API-KEY": KEY},
                     timeout=5),
        requests.get(f"{emu.rest_url}/v1/files/file_none", headers=page, timeout=5),
        requests.put(f"{emu.rest_url}/v1/files", headers=page, timeout=5),
    ):
        assert answer.headers["Access-Control-Allow-Origin"] == "*", answer.status_code
        assert "X-API-KEY" in answer.headers["Access-Control-Allow-Headers"]
    # The realtime port answers a page as a LiveKit server does: its own origin back.
    validate = requests.get(f"{emu.url.replace('ws', 'http', 1)}/rtc/validate", headers=page,
                            timeout=5)
    assert validate.status_code == 401
    assert validate.headers["Access-Control-Allow-Origin"] == page["Origin"]


def test_viewers_credentials_from_the_rest_port(emu: Emulator) -> None:
    """The JS SDK's subscribe() asks its baseUrl; a room's credentials are as on the
    realtime port (tests/e2e/test_browser.py watches with them)."""
    asked = requests.post(f"{emu.rest_url}/watch-stream/room-none", timeout=5,
                          headers={"X-API-KEY": KEY, "Origin": "http://127.0.0.1:9"})
    assert asked.status_code == 404 and "room-none" in asked.json()["detail"]
    assert asked.headers["Access-Control-Allow-Origin"] == "*"
    with clients_of(emu.url, model=LK_SMALL) as connect:
        client = connect(repeat(FRAME))
        room = emu.wait_for_session(session_id=client.session_id).room
        assert room is not None
        refused = requests.post(f"{emu.rest_url}/watch-stream/{room.name}", timeout=5)
        assert refused.status_code == 401
        given = requests.post(f"{emu.rest_url}/watch-stream/{room.name}", timeout=5,
                              headers={"X-API-KEY": KEY}).json()
        assert given["room_name"] == room.name and given["livekit_url"] == emu.url
        assert given["token"] and given["session_id"] == client.session_id
