"""The realtime session's state machine: connect, requests, states, reconnect (async core).

Pure asyncio; it knows nothing of threads. The control WebSocket
(`signaling`) is the session's own; media is a transport's
(`transports`). The session reports to its owner through one
``emit(event, value)`` callable with the events of [`signals`][decart_sync.signals].

One `Attempt` holds what a single connection owns (the
WebSocket and the media transport); a reconnect throws it away and builds
another, while the session's own state (latest prompt and image, pending
acks, the output hub) carries over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from .._portal import Deadline, Expired, within
from ..errors import (
    DecartSDKError,
    ICEError,
    RejectedError,
    ServerError,
    SignalingError,
    TimeoutError_,
    WebSocketError,
    server_error,
)
from ..metrics.quality import QualityMeter, QualityReport, Sample, Thresholds
from ..metrics.rates import Latencies, NetworkStats
from ..models import ModelDefinition
from ..signals import (
    CONNECTION_CHANGE,
    CONNECTION_QUALITY,
    ERROR,
    GENERATION_ENDED,
    GENERATION_TICK,
    QUEUE_POSITION,
    REMOTE_STREAM,
    Event,
)
from . import messages, transports
from .acks import Acks
from .attempt import Attempt
from .messages import UNSET, Desired, Message
from .tracks import FrameHub
from .transports import MediaHooks, MediaSettings

log = logging.getLogger(__name__)

CONNECTING, CONNECTED, GENERATING = "connecting", "connected", "generating"
DISCONNECTED, RECONNECTING = "disconnected", "reconnecting"
QUEUED = "queued"  # LiveKit: waiting in the service's queue for a model

# The official SDKs' retry (JS 0.1.20 REALTIME_CONFIG.session.retry: p-retry with 5
# retries, 1 s doubling to 10 s), for the first connect and for reconnects alike.
RECONNECT_ATTEMPTS = 5
RECONNECT_FIRST_DELAY = 1.0
RECONNECT_MAX_DELAY = 10.0
QUALITY_INTERVAL = 1.0  # seconds between connection-quality samples (the JS SDK's stats)


def backoff() -> Iterator[float]:
    """The pauses before each retry: 1, 2, 4, 8, 10 s."""
    delay = RECONNECT_FIRST_DELAY
    for _ in range(RECONNECT_ATTEMPTS):
        yield delay
        delay = min(delay * 2, RECONNECT_MAX_DELAY)


Emit = Callable[[Event, Any], None]

# generation_ended reasons that end a LiveKit session, and what they are to the user.
ENDINGS: dict[str, tuple[type[DecartSDKError], str]] = {
    "insufficient_credits": (ServerError, "the account has run out of credits"),
    "moderation_violation": (ServerError, "the session was stopped for a moderation violation"),
    "timeout": (TimeoutError_, "the service ended the session: it reached its time limit"),
    "error": (ServerError, "the service ended the session after an internal error"),
}


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
        model = options.model
        self._quality = QualityMeter(Thresholds().for_model(model.width, model.height, model.fps))
        self._quality_task: asyncio.Task[None] | None = None
        # Sampled only once asked for: the media library's stats each second cost the
        # loop enough to thin the output on a busy 2-core machine (tests/e2e/test_network_faults).
        self.quality_wanted = False
        self.started_at: float | None = None  # loop time connect() began, for ttff
        self.first_frame_at: float | None = None
        self.g2g = Latencies()  # glass to glass, from LiveKit frame timing
        self._last_stamp: int | None = None
        self._teardowns: set[asyncio.Task[None]] = set()

    # -- states ------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state == CONNECTED and self.state == GENERATING:
            return  # generating is sticky until a disconnect
        if state != self.state:
            self.state = state
            self._state_changed.set()
            self._state_changed = asyncio.Event()
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
        self.started_at = asyncio.get_running_loop().time()
        self._set_state(CONNECTING)
        try:
            await self._connect_retrying(deadline)
        except BaseException:
            await self._drop_attempt()
            self._set_state(DISCONNECTED)
            raise

    async def _connect_retrying(self, deadline: Deadline) -> None:
        delays = backoff()
        failed: DecartSDKError | None = None  # the last attempt's reason, for a timeout
        while True:
            try:
                await self._connect_once(deadline, failed)
                return
            except DecartSDKError as exc:
                delay = next(delays, None)
                remaining = deadline.remaining()
                if _final(exc) or delay is None or (remaining is not None and remaining <= delay):
                    raise
                failed = exc
                await self._drop_attempt()
                log.info("connecting failed (%s); trying again in %g s", exc.message, delay)
                await asyncio.sleep(delay)

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
                f"could not connect to {self.model.name}: {exc!r}", cause=exc
            ) from exc
        finally:
            if self.state == QUEUED:  # failed while queued: back to (re)connecting
                self._set_state(self._before_queue)
        attempt = self._attempt
        assert attempt is not None
        attempt.established = True
        self._set_state(GENERATING if attempt.generating else CONNECTED)
        if self.quality_wanted:
            self._watch_quality(attempt)

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

    # -- connection quality ------------------------------------------------

    @property
    def connection_quality(self) -> QualityReport | None:
        return self._quality.current

    def want_quality(self) -> None:
        """Start the verdict (loop thread): a handler or a reader wants it."""
        if self.quality_wanted:
            return
        self.quality_wanted = True
        attempt = self._attempt
        if attempt is not None and attempt.established and not self._closing:
            self._watch_quality(attempt)

    def _watch_quality(self, attempt: Attempt) -> None:
        """A verdict per connection, from its first second on (the JS SDK's reset)."""
        if self._quality_task is not None:
            self._quality_task.cancel()
        self._quality.reset()
        self._quality_task = asyncio.ensure_future(self._sample_quality(attempt))

    async def _sample_quality(self, attempt: Attempt) -> None:
        while attempt is self._attempt and not self._closing:
            await asyncio.sleep(QUALITY_INTERVAL)
            if attempt is not self._attempt:
                return
            try:
                net = await attempt.stats()
            except Exception as exc:  # a connection going down under us: next time
                log.debug("no stats for the quality verdict: %r", exc)
                continue
            sample = Sample(
                rtt_ms=net.rtt_ms,
                fraction_lost=net.fraction_lost_out,
                available_outgoing_kbps=net.available_out_kbps,
                fps=self.hub.rate.rate(),
                g2g_ms=self.g2g.percentiles()[0],
                ttff_ms=self.ttff_ms,
                limitation=net.limitation,
            )
            report = self._quality.update(sample)
            if report is not None:
                self._emit(CONNECTION_QUALITY, report.as_dict())

    def _video(self, frame: Any) -> None:
        if self.first_frame_at is None:
            self.first_frame_at = asyncio.get_running_loop().time()
        stamp = frame.opaque
        if isinstance(stamp, int) and stamp != self._last_stamp:  # each input's first output
            self._last_stamp = stamp
            self.g2g.add(time.time() * 1000 - stamp / 1000)
        self.hub.publish(frame)

    @property
    def ttff_ms(self) -> float | None:
        """From the start of connect() to the first output frame."""
        if self.started_at is None or self.first_frame_at is None:
            return None
        return round((self.first_frame_at - self.started_at) * 1000, 1)

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
        handler = getattr(self, "_msg_" + kind.replace("-", "_"), None)
        try:
            if attempt.media is not None and attempt.media.handle(message):
                return
            if handler is None:
                self._warn_once(kind, "ignoring a signaling message of unknown type %r", kind)
            else:
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

    def _msg_prompt_ack(self, attempt: Attempt, message: Message) -> None:
        self._acks.settle(message)

    _msg_set_image_ack = _msg_prompt_ack

    def _msg_generation_started(self, attempt: Attempt, message: Message) -> None:
        self._generating(attempt)

    def _generating(self, attempt: Attempt) -> None:
        attempt.generating = True
        if attempt.established:
            self._set_state(GENERATING)

    def _msg_generation_tick(self, attempt: Attempt, message: Message) -> None:
        """A tick also means generating, as in the JS SDK (a lost generation_started)."""
        seconds = _seconds(message["seconds"])
        self._generating(attempt)
        self._emit(GENERATION_TICK, seconds)

    def _msg_generation_ended(self, attempt: Attempt, message: Message) -> None:
        """Reported for every reason, as the JS SDK's ``generationEnded``. Over LiveKit the
        reasons that end the session (docs/protocol.md, "Messages from the server") end it
        with their codes; on plain WebRTC it is sent unreliably, so there it only informs."""
        seconds = message.get("seconds")
        reason = message.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise TypeError("reason is not text")
        ended = {"seconds": None if seconds is None else _seconds(seconds), "reason": reason}
        log.debug("generation ended: %s", reason)
        self._emit(GENERATION_ENDED, ended)
        if self.options.transport == "livekit" and reason in ENDINGS:
            kind, text = ENDINGS[reason]
            self._ended(attempt, kind(f"{text} ({reason})", data=message))

    def _msg_ready(self, attempt: Attempt, message: Message) -> None:
        log.debug("server ready")

    def _msg_error(self, attempt: Attempt, message: Message) -> None:
        text = message.get("error")
        error = server_error(text if isinstance(text, str) and text else "unknown server error")
        self._acks.fail_all(error)
        if not attempt.established:
            attempt.fail(error)
            return
        self._emit(ERROR, error)
        if error.permanent:
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

    def _ended(self, attempt: Attempt, error: DecartSDKError) -> None:
        """The service ended the session for good (e.g. out of credits): no reconnect."""
        if attempt is not self._attempt or self._closing or self.error is not None:
            return
        self._acks.fail_all(error)
        if not attempt.established:
            attempt.fail(error)
            return
        self._emit(ERROR, error)
        self._finish(error)

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
        self._acks.fail_all(WebSocketError("the connection was lost before the server answered"))
        await self._drop_attempt()
        for number, delay in enumerate(backoff(), 1):
            await asyncio.sleep(delay)
            try:
                await self._connect_once(Deadline(self.options.connect_timeout))
            except DecartSDKError as exc:
                error = exc
                await self._drop_attempt()
                log.info("reconnect attempt %d failed: %s", number, exc.message)
                if _final(exc):
                    break
                continue
            self.reconnects += 1
            self._reconnect_task = None
            return
        self._reconnect_task = None
        self._emit(ERROR, error)
        self._finish(error)

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
        if self._quality_task is not None:
            self._quality_task.cancel()
            await asyncio.gather(self._quality_task, return_exceptions=True)
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._acks.fail_all(SignalingError("the client was closed"))
        self._drop_attempt()
        await asyncio.gather(*self._teardowns, return_exceptions=True)
        self.hub.close()
        self._set_state(DISCONNECTED)


def _final(error: DecartSDKError) -> bool:
    """Trying again cannot help: a permanent error, or the same prompt or image refused."""
    return error.permanent or isinstance(error, RejectedError)


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("seconds is not a number")
    return int(value)


async def _tear_down(attempt: Attempt | None) -> None:
    if attempt is not None:
        await attempt.tear_down()
