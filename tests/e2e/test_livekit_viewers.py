"""LiveKit viewers: ``POST /watch-stream/{room}`` and subscribe-only participants.

A decart_sync publisher streams over LiveKit to the emulator; viewers watch its
room with the credentials the emulator's ``/watch-stream`` gives: decart_sync's
``subscribe()`` and the ``livekit`` package joined by hand (to see what a
viewer is offered). Real parts throughout: libwebrtc on the viewers' side,
aiortc in the emulator, loopback sockets. Every test runs on both LiveKit
signaling paths (``/rtc/v1`` and the classic ``/rtc``), checking the one each
participant took.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from helpers import (
    DRIVERS,
    KEY,
    SIGNALING,
    close_to,
    grayscale,
    invert,
    pattern,
    repeat,
    took_its_path,
    wait_for_frame,
    wait_until,
)
from livekit import rtc

import decart_sync
from decart_sync import DecartSDKError, ModelDefinition
from decart_sync.emulator import Emulator
from decart_sync.emulator.livekit import SERVER_IDENTITY_PREFIX, Room
from decart_sync.emulator.session import ServedSession

pytestmark = pytest.mark.timeout(120)

LK_SMALL = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
FRAME = pattern(LK_SMALL)
VIEWER = DRIVERS / "official_livekit_viewer.py"


@pytest.fixture(scope="module", params=list(SIGNALING.values()), ids=list(SIGNALING))
def emu(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    models = {LK_SMALL.name: LK_SMALL}
    with Emulator(api_keys=KEY, models=models, livekit_v1=request.param) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _joins_take_the_emulators_path(emu: Emulator) -> Iterator[None]:
    with took_its_path(emu):
        yield


def _publisher_holds(emu: Emulator) -> dict[str, int]:
    """A room's resources with the publisher alone in it."""
    return {"connections": 1, "peers": 1 if emu.livekit_v1 else 2, "tasks": 0}


@pytest.fixture
def publisher(emu: Emulator) -> Iterator[decart_sync.RealtimeClient]:
    client = decart_sync.connect(
        repeat(FRAME),
        model=LK_SMALL,
        api_key=KEY,
        base_url=emu.url,
        initial_state={"prompt": "invert"},
        timeout=20.0,
    )
    try:
        yield client
    finally:
        client.close()


def _http(emu: Emulator) -> str:
    return emu.url.replace("ws://", "http://", 1)


def _watch(emu: Emulator, room: str, key: str | None = KEY, method: str = "POST") -> Any:
    headers = {} if key is None else {"x-api-key": key}
    url = f"{_http(emu)}/watch-stream/{room}"
    session = requests.Session()
    session.trust_env = False  # never a proxy: loopback only
    with session:
        return session.request(method, url, headers=headers, timeout=5)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _held(room: Room) -> dict[str, int] | None:
    """The room's resources, read off the loop thread (None: it changed while read)."""
    try:
        return room.resources()
    except RuntimeError:
        return None


def _served(emu: Emulator, client: decart_sync.RealtimeClient) -> ServedSession:
    served = emu.wait_for_session(session_id=client.session_id)
    assert served.room is not None
    return served


def test_decart_sync_viewer_watches_the_publisher(publisher, emu: Emulator) -> None:
    served = _served(emu, publisher)
    room = served.room
    assert room is not None
    wait_for_frame(publisher.frames(timeout=10), close_to(invert(FRAME)))
    publisher_connection = room.client
    before = {t.name for t in threading.enumerate()}

    viewer = decart_sync.subscribe(
        publisher.subscribe_token or "",
        api_key=KEY,
        base_url=emu.url,
        model=LK_SMALL,
        timeout=20.0,
    )
    try:
        wait_for_frame(viewer.frames(timeout=10), close_to(invert(FRAME)))
        assert viewer.is_connected() and viewer.state in ("connected", "generating")
        assert viewer.session_id == publisher.session_id
        [identity] = room.viewers
        assert identity.startswith("viewer-")
        assert room.client is publisher_connection, "the viewer replaced the publisher"

        # Both follow a prompt change; the publisher is undisturbed.
        publisher.set_prompt("grayscale")
        wait_for_frame(viewer.frames(timeout=10), close_to(grayscale(FRAME)))
        wait_for_frame(publisher.frames(timeout=10), close_to(grayscale(FRAME)))
        assert publisher.state == "generating" and publisher.stats["reconnects"] == 0
    finally:
        started = time.monotonic()
        viewer.close()
        took = time.monotonic() - started
    assert took < 2.0, f"close took {took:.2f} s"
    viewer.close()  # idempotent
    assert viewer.state == "disconnected"
    left = {t.name for t in threading.enumerate()} - before
    assert not {n for n in left if n.startswith("decart-sync") and "emulator" not in n}

    # The room let the viewer go entirely (its connection, peers, tasks and its own
    # copies of the output) and kept the publisher's connection.
    wait_until(lambda: not room.viewers, 10, "the viewer leaving the room")
    wait_until(lambda: _held(room) == _publisher_holds(emu), 10, "cleanup")
    assert served.forked and all(track.readyState == "ended" for track in served.forked)
    assert room.client is publisher_connection
    publisher.set_prompt("invert")
    wait_for_frame(publisher.frames(timeout=10), close_to(invert(FRAME)))


def test_a_livekit_viewer_gets_only_the_inference_server(publisher, emu: Emulator) -> None:
    """Joined with the livekit package: what a viewer's token allows and what it is offered."""
    served = _served(emu, publisher)
    room = served.room
    assert room is not None
    answer = _watch(emu, room.name)
    assert answer.status_code == 200
    credentials = answer.json()
    assert credentials["room_name"] == room.name
    assert credentials["session_id"] == publisher.session_id
    assert credentials["livekit_url"] == emu.url
    grant = _claims(credentials["token"])["video"]
    assert grant["room"] == room.name and grant["canPublish"] is False
    assert grant["canSubscribe"] is True

    seen = asyncio.run(_livekit_viewer(credentials["livekit_url"], credentials["token"]))

    assert seen["participants"] and all(
        p.startswith(SERVER_IDENTITY_PREFIX) for p in seen["participants"]
    ), seen
    assert seen["subscribed"] == [(seen["participants"][0], "video")]
    assert seen["can_publish"] is False
    assert seen["error"] < 10.0
    wait_until(lambda: not room.viewers, 10, "the viewer leaving the room")
    assert publisher.state == "generating" and publisher.stats["reconnects"] == 0


async def _livekit_viewer(url: str, token: str) -> dict[str, Any]:
    lk = rtc.Room()
    subscribed: list[tuple[str, str]] = []
    tracks: asyncio.Queue[Any] = asyncio.Queue()

    @lk.on("track_subscribed")
    def _on_track(track: Any, publication: Any, participant: Any) -> None:
        kind = "video" if track.kind == rtc.TrackKind.KIND_VIDEO else "audio"
        subscribed.append((participant.identity, kind))
        tracks.put_nowait(track)

    await asyncio.wait_for(lk.connect(url, token), 20)
    try:
        track = await asyncio.wait_for(tracks.get(), 20)
        error = await _error_of_first_match(track, invert(FRAME))
        return {
            "participants": sorted(p.identity for p in lk.remote_participants.values()),
            "subscribed": subscribed,
            "can_publish": lk.local_participant.permissions.can_publish,
            "error": error,
        }
    finally:
        await lk.disconnect()


async def _error_of_first_match(track: Any, expected: np.ndarray, timeout: float = 20.0) -> float:
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24)
    deadline = time.monotonic() + timeout
    error = float("inf")
    try:
        while time.monotonic() < deadline:
            event = await asyncio.wait_for(stream.__anext__(), deadline - time.monotonic())
            frame = event.frame
            got = np.frombuffer(bytes(frame.data), np.uint8).reshape(frame.height, -1, 3)
            if got.shape == expected.shape:
                error = float(np.abs(got.astype(int) - expected).mean())
                if close_to(expected)(got):
                    return error
    finally:
        await stream.aclose()
    return error


def test_wrong_api_key_is_refused(publisher, emu: Emulator) -> None:
    room = _served(emu, publisher).room
    assert room is not None
    assert _watch(emu, room.name, key="wrong-key").status_code == 401
    assert _watch(emu, room.name, key=None).status_code == 401
    with pytest.raises(decart_sync.InvalidAPIKeyError) as caught:
        decart_sync.subscribe(
            publisher.subscribe_token or "",
            api_key="wrong-key",
            base_url=emu.url,
            model=LK_SMALL,
            timeout=10.0,
        )
    assert caught.value.code == "INVALID_API_KEY"
    assert "wrong-key" not in str(caught.value)
    assert not room.viewers


def test_unknown_room_is_a_coded_error(emu: Emulator) -> None:
    assert _watch(emu, "room-nobody").status_code == 404
    token = base64.urlsafe_b64encode(json.dumps({"room_name": "room-nobody"}).encode()).decode()
    started = time.monotonic()
    with pytest.raises(DecartSDKError) as caught:
        decart_sync.subscribe(token, api_key=KEY, base_url=emu.url, model=LK_SMALL, timeout=10.0)
    assert time.monotonic() - started < 5.0
    assert caught.value.code == "WEBRTC_WEBSOCKET_ERROR"
    assert "404" in str(caught.value) and "room-nobody" in str(caught.value)


def test_watch_stream_takes_post_only(publisher, emu: Emulator) -> None:
    room = _served(emu, publisher).room
    assert room is not None
    assert _watch(emu, room.name, method="GET").status_code == 405


@pytest.mark.timeout(720)  # the first run also installs the SDK
def test_official_sdk_viewer_watches_the_publisher(
    official_livekit_python: str, publisher, emu: Emulator, tmp_path: Path
) -> None:
    """``decart`` 0.2.4's ``RealtimeClient.subscribe``, unchanged, in its own virtualenv."""
    served = _served(emu, publisher)
    room = served.room
    assert room is not None
    expected = tmp_path / "expected.npy"
    np.save(expected, invert(FRAME))
    run = subprocess.run(
        [
            official_livekit_python,
            str(VIEWER),
            emu.url,
            KEY,
            publisher.subscribe_token or "",
            str(expected),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["error"] is not None and seen["error"] < 12, seen
    assert seen["state_before_disconnect"] == "connected"
    assert seen["state_after_disconnect"] == "disconnected"
    wait_until(lambda: not room.viewers, 10, "the official viewer leaving the room")
    wait_until(lambda: _held(room) == _publisher_holds(emu), 10, "cleanup")
    assert publisher.state == "generating" and publisher.stats["reconnects"] == 0
