"""The LiveKit server test double, driven by the real ``livekit`` client package.

The emulator's server runs on its own loop thread with a :class:`LiveKitRooms`;
a room's ``inference-server-...`` participant publishes an aiortc track that
echoes the client's camera inverted. The ``livekit`` package (its Rust core,
libwebrtc inside) joins with a token, publishes a gradient at 25 fps, and must
get the inverted gradient back from that participant; after it disconnects,
the room must hold no connection, peer or task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

rtc = pytest.importorskip("livekit.rtc")

from aiortc import MediaStreamTrack  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402
from av import VideoFrame  # noqa: E402
from conftest import SMALL, TOLERANCE, invert, mean_error, pattern  # noqa: E402

from decart_sync._ice import allow_loopback_candidates  # noqa: E402
from decart_sync._portal import Portal  # noqa: E402
from decart_sync.emulator.livekit import SERVER_IDENTITY_PREFIX, LiveKitRooms, Room  # noqa: E402
from decart_sync.emulator.server import EmulatorServer  # noqa: E402

W, H, FPS = SMALL.width, SMALL.height, SMALL.fps
CALL_TIMEOUT = 10.0


class InvertEcho(MediaStreamTrack):
    """The inference server's stand-in: the client's current video, colours inverted."""

    kind = "video"

    def __init__(self, room: Room) -> None:
        super().__init__()
        self.room = room

    async def recv(self) -> VideoFrame:
        while True:
            source = await self.room.client_track("video")
            try:
                frame = await source.recv()
            except MediaStreamError:
                continue  # that connection's track ended: wait for the next one
            out = VideoFrame.from_ndarray(255 - frame.to_ndarray(format="rgb24"), format="rgb24")
            out.pts, out.time_base = frame.pts, frame.time_base
            return out


class Server:
    """An EmulatorServer serving LiveKit rooms, on a loop thread of its own."""

    def __init__(self) -> None:
        allow_loopback_candidates()
        self.rooms = LiveKitRooms(loopback=True)
        self.server = EmulatorServer(livekit_rooms=self.rooms)
        self.portal = Portal("decart-sync-emulator").start()
        self.portal.call(self.server.start(), CALL_TIMEOUT)
        self.url = f"ws://127.0.0.1:{self.server.port}"

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result."""

        async def run() -> Any:
            return fn(*args)

        return self.portal.call(run(), CALL_TIMEOUT)

    def close(self) -> None:
        self.portal.call(self.server.close(), CALL_TIMEOUT)
        self.portal.stop()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()


async def _feed(source: Any, frame: np.ndarray) -> None:
    """The client's camera: one frame per 1/FPS s (pacing, not synchronisation)."""
    rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)]).tobytes()
    while True:
        source.capture_frame(rtc.VideoFrame(W, H, rtc.VideoBufferType.RGBA, rgba))
        await asyncio.sleep(1 / FPS)


async def _client(url: str, token: str, codec: Any) -> dict[str, Any]:
    """Join, publish, receive the inference server's video; report what was seen."""
    room = rtc.Room()
    remote: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @room.on("track_subscribed")
    def _on_track(track: Any, publication: Any, participant: Any) -> None:
        video = track.kind == rtc.TrackKind.KIND_VIDEO
        ours = participant.identity.startswith(SERVER_IDENTITY_PREFIX)
        if video and ours and not remote.done():
            remote.set_result((track, participant.identity))

    await asyncio.wait_for(room.connect(url, token), 20)
    source = rtc.VideoSource(W, H)
    camera = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, video_codec=codec)
    expected = invert(pattern())
    feeder = asyncio.ensure_future(_feed(source, pattern()))
    seen: dict[str, Any] = {"errors": []}
    try:
        await asyncio.wait_for(room.local_participant.publish_track(camera, options), 15)
        track, seen["identity"] = await asyncio.wait_for(remote, 20)
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24)
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                event = await asyncio.wait_for(stream.__anext__(), deadline - time.monotonic())
                frame = event.frame
                got = np.frombuffer(bytes(frame.data), np.uint8).reshape(frame.height, -1, 3)
                if got.shape != expected.shape:
                    seen["errors"].append(f"shape {got.shape}")
                    continue
                seen["errors"].append(round(mean_error(got, expected), 1))
                if mean_error(got, expected) < TOLERANCE:
                    seen["match"] = True
                    break
        finally:
            await stream.aclose()
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await room.disconnect()
    return seen


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

    seen = asyncio.run(_client(server.url, token, getattr(rtc.VideoCodec, codec)))

    assert seen["identity"] == identity
    assert seen.get("match"), f"no inverted frame within tolerance; errors: {seen['errors'][-10:]}"
    assert _wait_idle(server, room) == {"connections": 0, "peers": 0, "tasks": 0}


def test_rtc_http_routes(server: Server) -> None:
    """/rtc/v1 is absent (the client falls back), /rtc/validate checks the token."""
    import urllib.error
    import urllib.request

    token = server.call(lambda: server.rooms.token(server.rooms.create_room("r").name))

    def status(path: str, token: str | None = None) -> int:
        request = urllib.request.Request(server.url.replace("ws", "http", 1) + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
        try:
            with opener.open(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("/rtc/v1", token) == 404
    assert status("/rtc/v1/validate", token) == 404
    assert status("/rtc/validate", token) == 200
    assert status("/rtc/validate", token[:-2] + "xx") == 401
    assert status("/rtc/validate") == 401
    other = server.call(lambda: server.rooms.token("no-such-room"))
    assert status("/rtc/validate", other) == 404
