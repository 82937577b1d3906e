"""The LiveKit server test double, driven by the real ``livekit`` client package.

The emulator's server runs on its own loop thread with a `LiveKitRooms`;
a room's ``inference-server-...`` participant publishes an aiortc track that
echoes the client's camera inverted. The ``livekit`` package (its Rust core,
libwebrtc inside) joins with a token, publishes a gradient at 25 fps, and must
get the inverted gradient back from that participant; after it disconnects,
the room must hold no connection, peer or task. Every test runs on both
signaling paths: ``/rtc/v1`` (one peer connection, what the client tries
first) and, with a server that does not serve v1, the classic ``/rtc`` (two);
each checks the path its client took and how many peer connections connected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from helpers import SMALL, TOLERANCE, invert, mean_error, pattern
from livekit import rtc
from livekit_double import CALL_TIMEOUT, InvertEcho, Server

from decart_sync._process import settle_livekit_at_exit
from decart_sync.emulator.livekit import SERVER_IDENTITY_PREFIX, Room

W, H, FPS = SMALL.width, SMALL.height, SMALL.fps
# A room the server ends tears down natively after the test returns: without this,
# a run ending with this file now and then aborted at exit (see _process.settle_livekit_at_exit).
settle_livekit_at_exit()
async def _feed(source: Any, frame: np.ndarray) -> None:
    """The client's camera: one frame per 1/FPS s (pacing, not synchronisation)."""
    rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)]).tobytes()
    while True:
        source.capture_frame(rtc.VideoFrame(W, H, rtc.VideoBufferType.RGBA, rgba))
        await asyncio.sleep(1 / FPS)


async def _first_match(track: Any, expected: np.ndarray, timeout: float = 20.0) -> list[Any]:
    """Mean errors of the frames received until one is within tolerance (the last one)."""
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24)
    errors: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            event = await asyncio.wait_for(stream.__anext__(), deadline - time.monotonic())
            frame = event.frame
            got = np.frombuffer(bytes(frame.data), np.uint8).reshape(frame.height, -1, 3)
            if got.shape != expected.shape:
                errors.append(f"shape {got.shape}")
                continue
            errors.append(round(mean_error(got, expected), 1))
            if errors[-1] < TOLERANCE:
                return errors
    finally:
        await stream.aclose()
    raise AssertionError(f"no inverted frame within tolerance; errors: {errors[-10:]}")


async def _client(
    url: str, token: str, codec: Any, drop: Callable[[], None] | None = None
) -> list[str]:
    """Join, publish, check the inference server's video (again after ``drop``, if given).

    Returns the identities the video came from.
    """
    room = rtc.Room()
    subscribed: asyncio.Queue[tuple[Any, str]] = asyncio.Queue()

    @room.on("track_subscribed")
    def _on_track(track: Any, publication: Any, participant: Any) -> None:
        video = track.kind == rtc.TrackKind.KIND_VIDEO
        if video and participant.identity.startswith(SERVER_IDENTITY_PREFIX):
            subscribed.put_nowait((track, participant.identity))

    await asyncio.wait_for(room.connect(url, token), 20)
    source = rtc.VideoSource(W, H)
    camera = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, video_codec=codec)
    feeder = asyncio.ensure_future(_feed(source, pattern()))
    identities = []
    try:
        await asyncio.wait_for(room.local_participant.publish_track(camera, options), 15)
        for attempt in range(2 if drop else 1):
            track, identity = await asyncio.wait_for(subscribed.get(), 20)
            identities.append(identity)
            await _first_match(track, invert(pattern()))
            if drop is not None and attempt == 0:
                await asyncio.get_running_loop().run_in_executor(None, drop)
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await room.disconnect()
    return identities


def _wait_idle(server: Server, room: Room, timeout: float = 10.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        left, held = server.call(lambda: (room.left.is_set(), room.resources()))
        if left and not any(held.values()):
            return held
        if time.monotonic() > deadline:
            raise AssertionError(f"the room still holds {held} (client left: {left})")
        time.sleep(0.05)


@pytest.mark.parametrize("codec", ["H264", "VP8"])
def test_livekit_client_gets_the_inference_server_video(server: Server, codec: str) -> None:
    def setup() -> tuple[Room, str, str]:
        room = server.rooms.create_room("room-1")
        identity = room.publish(InvertEcho(room))
        return room, identity, server.rooms.token(room.name, "client-1")

    room, identity, token = server.call(setup)
    assert identity.startswith(SERVER_IDENTITY_PREFIX)

    identities = asyncio.run(_client(server.url, token, getattr(rtc.VideoCodec, codec)))

    assert identities == [identity]
    assert _wait_idle(server, room) == {"connections": 0, "peers": 0, "tasks": 0}
    assert server.joins(room) == [server.took_its_path("client-1")]


def test_a_track_published_after_the_join_reaches_the_client(server: Server) -> None:
    """On /rtc/v1 the server cannot offer: it asks the client for media sections and
    answers the client's next offer with the track; on /rtc it offers it."""
    room, token = server.call(
        lambda: (r := server.rooms.create_room("late"), server.rooms.token(r.name, "late-1"))
    )

    async def client() -> tuple[str, list[Any]]:
        lk = rtc.Room()
        subscribed: asyncio.Queue[tuple[Any, str]] = asyncio.Queue()
        lk.on("track_subscribed", lambda t, _pub, p: subscribed.put_nowait((t, p.identity)))
        await asyncio.wait_for(lk.connect(server.url, token), 20)
        source = rtc.VideoSource(W, H)
        camera = rtc.LocalVideoTrack.create_video_track("camera", source)
        feeder = asyncio.ensure_future(_feed(source, pattern()))
        try:
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
            await asyncio.wait_for(lk.local_participant.publish_track(camera, options), 15)
            await asyncio.get_running_loop().run_in_executor(
                None, server.call, lambda: room.publish(InvertEcho(room))
            )
            track, identity = await asyncio.wait_for(subscribed.get(), 20)
            return identity, await _first_match(track, invert(pattern()))
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            await lk.disconnect()

    identity, _ = asyncio.run(client())
    assert identity.startswith(SERVER_IDENTITY_PREFIX)
    assert _wait_idle(server, room) == {"connections": 0, "peers": 0, "tasks": 0}
    assert server.joins(room) == [server.took_its_path("late-1")]


def test_client_rejoins_after_a_drop(server: Server) -> None:
    """Room.drop() loses the client's peers and socket: LiveKit's client rejoins by itself."""

    def setup() -> tuple[Room, str, str]:
        room = server.rooms.create_room("room-2")
        return room, room.publish(InvertEcho(room)), server.rooms.token(room.name, "client-2")

    room, identity, token = server.call(setup)
    joins: list[int] = []

    def drop() -> None:
        joins.append(server.call(lambda: room.client is not None))
        server.portal.call(room.drop, timeout=CALL_TIMEOUT)

    identities = asyncio.run(_client(server.url, token, rtc.VideoCodec.H264, drop))

    assert joins == [True]
    assert identities == [identity, identity]
    assert _wait_idle(server, room) == {"connections": 0, "peers": 0, "tasks": 0}
    # The rejoin takes the same path as the first join.
    assert server.joins(room) == [server.took_its_path("client-2")] * 2


def test_vp9_is_refused_with_a_reason(server: Server) -> None:
    """aiortc cannot receive VP9: the client is told to leave (not to retry), and why is kept."""
    room, token = server.call(
        lambda: (r := server.rooms.create_room("r9"), server.rooms.token(r.name))
    )

    async def client() -> None:
        lk = rtc.Room()
        gone = asyncio.Event()
        lk.on("disconnected", lambda *_: gone.set())
        await asyncio.wait_for(lk.connect(server.url, token), 20)
        source = rtc.VideoSource(W, H)
        camera = rtc.LocalVideoTrack.create_video_track("camera", source)
        options = rtc.TrackPublishOptions(video_codec=rtc.VideoCodec.VP9)
        feeder = asyncio.ensure_future(_feed(source, pattern()))
        try:
            await asyncio.wait_for(lk.local_participant.publish_track(camera, options), 15)
            await asyncio.wait_for(gone.wait(), 15)
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            await lk.disconnect()

    asyncio.run(client())
    assert "Failed to set remote video description" in server.call(lambda: room.error)
    assert _wait_idle(server, room) == {"connections": 0, "peers": 0, "tasks": 0}
    assert [join[:2] for join in server.joins(room)] == [("client", server.path)]
