"""The emulator's stream sessions and their viewers.

`ServedSession` is a publishing client on the stream endpoint: prompt
and image requests with their acks, the input media transformed by the
prompt, generation ticks. Its media go the way its client asks: an ``offer``
gets plain WebRTC (and the model's size on that path, where it differs),
a ``livekit_join`` a LiveKit room (`livekit`) whose ``inference-server-...``
participant publishes the output, which `generation` makes. `Subscriber` is a
receive-only viewer of one. Both are `Connection` objects. Everything here runs
on the emulator's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from websockets.asyncio.server import ServerConnection

if TYPE_CHECKING:  # needs the optional livekit-protocol package
    from .livekit import LiveKitRooms, Room

from ..models import ModelDefinition
from . import images
from .accounts import FileStore
from .connection import Connection, Message
from .faults import Faults
from .generation import GeneratingSession
from .netem import Shaper

log = logging.getLogger(__name__)

TIMEOUT = "timeout"  # generation_ended's reason when a token's max session duration is up


class ServedSession(GeneratingSession):
    """A client of the stream endpoint: prompt, image, input media, transformed output
    (that last in `GeneratingSession`)."""

    kind = "stream"

    def __init__(
        self,
        ws: ServerConnection,
        model: ModelDefinition,
        *,
        server_ip: str,
        server_port: int,
        loopback: bool,
        faults: Faults,
        on_closed: Callable[[Connection], None],
        classic_model: ModelDefinition | None = None,
        livekit: LiveKitRooms | None = None,
        files: FileStore | None = None,
    ) -> None:
        super().__init__(ws, model, loopback=loopback, faults=faults, on_closed=on_closed)
        self._files = files if files is not None else FileStore()  # image_ref resolves here
        self.mode: str | None = None  # "webrtc" or "livekit", from the client's first word
        self.room: Room | None = None
        self._classic_model = classic_model  # the model as plain WebRTC serves it
        self._image_data: str | None = None  # the reference image as received
        self._livekit = livekit
        self.server_ip = server_ip
        self.server_port = server_port
        self.enhance_prompt: bool | None = None
        self.frame_timing = False  # the client asked for frame timing (LiveKit)
        self.subscribers: set[Subscriber] = set()
        self.forked: list[MediaStreamTrack] = []  # LiveKit viewers' copies of the output

    async def opened(self) -> None:
        await self.send(
            {
                "type": "session_id",
                "session_id": self.session_id,
                "server_ip": self.server_ip,
                "server_port": self.server_port,
            },
            always=True,
        )

    # -- state requests ---------------------------------------------------------

    async def _on_prompt(self, message: Message) -> None:
        prompt = message.get("prompt")
        error = _prompt_error(prompt) or self.faults.reject_prompts
        if error is None:
            self.prompt = prompt
            self.enhance_prompt = _enhance(message)
            self._notify()
        ack = {"type": "prompt_ack", "prompt": prompt, "success": error is None, "error": error}
        await self._ack(ack)

    async def _on_set_image(self, message: Message) -> None:
        error = None
        image = self.image
        if "image_ref" in message:  # an uploaded file's id, as the JS SDK sends it
            message = {**message, "image_data": self._files.base64_of(message["image_ref"])}
            if message["image_data"] is None:
                error = f"File not found: {message['image_ref']} (unknown, expired or deleted)"
        if "image_data" in message and error is None:  # absent: the image stays as it is
            data = message["image_data"]
            try:
                image = None if data is None else await asyncio.to_thread(self._decode, data)
            except images.ImageError as exc:
                error = str(exc)
        has_prompt = "prompt" in message
        prompt = message.get("prompt")
        if error is None and has_prompt and prompt is not None:
            error = _prompt_error(prompt)
        error = error or self.faults.reject_images
        if error is None:
            # Applied together, so a frame never shows the new image with the old prompt.
            self.image = image
            if "image_data" in message:
                self._image_data = message["image_data"]
            if has_prompt:
                self.prompt = prompt
                self.enhance_prompt = _enhance(message)
            self._notify()
        await self._ack({"type": "set_image_ack", "success": error is None, "error": error})

    def _decode(self, data: str) -> np.ndarray:
        return images.decode_image(data, self.model.width, self.model.height)

    async def _ack(self, ack: Message) -> None:
        delay = self.faults.ack_delay
        if delay > 0:
            # Later messages go on being handled meanwhile, as on a busy service.
            self.spawn(self._send_later(ack, delay))
        else:
            await self.send(ack)

    async def _send_later(self, message: Message, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.send(message)

    # -- which media path -----------------------------------------------------

    async def _on_offer(self, message: Message) -> None:
        if self.mode is None:
            self.mode = "webrtc"
            if self._classic_model is not None and self._classic_model != self.model:
                self.model = self._classic_model  # nothing is attached to the output yet
                self.video_out.stop()
                self.video_out = self._video_track()
                if self._image_data is not None:  # the initial image, at the size now served
                    self.image = await asyncio.to_thread(self._decode, self._image_data)
        await super()._on_offer(message)

    async def _on_livekit_join(self, message: Message) -> None:
        if self.mode is not None:
            log.debug("ignoring a livekit_join: this session's media are already set up")
            return
        if self._livekit is None:
            error = "LiveKit is not served here (the emulator needs livekit-protocol)"
            await self.send({"type": "error", "error": error})
            return
        self.mode = "livekit"
        # The queue runs beside the message loop, not inside it: a client that leaves
        # while queued is seen at once and its session ends, as the service lets go.
        self.spawn(self._queue_then_room(message))

    async def _queue_then_room(self, message: Message) -> None:
        assert self._livekit is not None
        for position in range(self.faults.queue_positions, 0, -1):
            size = self.faults.queue_positions
            await self.send({"type": "queue_position", "position": position, "queue_size": size})
            await asyncio.sleep(self.faults.queue_step)
        room = self.room = self._livekit.create_room(
            f"room-{self.session_id}", on_client_track=self._on_track, network=self._network
        )
        video = self.relay.subscribe(self.video_out, buffered=False)
        audio = None if self.audio_out is None else self.relay.subscribe(self.audio_out)
        # As the service: the input's frame timing copied onto the output, when asked.
        capabilities = message.get("client_capabilities")
        self.frame_timing = (
            isinstance(capabilities, dict) and capabilities.get("frame_timing") is True
        )
        room.publish(video, audio, fork=self._fork, frame_timing=self.frame_timing)
        if audio is not None:
            self.spawn(self._render_avatar())
        self.spawn(self._watch_room(room))
        host, port = self.server_ip, self.server_port
        room_info = {
            "type": "livekit_room_info",
            "livekit_url": f"ws://{f'[{host}]' if ':' in host else host}:{port}",
            "token": self._livekit.token(room.name, f"client-{self.session_id[:8]}"),
            "room_name": room.name,
            "session_id": self.session_id,
        }
        await self.send(room_info)

    def _network(self, target: str) -> Shaper:
        """The network between the client and one of its room's peer connections."""
        shaper = Shaper(lambda: self.faults, start=self.started, label=target)
        self.shapers.append(shaper)
        return shaper

    def _fork(self, track: MediaStreamTrack) -> MediaStreamTrack:
        """A LiveKit viewer's own copy of an output track, as a plain-WebRTC viewer gets."""
        if track.kind == "audio" and self.audio_out is not None:
            copy = self.relay.subscribe(self.audio_out)
        else:
            copy = self.relay.subscribe(self.video_out, buffered=False)
        self.forked.append(copy)
        return copy

    async def _watch_room(self, room: Room) -> None:
        """A client that leaves the room after its WebSocket went ends the session."""
        while True:
            await room.left.wait()
            if not self.signaling_open:
                await self.close("the client left the room")
                return
            await room.joined.wait()

    def _peer_alive(self) -> bool:
        if self.room is not None:
            return self.room.client is not None
        return super()._peer_alive()

    async def drop(self, how: str) -> None:
        if self.room is not None and how == "peer":
            await self.room.drop()
            return
        await super().drop(how)

    # -- the end ----------------------------------------------------------------

    async def end_after(self, seconds: float) -> None:
        """A client token's max session duration: the service ends the session."""
        await asyncio.sleep(seconds)
        log.info("session %s reached its token's %s s limit", self.session_id, seconds)
        await self.close(TIMEOUT)

    async def _before_close(self, reason: str) -> None:
        subscribers = [s.close("the session ended") for s in list(self.subscribers)]
        await asyncio.gather(*subscribers, return_exceptions=True)
        if self.generating:
            if self.mode == "livekit" and reason != TIMEOUT:
                reason = "disconnect"  # today's service names its reasons
            message = {"type": "generation_ended", "seconds": self.seconds, "reason": reason}
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.send(message), 0.5)
        if self.room is not None:
            await self.room.close()


class Subscriber(Connection):
    """A receive-only viewer of one `ServedSession`'s output."""

    kind = "subscribe"

    def __init__(
        self,
        ws: ServerConnection,
        target: ServedSession,
        *,
        loopback: bool,
        faults: Faults,
        on_closed: Callable[[Connection], None],
    ) -> None:
        super().__init__(ws, loopback=loopback, faults=faults, on_closed=on_closed)
        self.target = target

    def _add_tracks(self, pc: RTCPeerConnection) -> None:
        target = self.target
        self._attach(pc, target.relay.subscribe(target.video_out, buffered=False))
        if target.audio_out is not None:
            self._attach(pc, target.relay.subscribe(target.audio_out))


def _prompt_error(prompt: object) -> str | None:
    if not isinstance(prompt, str):
        return "prompt must be text"
    if not prompt.strip():
        return "prompt must not be empty"
    return None


def _enhance(message: Message) -> bool:
    value = message.get("enhance_prompt", True)
    return value if isinstance(value, bool) else True
