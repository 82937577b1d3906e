"""The realtime session's state machine: connect, requests, states, reconnect (async core).

Pure asyncio; it knows nothing of threads. The control WebSocket is the
session's own (``signaling``), media a transport's (``transports``); what the
service's messages mean is ``server_messages``, when to try again ``retry``,
and the figures about the session's health its ``observer``. The session
reports to its owner through one ``emit(event, value)`` callable.

One ``Attempt`` holds what a single connection owns (the WebSocket and the
media transport); a reconnect throws it away and builds another, while the
session's own state (latest prompt and image, pending acks, the output hub)
carries over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import attrs

from .._portal import Deadline, Expired, within
from ..errors import (
    DecartSDKError,
    ICEError,
    SignalingError,
    TimeoutError_,
    WebSocketError,
    local_fault,
)
from ..metrics.rates import NetworkStats
from ..models import ModelDefinition
from ..signals import (
    CONNECTION_CHANGE,
    ERROR,
    GENERATION_ENDED,
    GENERATION_TICK,
    QUEUE_POSITION,
    REMOTE_STREAM,
    Event,
)
from . import messages, retry, transports
from .acks import Acks
from .attempt import Attempt
from .frame_hub import FrameHub
from .messages import UNSET, Desired, Message
from .observer import Observer
from .server_messages import Ack, Ended, Failed, Generating, interpret
from .transports import MediaHooks, MediaSettings

log = logging.getLogger(__name__)

CONNECTING, CONNECTED, GENERATING = "connecting", "connected", "generating"
DISCONNECTED, RECONNECTING = "disconnected", "reconnecting"
QUEUED = "queued"  # LiveKit: waiting in the service's queue for a model

Emit = Callable[[Event, Any], None]

@attrs.define
class SessionOptions:
    model: ModelDefinition
    url: str | None  # the control WebSocket; None for a LiveKit viewer, which has none
    media: MediaSettings
    transport: str = "webrtc"
    subscribe: bool = False
    verify_tls: bool = True
    secret: str | None = None
    connect_timeout: float = 30.0
    reconnect: bool = True
    origin: str | None = None  # the control WebSocket's Origin header (origin-scoped tokens)
    queue_timeout: float | None = None  # bounds time in the service's queue; None: no bound


class Session:
    def __init__(
        self,
        options: SessionOptions,
        *,
        hub: FrameHub,
        emit: Emit,
        desired: Desired,
        on_audio: Callable[[Any], None] = lambda frame: None,
        quality_wanted: bool = False,
    ) -> None:
        self.options = options
        self.model = options.model
        self.hub = hub
        self.desired = desired
        self._emit = emit
        self._on_audio = on_audio
        self.state = DISCONNECTED
        self.session_id: str | None = None
        self.subscribe_token: str | None = None
        self.reconnects = 0
        self.error: DecartSDKError | None = None
        self._attempt: Attempt | None = None
        self._acks = Acks()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._state_changed = asyncio.Event()
        self._closing = False
        self._warned: set[object] = set()
        self._before_queue = CONNECTING
        self.observer = Observer(
            options.model, emit, self.media_stats, hub.rate.rate, quality_wanted=quality_wanted
        )
        self._teardowns: set[asyncio.Task[None]] = set()

    # -- states ------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state == CONNECTED and self.state == GENERATING:
            return  # generating is sticky until a disconnect
        if state != self.state:
            self.state = state
            self._state_changed.set()
            self._state_changed = asyncio.Event()
            self.observer.state(state)
            self._emit(CONNECTION_CHANGE, state)

    async def wait_usable(self) -> None:
        """Until the session can take requests; raises if it is over."""
        while self.state not in (CONNECTED, GENERATING):
            if self.state == DISCONNECTED:
                raise self.error or WebSocketError("the session is disconnected")
            await self._state_changed.wait()

    # -- connect -----------------------------------------------------------

    async def connect(self, deadline: Deadline) -> None:
        """The first connection, retried as the official SDKs do while ``deadline`` lasts;
        a permanent error fails at once. Any failure tears everything down and raises."""
        self._set_state(CONNECTING)
        try:
            await retry.within_deadline(
                functools.partial(self._connect_once, deadline), self._drop_attempt, deadline
            )
        except BaseException:
            await self._drop_attempt()
            self._set_state(DISCONNECTED)
            raise

    async def _connect_once(self, deadline: Deadline, failed: DecartSDKError | None = None) -> None:
        try:
            await within(self._run_attempt(deadline), deadline)
        except Expired:
            why = "" if failed is None else f" (the attempt before failed: {failed.message})"
            raise TimeoutError_(
                f"could not connect to {self.model.name} within {deadline.timeout} s{why}",
                cause=failed,
            ) from None
        except DecartSDKError:
            raise
        except Exception as exc:
            # Whatever the media library raised: the caller, and the reconnect loop, need a code.
            raise SignalingError(
                f"could not connect to {self.model.name}: {exc!r}",
                cause=exc,
                permanent=local_fault(exc),
            ) from exc
        finally:
            if self.state == QUEUED:  # failed while queued: back to (re)connecting
                self._set_state(self._before_queue)
        attempt = self._attempt
        assert attempt is not None
        attempt.established = True
        self._set_state(GENERATING if attempt.generating else CONNECTED)

    async def _run_attempt(self, deadline: Deadline) -> None:
        attempt = self._attempt = Attempt()
        options = self.options
        hooks = MediaHooks(
            send=attempt.send,
            video=self._video,
            audio=self._on_audio,
            lost=functools.partial(self._on_lost, attempt, ICEError),
            remote_stream=functools.partial(self._emit, REMOTE_STREAM),
            identify=self._identify,
            queued=functools.partial(self._queued, attempt, deadline),
        )
        media = attempt.media = transports.create(options.transport, options.media, hooks)
        if options.url is not None:
            await attempt.open_signaling(
                options.url,
                on_message=functools.partial(self._on_message, attempt),
                on_closed=functools.partial(
                    self._on_lost, attempt, WebSocketError, "the signaling WebSocket closed"
                ),
                verify_tls=options.verify_tls,
                secret=options.secret,
                timeout=deadline.remaining(),
                origin=options.origin,
            )
        initial = None if options.subscribe else messages.initial(self.desired)
        passthrough = not options.subscribe and initial is None
        await media.join(passthrough)
        self._left_queue(attempt)
        if initial is not None:
            await self._request(attempt, initial)
        elif passthrough and media.passthrough_first:
            await self._request(attempt, messages.passthrough())
        await media.start()
        if passthrough and not media.passthrough_first:
            await self._request(attempt, messages.passthrough())

    def _video(self, frame: Any) -> None:
        self.observer.frame(frame)
        self.hub.publish(frame)

    # -- requests after connect --------------------------------------------

    async def set_prompt(self, text: str, enhance: bool) -> None:
        await self.wait_usable()
        await self._request(self._attempt, messages.prompt(text, enhance))
        self.desired.prompt, self.desired.enhance = text, enhance

    async def set_image(
        self, image: str | None, prompt: str | None = UNSET, enhance: bool | None = None
    ) -> None:
        """``set_image`` message; ``prompt`` left unset keeps the server's prompt."""
        await self.wait_usable()
        message = messages.set_image(image, prompt, enhance)
        await self._request(self._attempt, message)
        self.desired.image = image
        if prompt is not UNSET:
            self.desired.prompt = prompt
            self.desired.enhance = message["enhance_prompt"]

    async def _request(self, attempt: Attempt | None, message: Message) -> None:
        """Send ``message`` and wait for its ack."""
        if attempt is None or attempt.signaling is None:
            raise WebSocketError("the session is not connected")
        fut = self._acks.expect(message)
        try:
            await attempt.send(message)
            await fut
        finally:
            self._acks.forget(message, fut)

    async def media_stats(self) -> NetworkStats:
        """The current connection's network figures; all unknown between connections."""
        attempt = self._attempt
        return NetworkStats() if attempt is None else await attempt.stats()

    async def media_report(self) -> list[Any]:
        """The current connection's media-library stats of what it sends; [] between."""
        attempt = self._attempt
        return [] if attempt is None else await attempt.sent_report()

    # -- server messages ---------------------------------------------------

    def _on_message(self, attempt: Attempt, message: Message) -> None:
        if attempt is not self._attempt or self._closing:
            return
        kind = message["type"]
        try:
            if attempt.media is not None and attempt.media.handle(message):
                return
            meaning = interpret(message, self.options.transport)
            if isinstance(meaning, Ack):
                self._acks.settle(message)
            elif isinstance(meaning, Generating):
                attempt.generating = True
                if attempt.established:
                    self._set_state(GENERATING)
                if meaning.seconds is not None:
                    self._emit(GENERATION_TICK, meaning.seconds)
            elif isinstance(meaning, Ended):
                log.debug("generation ended: %s", meaning.report["reason"])
                self._emit(GENERATION_ENDED, meaning.report)
                if meaning.error is not None:
                    self._failed(attempt, meaning.error, final=True)
            elif isinstance(meaning, Failed):
                self._failed(attempt, meaning.error, final=meaning.error.permanent)
            elif not meaning.known:
                self._warn_once(kind, "ignoring a signaling message of unknown type %r", kind)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._warn_once(
                ("malformed", kind), "ignoring a malformed %r message (%s)", kind, repr(exc)
            )

    def _warn_once(self, key: object, text: str, *args: object) -> None:
        # A hostile or buggy server could flood the log; one line per kind of junk.
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)

    def _failed(self, attempt: Attempt, error: DecartSDKError, *, final: bool) -> None:
        """The service reported ``error``; ``final``: the session is over for it, no reconnect
        (e.g. out of credits)."""
        if self.error is not None:
            return
        self._acks.fail_all(error)
        if not attempt.established:
            attempt.fail(error)
            return
        self._emit(ERROR, error)
        if final:
            self._finish(error)

    # -- what media tells the session ---------------------------------------

    def _identify(self, session_id: str | None, subscribe_token: str | None) -> None:
        self.session_id, self.subscribe_token = session_id, subscribe_token

    def _queued(self, attempt: Attempt, deadline: Deadline, position: int, size: int) -> None:
        """Time in the queue is not connect time: ``queue_timeout`` bounds it instead."""
        if attempt is not self._attempt or attempt.established:
            return
        if not attempt.queued:
            self._before_queue = self.state  # connecting or reconnecting, for after
            attempt.enter_queue(deadline, self.options.queue_timeout)
        self._set_state(QUEUED)
        self._emit(QUEUE_POSITION, {"position": position, "queue_size": size})

    def _left_queue(self, attempt: Attempt) -> None:
        if attempt.queued:
            attempt.leave_queue()
            if self.state == QUEUED:
                self._set_state(self._before_queue)

    # -- losing and regaining the connection --------------------------------

    def _on_lost(
        self,
        attempt: Attempt,
        kind: type[DecartSDKError],
        what: str,
        exc: BaseException | None,
    ) -> None:
        """``kind``: what failing to connect over this loss is (media: ICE, else WebSocket)."""
        if attempt is not self._attempt or self._closing or self.error is not None:
            return
        if not attempt.established:
            attempt.fail(kind(f"{what} during connect", cause=exc, permanent=local_fault(exc)))
            return
        if self._reconnect_task is not None:
            return
        if not self.options.reconnect:
            self._finish(WebSocketError(what, cause=exc))
            return
        log.info("%s; reconnecting", what)
        self._reconnect_task = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        self._set_state(RECONNECTING)
        self._acks.fail_all(WebSocketError("the connection was lost before the server answered"))
        await self._drop_attempt()
        failed = await retry.after_loss(
            lambda: self._connect_once(Deadline(self.options.connect_timeout)), self._drop_attempt
        )
        self._reconnect_task = None
        if failed is None:
            self.reconnects += 1
            return
        self._emit(ERROR, failed)
        self._finish(failed)

    def _finish(self, error: DecartSDKError) -> None:
        """The session is over for good: nothing is retried, consumers learn why."""
        self.error = error
        self._acks.fail_all(error)
        self.hub.close(error)
        self._set_state(DISCONNECTED)
        self._drop_attempt()

    def _drop_attempt(self) -> asyncio.Future[None]:
        """Take the current attempt down; close() waits for every teardown begun.

        The teardown is a task of its own so that a cancelled caller (Ctrl-C
        during connect) cannot leave it half done behind close()'s back.
        """
        attempt, self._attempt = self._attempt, None
        task = asyncio.ensure_future(_tear_down(attempt))
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)
        return asyncio.shield(task)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        await self.observer.close()
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._acks.fail_all(SignalingError("the client was closed"))
        self._drop_attempt()
        await asyncio.gather(*self._teardowns, return_exceptions=True)
        self.hub.close()
        self._set_state(DISCONNECTED)


async def _tear_down(attempt: Attempt | None) -> None:
    if attempt is not None:
        await attempt.tear_down()
