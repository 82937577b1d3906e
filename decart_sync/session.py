"""The realtime session: connect sequence, acks, states and reconnect (async core).

Pure asyncio; it knows nothing of threads. It reports to its owner through
one ``emit(kind, value)`` callable (kinds: ``state``, ``error``, ``tick``,
``remote_stream``) and hands decoded frames to a :class:`~.tracks.FrameHub`.

One :class:`_Attempt` holds what a single connection owns (WebSocket, peer
connection, pump tasks); a reconnect throws it away and builds another, while
the session's own state (latest prompt and image, waiters, hub) carries over.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from . import peer
from .errors import (
    DecartSDKError,
    ICEError,
    InvalidOptionsError,
    ServerError,
    SignalingError,
    TimeoutError_,
    WebSocketError,
    is_permanent,
    server_error,
)
from .models import ModelDefinition
from .signaling import Message, Signaling
from .tracks import FrameHub, InputTrack, LatestFrame

log = logging.getLogger(__name__)

CONNECTING, CONNECTED, GENERATING = "connecting", "connected", "generating"
DISCONNECTED, RECONNECTING = "disconnected", "reconnecting"
STATES = (CONNECTING, CONNECTED, GENERATING, DISCONNECTED, RECONNECTING)

RECONNECT_ATTEMPTS = 5
RECONNECT_FIRST_DELAY = 1.0
RECONNECT_MAX_DELAY = 10.0

Emit = Callable[[str, Any], None]
_UNSET: Any = object()


@attrs.define
class Desired:
    """What the server should be showing; replayed on every (re)connect."""

    prompt: str | None = None
    enhance: bool = True
    image: str | None = None  # base64


@attrs.define
class SessionOptions:
    model: ModelDefinition
    url: str
    ice_servers: list[str]
    subscribe: bool = False
    verify_tls: bool = True
    secret: str | None = None
    connect_timeout: float = 30.0
    reconnect: bool = True
    customize_offer: Callable[[RTCSessionDescription], Any] | None = None
    wants_remote_stream: bool = False


class _Attempt:
    """Everything one connection owns."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.signaling: Signaling | None = None
        self.pc: RTCPeerConnection | None = None
        self.answer: asyncio.Future[str] = loop.create_future()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.candidates: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.established = False
        self.generating = False
        self.relay: MediaRelay | None = None
        self.error: DecartSDKError | None = None  # the first reason this attempt failed

    def fail(self, error: DecartSDKError) -> None:
        if self.error is None:
            self.error = error
        for fut in (self.answer, self.connected):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # mark retrieved: a failed attempt may never await it


class Session:
    def __init__(
        self,
        options: SessionOptions,
        *,
        hub: FrameHub,
        emit: Emit,
        desired: Desired,
        input_frames: LatestFrame | None = None,
        audio_track: Callable[[], MediaStreamTrack] | None = None,
        on_audio: Callable[[Any], None] | None = None,
    ) -> None:
        self.options = options
        self.model = options.model
        self.hub = hub
        self.desired = desired
        self._emit = emit
        self._input_frames = input_frames
        self._audio_track = audio_track
        self._on_audio = on_audio
        self.state = DISCONNECTED
        self.session_id: str | None = None
        self.server_ip: str | None = None
        self.server_port: int | None = None
        self.reconnects = 0
        self.error: DecartSDKError | None = None
        self._attempt: _Attempt | None = None
        self._prompt_waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._image_waiters: deque[asyncio.Future[None]] = deque()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._state_changed = asyncio.Event()
        self._closing = False
        self._warned: set[object] = set()
        self._teardowns: set[asyncio.Task[None]] = set()

    # -- states ------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state == CONNECTED and self.state == GENERATING:
            return  # generating is sticky until a disconnect
        if state != self.state:
            self.state = state
            self._state_changed.set()
            self._state_changed = asyncio.Event()
            self._emit("state", state)

    async def wait_usable(self) -> None:
        """Until the session can take requests; raises if it is over."""
        while self.state not in (CONNECTED, GENERATING):
            if self.state == DISCONNECTED:
                raise self.error or WebSocketError("the session is disconnected")
            await self._state_changed.wait()

    # -- connect -----------------------------------------------------------

    async def connect(self) -> None:
        """The first connection; any failure tears everything down and raises."""
        self._set_state(CONNECTING)
        try:
            await self._connect_once()
        except BaseException:
            await self._drop_attempt()
            self._set_state(DISCONNECTED)
            raise

    async def _connect_once(self) -> None:
        timeout = self.options.connect_timeout
        try:
            await asyncio.wait_for(self._run_attempt(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError_(
                f"could not connect to {self.model.name} within {timeout} s"
            ) from None
        except DecartSDKError:
            raise
        except Exception as exc:
            # Whatever aiortc raised: the caller, and the reconnect loop, need a coded error.
            raise SignalingError(
                f"could not connect to {self.model.name}: {exc!r}", cause=exc
            ) from exc
        attempt = self._attempt
        assert attempt is not None
        attempt.established = True
        self._set_state(GENERATING if attempt.generating else CONNECTED)

    async def _run_attempt(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = self._attempt = _Attempt(loop)
        options = self.options
        signaling = Signaling(
            options.url,
            on_message=lambda m: self._on_message(attempt, m),
            on_closed=lambda exc: self._on_lost(attempt, "the signaling WebSocket closed", exc),
            verify_tls=options.verify_tls,
            secret=options.secret,
        )
        attempt.signaling = signaling
        await signaling.open(options.connect_timeout)
        if not options.subscribe:
            await self._send_desired(attempt)

        pc = attempt.pc = peer.create_peer(options.ice_servers)
        pc.on("connectionstatechange", lambda: self._on_pc_state(attempt))
        pc.on("track", lambda track: self._on_track(attempt, track))
        video = None
        if self._input_frames is not None:
            video = InputTrack(self._input_frames, self.model.fps)
        audio = self._audio_track() if self._audio_track is not None else None
        peer.add_media(pc, video=video, audio=audio, receive_audio=options.subscribe)

        sdp = await peer.build_offer(pc)
        if options.customize_offer is not None:
            sdp = await self._customize(sdp)
        await self._send(attempt, {"type": "offer", "sdp": sdp})
        answer = await attempt.answer
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:
            raise SignalingError(
                f"the server's SDP answer does not fit our offer: {exc}", cause=exc
            ) from exc
        for candidate in attempt.candidates:
            try:
                await pc.addIceCandidate(candidate)
            except Exception as exc:  # one bad candidate need not sink the connection
                log.warning("could not add a remote ICE candidate: %s", exc)
        attempt.candidates.clear()
        await attempt.connected

    async def _customize(self, sdp: str) -> str:
        """Run the user's hook off the loop; it may edit ``offer.sdp`` in place."""
        offer = RTCSessionDescription(sdp=sdp, type="offer")
        hook = self.options.customize_offer
        assert hook is not None
        try:
            result = await asyncio.to_thread(hook, offer)
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:
            raise InvalidOptionsError(f"customize_offer raised {exc!r}", cause=exc) from exc
        if not isinstance(offer.sdp, str) or not offer.sdp.startswith("v=0"):
            raise InvalidOptionsError("customize_offer left the offer without a valid SDP")
        return offer.sdp

    async def _send_desired(self, attempt: _Attempt) -> None:
        desired = self.desired
        if desired.image is not None:
            message: Message = {"type": "set_image", "image_data": desired.image}
            if desired.prompt is not None:
                message["prompt"] = desired.prompt
                message["enhance_prompt"] = desired.enhance
            await self._request(attempt, message)
        elif desired.prompt is not None:
            await self._request(
                attempt,
                {"type": "prompt", "prompt": desired.prompt, "enhance_prompt": desired.enhance},
            )
        else:
            await self._request(attempt, {"type": "set_image", "image_data": None, "prompt": None})

    # -- requests after connect --------------------------------------------

    async def set_prompt(self, text: str, enhance: bool) -> None:
        await self.wait_usable()
        message = {"type": "prompt", "prompt": text, "enhance_prompt": enhance}
        await self._request(self._attempt, message)
        self.desired.prompt, self.desired.enhance = text, enhance

    async def set_image(
        self, image: str | None, prompt: str | None = _UNSET, enhance: bool | None = None
    ) -> None:
        """``set_image`` message; ``prompt`` left unset keeps the server's prompt."""
        await self.wait_usable()
        message: Message = {"type": "set_image", "image_data": image}
        if prompt is not _UNSET:
            message["prompt"] = prompt
            message["enhance_prompt"] = True if enhance is None else enhance
        elif enhance is not None:
            message["enhance_prompt"] = enhance
        await self._request(self._attempt, message)
        self.desired.image = image
        if prompt is not _UNSET:
            self.desired.prompt = prompt
            self.desired.enhance = message["enhance_prompt"]

    async def _request(self, attempt: _Attempt | None, message: Message) -> None:
        if attempt is None or attempt.signaling is None:
            raise WebSocketError("the session is not connected")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if message["type"] == "prompt":
            waiters = self._prompt_waiters.setdefault(message["prompt"], deque())
        else:
            waiters = self._image_waiters
        waiters.append(fut)
        try:
            await self._send(attempt, message)
            await fut
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(fut)
            if message["type"] == "prompt" and not waiters:
                self._prompt_waiters.pop(message["prompt"], None)

    async def _send(self, attempt: _Attempt, message: Message) -> None:
        assert attempt.signaling is not None
        if attempt.error is not None:  # e.g. the server refused us before we said a word
            raise attempt.error
        try:
            await attempt.signaling.send(message)
        except WebSocketError:
            # A server that says why and then hangs up: its reason, not the closed socket.
            # The reason may still be on its way from the reader thread.
            await attempt.signaling.drained(1.0)
            if attempt.error is not None:
                raise attempt.error from None
            raise

    def _fail_waiters(self, error: DecartSDKError) -> None:
        for fut in [*self._image_waiters, *(f for q in self._prompt_waiters.values() for f in q)]:
            if not fut.done():
                fut.set_exception(error)

    # -- server messages ---------------------------------------------------

    def _on_message(self, attempt: _Attempt, message: Message) -> None:
        if attempt is not self._attempt or self._closing:
            return
        kind = message["type"]
        handler = getattr(self, "_msg_" + kind.replace("-", "_"), None)
        if handler is None:
            self._warn_once(kind, "ignoring a signaling message of unknown type %r", kind)
            return
        try:
            handler(attempt, message)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._warn_once(
                ("malformed", kind), "ignoring a malformed %r message (%s)", kind, repr(exc)
            )

    def _warn_once(self, key: object, text: str, *args: object) -> None:
        # A hostile or buggy server could flood the log; one line per kind of junk.
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)

    def _msg_answer(self, attempt: _Attempt, message: Message) -> None:
        sdp = message["sdp"]
        if not isinstance(sdp, str):
            raise TypeError("sdp is not text")
        if not attempt.answer.done():
            attempt.answer.set_result(sdp)

    def _msg_ice_candidate(self, attempt: _Attempt, message: Message) -> None:
        candidate = peer.parse_candidate(message.get("candidate"))
        if candidate is None:
            return
        pc = attempt.pc
        if pc is not None and pc.remoteDescription is not None:
            task = asyncio.ensure_future(pc.addIceCandidate(candidate))
            task.add_done_callback(_log_failure)
        else:
            attempt.candidates.append(candidate)

    def _msg_session_id(self, attempt: _Attempt, message: Message) -> None:
        session_id = message["session_id"]
        if not isinstance(session_id, str):
            raise TypeError("session_id is not text")
        self.session_id = session_id
        self.server_ip = message.get("server_ip")
        port = message.get("server_port")
        self.server_port = port if isinstance(port, int) else None

    def _msg_prompt_ack(self, attempt: _Attempt, message: Message) -> None:
        prompt = message["prompt"]
        waiters = self._prompt_waiters.get(prompt)
        if waiters:
            self._settle(waiters.popleft(), message, f"the prompt {prompt!r}")

    def _msg_set_image_ack(self, attempt: _Attempt, message: Message) -> None:
        if self._image_waiters:
            self._settle(self._image_waiters.popleft(), message, "the image")

    @staticmethod
    def _settle(fut: asyncio.Future[None], message: Message, what: str) -> None:
        if fut.done():
            return
        if message.get("success") is True:
            fut.set_result(None)
        else:
            reason = message.get("error") or "no reason given"
            fut.set_exception(ServerError(f"the server rejected {what}: {reason}", data=message))

    def _msg_generation_started(self, attempt: _Attempt, message: Message) -> None:
        attempt.generating = True
        if attempt.established:
            self._set_state(GENERATING)

    def _msg_generation_tick(self, attempt: _Attempt, message: Message) -> None:
        seconds = message["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError("seconds is not a number")
        self._emit("tick", int(seconds))

    def _msg_generation_ended(self, attempt: _Attempt, message: Message) -> None:
        log.debug("generation ended: %s", message.get("reason"))

    def _msg_ready(self, attempt: _Attempt, message: Message) -> None:
        log.debug("server ready")

    def _msg_error(self, attempt: _Attempt, message: Message) -> None:
        text = message.get("error")
        error = server_error(text if isinstance(text, str) and text else "unknown server error")
        if not attempt.established:
            attempt.fail(error)
            self._fail_waiters(error)
            return
        self._fail_waiters(error)
        self._emit("error", error)
        if is_permanent(error.message):
            self._finish(error)

    # -- the peer connection -----------------------------------------------

    def _on_pc_state(self, attempt: _Attempt) -> None:
        if attempt is not self._attempt or attempt.pc is None:
            return
        state = attempt.pc.connectionState
        if state == "connected":
            if not attempt.connected.done():
                attempt.connected.set_result(None)
        elif state in ("failed", "closed"):
            self._on_lost(attempt, f"the peer connection {state}", None)

    def _on_track(self, attempt: _Attempt, track: MediaStreamTrack) -> None:
        source = track
        if self.options.wants_remote_stream:
            attempt.relay = attempt.relay or MediaRelay()
            source = attempt.relay.subscribe(track, buffered=False)
            self._emit("remote_stream", attempt.relay.subscribe(track))
        pump = self._pump_video(source) if track.kind == "video" else self._pump_audio(source)
        attempt.tasks.append(asyncio.ensure_future(pump))

    async def _pump_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.hub.publish(frame)

    async def _pump_audio(self, track: MediaStreamTrack) -> None:
        # Always drained: aiortc queues unread remote media without bound.
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if self._on_audio is not None:
                    self._on_audio(frame)

    # -- losing and regaining the connection --------------------------------

    def _on_lost(self, attempt: _Attempt, what: str, exc: BaseException | None) -> None:
        if attempt is not self._attempt or self._closing or self.error is not None:
            return
        if not attempt.established:
            kind = ICEError if "peer" in what else WebSocketError
            attempt.fail(kind(f"{what} during connect", cause=exc))
            return
        if self._reconnect_task is not None:
            return
        error = WebSocketError(f"{what}", cause=exc)
        if not self.options.reconnect:
            self._finish(error)
            return
        log.info("%s; reconnecting", what)
        self._reconnect_task = asyncio.ensure_future(self._reconnect(error))

    async def _reconnect(self, error: DecartSDKError) -> None:
        self._set_state(RECONNECTING)
        self._fail_waiters(WebSocketError("the connection was lost before the server answered"))
        await self._drop_attempt()
        delay = RECONNECT_FIRST_DELAY
        for number in range(1, RECONNECT_ATTEMPTS + 1):
            await asyncio.sleep(delay)
            try:
                await self._connect_once()
            except DecartSDKError as exc:
                error = exc
                await self._drop_attempt()
                log.info("reconnect attempt %d failed: %s", number, exc.message)
                if is_permanent(exc.message):
                    break
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            self.reconnects += 1
            self._reconnect_task = None
            return
        self._reconnect_task = None
        self._emit("error", error)
        self._finish(error)

    def _finish(self, error: DecartSDKError) -> None:
        """The session is over for good: nothing is retried, consumers learn why."""
        self.error = error
        self._fail_waiters(error)
        self.hub.close(error)
        self._set_state(DISCONNECTED)
        self._drop_attempt()

    def _drop_attempt(self) -> asyncio.Future[None]:
        """Take the current attempt down; close() waits for every teardown begun.

        The teardown is a task of its own so that a cancelled caller (Ctrl-C
        during connect) cannot leave it half done behind close()'s back.
        """
        attempt, self._attempt = self._attempt, None
        task = asyncio.ensure_future(self._tear_down(attempt))
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)
        return asyncio.shield(task)

    async def _tear_down(self, attempt: _Attempt | None) -> None:
        if attempt is None:
            return
        attempt.fail(WebSocketError("the connection was closed"))
        for task in attempt.tasks:
            task.cancel()
        if attempt.pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(attempt.pc.close(), 1.0)
        if attempt.signaling is not None:
            await asyncio.to_thread(attempt.signaling.close)
        await asyncio.gather(*attempt.tasks, return_exceptions=True)
        # Our handlers on the peer hold the attempt: a cycle, freed only by the cyclic GC.
        if attempt.pc is not None:
            attempt.pc.remove_all_listeners()
        attempt.pc = attempt.signaling = attempt.relay = None
        attempt.tasks.clear()
        if _malloc_trim is not None:
            await asyncio.to_thread(_malloc_trim, 0)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail_waiters(SignalingError("the client was closed"))
        self._drop_attempt()
        await asyncio.gather(*self._teardowns, return_exceptions=True)
        self.hub.close()
        self._set_state(DISCONNECTED)


# glibc raises its mmap threshold after the first large free; frame-sized buffers then come
# from the heap, and what a torn-down connection freed in its middle is not handed back by
# itself: benchmarks.soak grew 74 MB over 9 reconnects. After a teardown we hand it back.
try:
    _malloc_trim: Callable[[int], int] | None = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError, TypeError):  # not glibc
    _malloc_trim = None


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not add a remote ICE candidate: %s", task.exception())
