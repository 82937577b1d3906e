"""A service that drops, stalls, refuses and misbehaves: the client copes."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import KEY, SMALL, close_to, invert, pattern, repeat, wait_for_frame, wait_until

import decart_sync
from decart_sync import DecartSDKError
from decart_sync.emulator import Emulator, Faults

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def faults(emulator: Emulator) -> Iterator[Faults]:
    """The shared emulator's fault plan, set back to a well-behaved service afterwards."""
    emulator.faults = Faults()
    yield emulator.faults
    emulator.faults = Faults()


def _until(states: queue.Queue[str], wanted: tuple[str, ...], timeout: float = 20) -> list[str]:
    seen: list[str] = []
    while not seen or seen[-1] not in wanted:
        seen.append(states.get(timeout=timeout))
    return seen


@pytest.mark.parametrize("how", ["signaling", "peer"])
def test_transient_drop_reconnects_quietly(connect, emulator, how) -> None:
    frame_in = pattern()
    states: queue.Queue[str] = queue.Queue()
    errors: list[DecartSDKError] = []
    client = connect(repeat(frame_in), initial_state={"prompt": {"text": "invert"}})
    client.on("connection_change", states.put)
    client.on("error", errors.append)
    frames = client.frames(timeout=20)
    wait_for_frame(frames, close_to(invert(frame_in)))
    _until(states, ("generating",))  # the events held during connect, and the start
    assert emulator.drop_sessions(how) == 1
    seen = _until(states, ("connected", "generating"))
    assert seen[0] == "reconnecting" and "disconnected" not in seen
    wait_for_frame(frames, close_to(invert(frame_in)))  # the same iterator goes on
    assert client.stats["reconnects"] == 1
    assert errors == []


def test_permanent_error_ends_everything_at_once(connect, emulator, faults) -> None:
    errors: queue.Queue[DecartSDKError] = queue.Queue()
    client = connect(repeat(pattern()))
    client.on("error", errors.put)
    frames = client.frames(timeout=20)
    next(frames)
    session = emulator.wait_for_session(session_id=client.session_id)
    faults.ack_delay = 60.0  # a prompt in flight when the error comes
    failed: queue.Queue[BaseException] = queue.Queue()

    def set_prompt() -> None:
        try:
            client.set_prompt("sepia", timeout=60)
        except BaseException as exc:
            failed.put(exc)

    caller = threading.Thread(target=set_prompt)
    caller.start()
    assert session.wait(lambda: any(m.get("prompt") == "sepia" for m in session.messages))
    started = time.monotonic()
    emulator.send({"type": "error", "error": "Invalid API key"}, session_id=client.session_id)
    in_flight = failed.get(timeout=5)
    assert time.monotonic() - started < 5  # at once, not at its 60 s timeout
    assert isinstance(in_flight, DecartSDKError) and in_flight.code == "INVALID_API_KEY"
    error = errors.get(timeout=5)
    assert error.code == "INVALID_API_KEY"
    with pytest.raises(DecartSDKError) as raised:
        for _ in frames:
            pass
    assert raised.value.code == "INVALID_API_KEY"
    assert client.state == "disconnected"
    with pytest.raises(TimeoutError):  # no retry: no new session reaches the service
        emulator.wait_for_session(timeout=2.5)
    assert errors.empty()  # exactly one error event
    caller.join(5)


def test_non_permanent_server_error_is_reported_and_streaming_goes_on(connect, emulator) -> None:
    errors: queue.Queue[DecartSDKError] = queue.Queue()
    frame_in = pattern()
    client = connect(repeat(frame_in))
    client.on("error", errors.put)
    emulator.send({"type": "error", "error": "Insufficient credits"})
    assert errors.get(timeout=5).code == "WEBRTC_SERVER_ERROR"
    client.set_prompt("invert")
    wait_for_frame(client.frames(timeout=10), close_to(invert(frame_in)))
    assert client.is_connected()


def test_unacknowledged_prompt_times_out_and_the_session_survives(connect, faults) -> None:
    frame_in = pattern()
    client = connect(repeat(frame_in))
    faults.ack_delay = 30.0
    started = time.monotonic()
    with pytest.raises(DecartSDKError) as info:
        client.set_prompt("invert", timeout=1.0)
    assert info.value.code == "WEBRTC_TIMEOUT_ERROR"
    assert 0.9 < time.monotonic() - started < 3
    faults.ack_delay = 0.0
    client.set_prompt("grayscale")
    assert client.is_connected()


def test_rejected_prompt_and_rejected_initial_prompt(connect, faults) -> None:
    client = connect(None)
    faults.reject_prompts = "prompt violates the content policy"
    with pytest.raises(DecartSDKError) as info:
        client.set_prompt("anything")
    assert info.value.code == "WEBRTC_SERVER_ERROR"
    assert "content policy" in info.value.message
    started = time.monotonic()
    with pytest.raises(DecartSDKError) as info:  # a failed initial ack aborts connect at once:
        connect(None, initial_state={"prompt": {"text": "anything"}}, timeout=20)
    assert "content policy" in info.value.message
    assert time.monotonic() - started < 5  # the same prompt is not tried again


@pytest.mark.parametrize("fault", ["no_answer", "silent"])
def test_connect_to_a_stalled_service_fails_at_its_timeout(connect, faults, fault) -> None:
    setattr(faults, fault, True)
    started = time.monotonic()
    with pytest.raises(DecartSDKError) as info:
        connect(None, timeout=2.0)
    assert info.value.code == "WEBRTC_TIMEOUT_ERROR"
    assert 1.9 < time.monotonic() - started < 4


def test_an_answer_that_does_not_fit_the_offer_fails_connect_at_once(
    connect, emulator, faults
) -> None:
    faults.no_answer = True  # the test answers instead, with SDP that fits no offer
    before = len(emulator.history)

    def answer_badly() -> None:
        for _ in range(2):  # the first attempt and its retry (each a session not yet seen)
            session = emulator.wait_for_session(predicate=lambda s: s in emulator.history[before:])
            session.wait_message("offer")
            emulator.send(
                {"type": "answer", "sdp": "v=0\r\ns=-\r\n"}, session_id=session.session_id
            )

    threading.Thread(target=answer_badly, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(DecartSDKError) as info:
        connect(None, timeout=2.5)  # tries at 0 and 1 s; a pause of 2 s more would not fit
    assert info.value.code == "WEBRTC_SIGNALING_ERROR"
    assert "answer" in info.value.message
    assert time.monotonic() - started < 2.5  # the cause, not the connect timeout
    assert len(emulator.history) == before + 2


def test_media_stall_is_visible(connect, faults) -> None:
    client = connect(repeat(pattern()))
    assert client.read(timeout=10)[0]
    faults.freeze_media = True
    started = time.monotonic()
    while client.read(timeout=1.0)[0]:  # frames already in flight may still arrive
        assert time.monotonic() - started < 10
    assert client.stats["seconds_since_last_frame"] >= 0.9
    faults.freeze_media = False
    assert client.read(timeout=10)[0]


HOSTILE = [
    "not json at all",
    "[1, 2, 3]",
    '{"no_type": true}',
    '{"type": 42}',
    {"type": "mystery_message", "payload": 1},
    {"type": "prompt_ack"},
    {"type": "prompt_ack", "prompt": ["x"], "success": "yes"},
    {"type": "set_image_ack", "success": None},
    {"type": "generation_tick", "seconds": "many"},
    {"type": "generation_tick"},
    {"type": "answer", "sdp": None},
    {"type": "answer", "sdp": "v=0 garbage"},
    {"type": "ice-candidate", "candidate": {"candidate": "garbage"}},
    {"type": "ice-candidate", "candidate": 17},
    {"type": "session_id", "session_id": None},
    {"type": "error"},
    {"type": "generation_ended", "seconds": "x"},
]


def test_hostile_messages_are_logged_once_and_ignored(connect, emulator, caplog) -> None:
    frame_in = pattern()
    errors: list[DecartSDKError] = []
    client = connect(repeat(frame_in))
    client.on("error", errors.append)
    session_id = client.session_id
    caplog.set_level(logging.WARNING, logger="decart_sync")
    for _ in range(2):  # twice: the second round must not log again
        for message in HOSTILE:
            assert emulator.send(message) == 1
    emulator.send({"type": "ready"})
    # A server error fails the requests waiting for an ack: the prompt goes once the
    # client has read both (a loaded machine's reader thread may lag the emulator's send).
    wait_until(lambda: len(errors) == 2, 10, "both error messages reaching the client")
    client.set_prompt("invert")  # the session still answers, in order after the junk
    wait_for_frame(client.frames(timeout=10), close_to(invert(frame_in)))
    assert client.is_connected() and client.session_id == session_id
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("decart_sync")]
    assert len(warnings) == len(set(warnings)) >= 8
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name.startswith("decart"))
    # {"type": "error"} without text is still the server saying something went wrong.
    assert [e.code for e in errors] == ["WEBRTC_SERVER_ERROR", "WEBRTC_SERVER_ERROR"]


def test_close_is_prompt_in_every_fault_state(connect, emulator, faults) -> None:
    client = connect(repeat(pattern()))
    faults.silent = True
    faults.freeze_media = True
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2.0

    faults.silent = faults.freeze_media = False
    client = connect(None)
    emulator.drop_sessions("signaling")
    started = time.monotonic()
    client.close()  # mid-reconnect
    assert time.monotonic() - started < 2.0
    assert client.state == "disconnected"


def test_close_from_inside_an_event_handler(connect) -> None:
    client = connect(None)
    closed = threading.Event()

    def on_tick(seconds: int) -> None:
        client.close()
        closed.set()

    client.on("generation_tick", on_tick)
    client.send_frame(pattern())
    assert closed.wait(10)
    assert client.state == "disconnected"


def test_wss_verifies_certificates_unless_told_not_to(tls_server, caplog) -> None:
    url = tls_server
    with pytest.raises(DecartSDKError) as info:
        decart_sync.connect(None, model=SMALL, api_key=KEY, base_url=url, timeout=5)
    assert info.value.code == "WEBRTC_WEBSOCKET_ERROR"
    assert "certif" in info.value.message.lower()
    caplog.set_level(logging.WARNING, logger="decart_sync")
    with pytest.raises(DecartSDKError) as info:
        decart_sync.connect(
            None, model=SMALL, api_key=KEY, base_url=url, timeout=5, verify_tls=False
        )
    # TLS let us through: this time it is the server speaking.
    assert info.value.message == "tls handshake passed"
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


@pytest.fixture
def tls_server(tmp_path) -> Iterator[str]:
    """A wss:// server with a self-signed certificate that answers every client with an error."""
    import datetime
    import json
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from websockets.sync.server import serve

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)

    def handler(ws) -> None:
        ws.send(json.dumps({"type": "error", "error": "tls handshake passed"}))

    with serve(handler, "127.0.0.1", 0, ssl=context) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"wss://127.0.0.1:{server.socket.getsockname()[1]}"
        server.shutdown()
        thread.join(5)
