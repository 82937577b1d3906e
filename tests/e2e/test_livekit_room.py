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
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from helpers import SMALL, TOLERANCE, invert, mean_error, pattern
from livekit import rtc

from decart_sync._portal import Portal
from decart_sync._process import allow_loopback_candidates, settle_livekit_at_exit
from decart_sync.emulator.livekit import SERVER_IDENTITY_PREFIX, LiveKitRooms, Room
from decart_sync.emulator.server import EmulatorServer

W, H, FPS = SMALL.width, SMALL.height, SMALL.fps
# A room the server ends tears down natively after the test returns: without this,
# a run ending with this file now and then aborted at exit (see _process.settle_livekit_at_exit).
settle_livekit_at_exit()
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
    """An EmulatorServer serving LiveKit rooms, on a loop thread of its own; ``single_pc``:
    it serves ``/rtc/v1`` too (else the client falls back to ``/rtc``)."""

    def __init__(self, single_pc: bool = True) -> None:
        allow_loopback_candidates()
        self.path, self.peers = ("/rtc/v1", 1) if single_pc else ("/rtc", 2)
        self.rooms = LiveKitRooms(loopback=True, single_pc=single_pc)
        self.server = EmulatorServer(livekit_rooms=self.rooms)
        self.portal = Portal("decart-sync-emulator").start()
        self.portal.call(self.server.start, timeout=CALL_TIMEOUT)
        self.url = f"ws://127.0.0.1:{self.server.port}"

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result."""

        async def run() -> Any:
            return fn(*args)

        return self.portal.call(run, timeout=CALL_TIMEOUT)

    def close(self) -> None:
        self.portal.call(self.server.close, timeout=CALL_TIMEOUT)
        self.portal.stop()

    def joins(self, room: Room) -> list[tuple[str, str, int, int]]:
        """Each signal connection the room served: identity, path, peer connections made,
        the most connected at once."""
        return self.call(
            lambda: [
                (p.identity, p.path, p.peer_connections, p.connected) for p in room.participations
            ]
        )

    def took_its_path(self, identity: str) -> tuple[str, str, int, int]:
        """What a client that took this server's path shows in `joins`."""
        return (identity, self.path, self.peers, self.peers)


@pytest.fixture(params=[True, False], ids=["rtc-v1", "rtc"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(single_pc=request.param)
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


def _http(
    server: Server,
    path: str,
    token: str | None = None,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, Message, str]:
    """Status, headers and text of a plain HTTP request to the server."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        server.url.replace("ws", "http", 1) + path, method=method, headers=headers or {}
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status), response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def _join_request(compression: int, offer: str = "") -> str:
    """A join_request as livekit-client and the Rust core write it."""
    import base64
    import gzip

    from livekit.protocol import rtc as lkr

    join = lkr.JoinRequest(metadata="page")
    if offer:
        join.publisher_offer.CopyFrom(lkr.SessionDescription(type="offer", sdp=offer))
    data = join.SerializeToString()
    if compression == lkr.WrappedJoinRequest.Compression.GZIP:
        data = gzip.compress(data)
    wrapped = lkr.WrappedJoinRequest(compression=compression, join_request=data)
    return base64.urlsafe_b64encode(wrapped.SerializeToString()).decode()


def test_rtc_http_routes(server: Server) -> None:
    """The validate routes check the token, the join request and the room, in the
    server's order; /rtc/v1 answers 404 where it is not served (the client falls back)."""
    from urllib.parse import quote

    token = server.call(lambda: server.rooms.token(server.rooms.create_room("r").name))
    status = lambda *args: _http(server, *args)[0]  # noqa: E731
    assert status("/rtc/validate", token) == 200
    assert status("/rtc/validate", token[:-2] + "xx") == 401
    assert status("/rtc/validate") == 401
    other = server.call(lambda: server.rooms.token("no-such-room"))
    assert _http(server, "/rtc/validate", other)[::2] == (404, "requested room does not exist")
    assert status("/rtc", token) == 404  # not a WebSocket upgrade
    assert status("/rtc/nothing", token) == 404
    joined = f"/rtc/v1/validate?join_request={quote(_join_request(1, 'v=0'))}"
    if server.path == "/rtc":  # a server before v1
        assert status("/rtc/v1", token) == status(joined, token) == 404
        return
    assert _http(server, joined, token)[::2] == (200, "success")
    plain = f"/rtc/v1/validate?join_request={quote(_join_request(0))}"
    assert status(plain, token) == 200
    assert _http(server, "/rtc/v1/validate", token)[::2] == (400, "join_request is required")
    assert _http(server, "/rtc/v1/validate?join_request=%21%21", token)[::2] == (
        400,
        "cannot base64 decode wrapped join request",
    )
    assert status(joined, token[:-2] + "xx") == 401  # the token first, as LiveKit
    assert status(f"/rtc/v1/validate?join_request=x&access_token={token}") == 400


def test_browsers_may_read_every_rtc_answer(server: Server) -> None:
    """As livekit-server's CORS (rs/cors): any origin, preflights answered."""
    token = server.call(lambda: server.rooms.token(server.rooms.create_room("cors").name))
    page = {"Origin": "http://page.example"}
    for path in ("/rtc/validate", "/rtc/v1/validate", "/rtc/nothing"):
        for who in (token, None):
            _, headers, _ = _http(server, path, who, headers=page)
            # Once each: a browser refuses an Access-Control-Allow-Origin said twice.
            assert headers.get_all("Access-Control-Allow-Origin") == ["http://page.example"]
            assert headers.get_all("Vary") == ["Origin"], path
            assert headers.get_all("Access-Control-Expose-Headers") == ["*"], path
    _, headers, _ = _http(server, "/rtc/validate", token)
    assert "Access-Control-Allow-Origin" not in headers  # no Origin, no CORS
    asked = {
        **page,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    status, headers, body = _http(server, "/rtc/v1/validate", method="OPTIONS", headers=asked)
    assert (status, body) == (204, "")
    assert headers.get_all("Access-Control-Allow-Origin") == ["http://page.example"]
    assert headers.get_all("Access-Control-Allow-Methods") == ["GET"]
    assert headers.get_all("Access-Control-Allow-Headers") == ["authorization"]
    assert headers.get_all("Access-Control-Max-Age") == ["86400"]


def test_a_resume_is_asked_to_rejoin(server: Server) -> None:
    """aiortc cannot restart ICE: a resuming client (v1: the join request's ``reconnect``;
    v0: ``?reconnect=1``) gets a leave that asks for a full reconnect, on either path."""
    import base64

    from livekit.protocol import models as lkm
    from livekit.protocol import rtc as lkr
    from websockets.sync.client import connect

    token = server.call(lambda: server.rooms.token(server.rooms.create_room("resume").name))
    if server.path == "/rtc/v1":
        join = lkr.JoinRequest(reconnect=True, participant_sid="PA_before")
        wrapped = lkr.WrappedJoinRequest(join_request=join.SerializeToString())
        query = "join_request=" + base64.urlsafe_b64encode(wrapped.SerializeToString()).decode()
    else:
        query = "reconnect=1&sid=PA_before"
    url = f"{server.url}{server.path}?{query}&access_token={token}"
    with connect(url, open_timeout=5, close_timeout=1) as ws:
        first = lkr.SignalResponse.FromString(ws.recv(timeout=5))
    assert first.WhichOneof("message") == "leave"
    assert first.leave.action == lkr.LeaveRequest.Action.RECONNECT and first.leave.can_reconnect
    assert first.leave.reason == lkm.DisconnectReason.STATE_MISMATCH


@pytest.mark.parametrize("flag", [[], ["--no-livekit-v1"]], ids=["default", "no-livekit-v1"])
def test_the_emulator_cli_serves_v1_unless_told_not_to(flag: list[str]) -> None:
    import re
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    command = [sys.executable, "-m", "decart_sync.emulator", "--port", "0", *flag]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"ws://(127\.0\.0\.1:\d+)", line)
        assert match, line
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
        try:
            opener.open(f"http://{match[1]}/rtc/v1/validate", timeout=5)
            raise AssertionError("an unauthenticated validate succeeded")
        except urllib.error.HTTPError as exc:
            status = exc.code
    finally:
        proc.terminate()
        proc.wait(10)
    assert status == (404 if flag else 401)  # not served, or served and refusing no token
