"""The emulator's stream sessions and their viewers.

:class:`ServedSession` is a publishing client on the stream endpoint: prompt
and image requests with their acks, the input media transformed by the
prompt, generation ticks. :class:`Subscriber` is a receive-only viewer of
one. Both are :class:`~.connection.Connection` objects. Everything here runs
on the emulator's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from websockets.asyncio.server import ServerConnection

from ..clock import Pacer
from ..models import ModelDefinition
from . import images, media, transforms
from .connection import Connection, Message
from .faults import Faults

log = logging.getLogger(__name__)


class ServedSession(Connection):
    """A client of the stream endpoint: prompt, image, input media, transformed output."""

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
    ) -> None:
        super().__init__(ws, loopback=loopback, faults=faults, on_closed=on_closed)
        self.model = model
        self.server_ip = server_ip
        self.server_port = server_port
        self.prompt: str | None = None
        self.enhance_prompt: bool | None = None
        self.image: np.ndarray | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.audio_frames_in = 0
        self.audio_frames_out = 0
        self.generating = False
        self.seconds = 0
        self.subscribers: set[Subscriber] = set()
        # One source per kind, fanned out to our own peer and to subscribers.
        self.relay = MediaRelay()
        self.video_out = media.PacedVideoTrack(
            model.fps, on_frame=self._video_sent, frozen=lambda: self.faults.freeze_media
        )
        self.audio_out: media.EchoAudioTrack | None = None
        self.level = media.LevelMeter()
        if model.is_avatar:
            self.audio_out = media.EchoAudioTrack(on_frame=self._audio_sent)

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
        if "image_data" in message:  # absent: the image stays as it is
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

    # -- media ------------------------------------------------------------------

    def _add_tracks(self, pc: RTCPeerConnection) -> None:
        self._attach(pc, self.relay.subscribe(self.video_out, buffered=False))
        if self.audio_out is not None:
            self._attach(pc, self.relay.subscribe(self.audio_out))
            self.spawn(self._render_avatar())

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and not self.model.is_avatar:
            self.spawn(self._transform_camera(track))
        elif track.kind == "audio" and self.audio_out is not None:
            self.spawn(self._listen(track))
        else:
            self.spawn(media.drain(track))

    async def _transform_camera(self, track: MediaStreamTrack) -> None:
        """Received frames, transformed in a worker thread; stale ones are skipped."""
        latest: media.Latest[VideoFrame] = media.Latest()
        intake = Pacer(self.model.fps)  # a model takes at most its fps
        reader = self.spawn(self._read_video(track, latest, intake))
        width, height = self.model.width, self.model.height
        try:
            while True:
                await intake.wait()
                frame = await latest.get()
                prompt, image = self.prompt, self.image
                planes = await asyncio.to_thread(
                    media.camera_planes, frame, width, height, prompt, image
                )
                self.video_out.push(planes)
        except MediaStreamError:
            pass  # the client's track ended
        finally:
            reader.cancel()

    async def _read_video(
        self, track: MediaStreamTrack, latest: media.Latest[VideoFrame], intake: Pacer
    ) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.frames_in += 1
                    latest.put(frame)
                    intake.arrived()
        except MediaStreamError:
            pass
        finally:
            latest.close()

    async def _listen(self, track: MediaStreamTrack) -> None:
        assert self.audio_out is not None
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame):
                    self.audio_frames_in += 1
                    self.level.feed(frame)
                    self.audio_out.feed(frame)

    async def _render_avatar(self) -> None:
        """The avatar picture at the brightness of the latest audio, at the model's rate."""
        width, height = self.model.width, self.model.height
        grey = images.grey(width, height)
        shown: tuple[int, int] | None = None
        interval = 1.0 / self.model.fps
        while True:
            image = self.image if self.image is not None else grey
            steps = transforms.gain_steps(transforms.brightness(self.level.rms()))
            if (id(image), steps) != shown:
                shown = (id(image), steps)
                self.video_out.push(await asyncio.to_thread(media.avatar_planes, image, steps))
            await asyncio.sleep(interval)

    def _video_sent(self) -> None:
        self.frames_out += 1
        if not self.generating:
            self.generating = True
            self.spawn(self._generate())
        self._notify()

    def _audio_sent(self) -> None:
        self.audio_frames_out += 1

    async def _generate(self) -> None:
        """generation_started, then a billing tick each second."""
        await self.send({"type": "generation_started"})
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            await asyncio.sleep(max(0.0, start + self.seconds + 1 - loop.time()))
            self.seconds += 1
            if not self.faults.no_ticks:
                await self.send({"type": "generation_tick", "seconds": self.seconds})

    async def _before_close(self, reason: str) -> None:
        subscribers = [s.close("the session ended") for s in list(self.subscribers)]
        await asyncio.gather(*subscribers, return_exceptions=True)
        if self.generating:
            message = {"type": "generation_ended", "seconds": self.seconds, "reason": reason}
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.send(message), 0.5)

    def _stop_media(self) -> None:
        self.video_out.stop()
        if self.audio_out is not None:
            self.audio_out.stop()


class Subscriber(Connection):
    """A receive-only viewer of one :class:`ServedSession`'s output."""

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
