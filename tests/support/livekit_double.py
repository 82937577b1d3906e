"""The LiveKit server test double for tests that drive it with the real ``livekit`` client:
an `EmulatorServer` serving LiveKit rooms on a loop thread of its own, and the inference
server's stand-in that echoes the client's camera inverted."""

from __future__ import annotations

from typing import Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from decart_sync._portal import Portal
from decart_sync._process import allow_loopback_candidates
from decart_sync.emulator.livekit import LiveKitRooms, Room
from decart_sync.emulator.server import EmulatorServer

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
