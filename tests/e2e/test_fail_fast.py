"""The media stack failing during connect ends connect() with the cause, not a bare timeout.

A local fault (our own media stack raising, e.g. a broken install) fails at once, even
with the default timeout: no retry fixes it. Anything else fails each attempt at once,
is retried while the timeout lasts, and the last one's reason is raised; only a
permanent error (decided when it was made, never from a URL) stops the reconnects."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator

import pytest
from aiortc.rtcdtlstransport import RTCCertificate
from helpers import KEY, close_to, invert, pattern, repeat, wait_for_frame, wait_until

import decart_sync
from decart_sync import DecartSDKError, ModelDefinition
from decart_sync.emulator import Emulator

pytestmark = pytest.mark.timeout(90)

# What an older pyOpenSSL first on sys.path made aiortc's DTLS handshake raise.
CAUSE = "cert must be an X509 instance"


def _connect_fails_fast(**options: object) -> DecartSDKError:
    # Attempts at 0 and 1 s fail at once; the next pause (2 s) would outlast the timeout.
    started = time.monotonic()
    with pytest.raises(DecartSDKError) as info:
        decart_sync.connect(repeat(pattern()), api_key=KEY, timeout=2.5, **options)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"connect() took {elapsed:.1f} s to fail: {info.value}"
    return info.value


def _local_fault_fails_at_once(**options: object) -> DecartSDKError:
    # With the default timeout (30 s) a retried fault would take 1+2+4+8+10 s.
    started = time.monotonic()
    with pytest.raises(DecartSDKError) as info:
        decart_sync.connect(repeat(pattern()), api_key=KEY, **options)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"connect() took {elapsed:.1f} s to fail: {info.value}"
    assert info.value.permanent  # no retry fixes a broken install
    return info.value


def test_a_dtls_failure_ends_connect_at_once_naming_it(remote_emulator, monkeypatch) -> None:
    # The emulator is another process: only this client's DTLS handshake breaks.
    def broken(self: RTCCertificate, srtp_profiles: object) -> object:
        raise TypeError(CAUSE)

    monkeypatch.setattr(RTCCertificate, "_create_ssl_context", broken)
    small = ModelDefinition("test-small", fps=25, width=320, height=192)
    error = _local_fault_fails_at_once(model=small, base_url=remote_emulator)
    assert error.code == "WEBRTC_ICE_ERROR"
    assert f"TypeError: {CAUSE}" in error.message
    assert isinstance(error.__cause__, TypeError) and str(error.__cause__) == CAUSE


def test_a_livekit_local_fault_ends_connect_at_once_naming_it(monkeypatch) -> None:
    from livekit import rtc

    async def broken(self: object, url: str, token: str, options: object = None) -> None:
        raise TypeError(CAUSE)

    monkeypatch.setattr(rtc.Room, "connect", broken)
    model = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
    with Emulator(models={model.name: model}) as emulator:
        error = _local_fault_fails_at_once(model=model, base_url=emulator.url)
    assert error.code == "WEBRTC_ICE_ERROR"
    assert f"TypeError: {CAUSE}" in error.message


def test_a_livekit_room_failure_is_retried_and_named(monkeypatch) -> None:
    from livekit import rtc
    calls = []

    async def broken(self: object, url: str, token: str, options: object = None) -> None:
        calls.append(url)
        raise rtc.ConnectError("engine: signal failure")

    monkeypatch.setattr(rtc.Room, "connect", broken)
    model = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
    with Emulator(models={model.name: model}) as emulator:
        error = _connect_fails_fast(model=model, base_url=emulator.url)
    assert error.code == "WEBRTC_ICE_ERROR"
    assert "ConnectError: engine: signal failure" in error.message
    assert isinstance(error.__cause__, rtc.ConnectError)
    assert not error.permanent and len(calls) == 2  # tried again after 1 s: a network may heal


@pytest.fixture
def reconnect_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="decart_sync.realtime")
    yield caplog


def test_a_url_holding_401_does_not_stop_the_reconnects(reconnect_log) -> None:
    # The model's name is in the URL, and the URL in every signaling error: "cam-401".
    model = ModelDefinition("cam-401", fps=25, width=320, height=192)
    emulator = Emulator(models={model.name: model}).start()
    port = emulator.port
    frame_in = pattern(model)
    states: queue.Queue[str] = queue.Queue()
    client = decart_sync.connect(
        repeat(frame_in), model=model, api_key=KEY, base_url=emulator.url, timeout=20
    )
    try:
        client.on("connection_change", states.put)
        frames = client.frames(timeout=20)
        client.set_prompt("invert")
        wait_for_frame(frames, close_to(invert(frame_in)))
        emulator.close()  # the service goes away: reconnect attempts are refused
        wait_until(
            lambda: "reconnect attempt 1 failed" in reconnect_log.text, 10, "a refused attempt"
        )
        assert "cam-401" in reconnect_log.text  # the refusal did say "401"
        emulator = Emulator(port=port, models={model.name: model}).start()
        wait_until(client.is_connected, 20, "the session back")
        seen = []
        while not states.empty():
            seen.append(states.get())
        assert "reconnecting" in seen and "disconnected" not in seen, seen
        assert client.stats["reconnects"] == 1
        wait_for_frame(frames, close_to(invert(frame_in)))  # the latest prompt replayed
    finally:
        client.close()
        emulator.close()
