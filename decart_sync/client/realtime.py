"""The live session the user holds: RealtimeClient.

It sends frames and prompts, hands back numpy frames and audio, reports state,
stats and events, and closes. Everything asynchronous happens in the session
(``realtime.session``) on the client's own loop thread; this module only
validates, converts and waits (always with a deadline, always interruptible).
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import _process, signals
from .._portal import Deadline, Portal
from ..errors import (
    DecartSDKError,
    InvalidInputError,
    InvalidOptionsError,
    TimeoutError_,
    WebSocketError,
)
from ..options import check_prompt
from ..realtime import images
from ..realtime.audio import AvatarAudio, decode_audio
from ..realtime.frame_hub import FrameHub, FrameIterator
from ..realtime.messages import UNSET, Desired
from ..realtime.session import CONNECTED, GENERATING, Session, SessionOptions
from ..realtime.tracks import LatestFrame
from ..realtime.transports import INPUT_PIXELS
from ..realtime.transports.loopback import is_loopback_url
from ..sources import frames_of
from .feeding import Feeding
from .output_audio import AudioHub, AudioIterator
from .stats import Figures

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0  # close() returns within this (README: "about 2 s"), whatever happens
# Of it, kept back from the session's close for stopping the loop (which cancels
# what is left on it) and joining the client's threads.
CLOSE_RESERVE = 0.5


class RealtimeClient:
    """A live session. Thread-safe; every blocking method takes ``timeout=``."""

    def __init__(
        self,
        session: SessionOptions,
        desired: Desired,
        pixel_format: str,
        *,
        on_remote_stream: Callable[[Any], Any] | None = None,
        stats_interval: float | None = None,
        handlers: Sequence[tuple[signals.Event, Callable[[Any], Any]]] = (),
        mirror: bool = False,
    ) -> None:
        self.model = session.model
        self.pixel_format = pixel_format
        self._hub = FrameHub(self.model, pixel_format)
        self._audio_out = AudioHub(self._hub)
        takes_video = not (session.subscribe or self.model.is_avatar)
        pixels = INPUT_PIXELS[session.transport]
        self._input = (
            LatestFrame(self.model, pixel_format, pixels, mirror=mirror) if takes_video else None
        )
        self._audio = AvatarAudio() if self.model.is_avatar and not session.subscribe else None
        session.media.input = self._input
        session.media.audio = self._audio.track if self._audio is not None else None
        self._portal = Portal()
        self._events = signals.Dispatcher(self)
        self._handlers = signals.Handlers(self)
        if on_remote_stream is not None:
            handlers = [*handlers, (signals.REMOTE_STREAM, on_remote_stream)]
        for event, handler in handlers:  # the connect's own: called as events happen
            self._events.early(self._handlers.add(event, handler))
        self._feeding = (
            Feeding(self._input.put, self.model.fps, self._source_failed)
            if self._input is not None
            else None
        )
        self._read_seen = 0
        self._closed = False
        self._close_lock = threading.Lock()
        session_wants_quality = any(e is signals.CONNECTION_QUALITY for e, _ in handlers)
        self._session = Session(
            session,
            hub=self._hub,
            emit=self._events.emit,  # queued only: user code never runs on the loop
            desired=desired,
            on_audio=self._count_audio,
            quality_wanted=session_wants_quality,
        )
        self._figures = Figures(
            self._session, self._portal, self._hub, self._audio_out, self._input, self._audio
        )
        if stats_interval is not None:
            self._figures.tick(stats_interval, functools.partial(self._events.emit, signals.STATS))

    def _open(self, frames: Callable[[], Iterator[Any]] | None, deadline: Deadline) -> None:
        if is_loopback_url(self._session.options.url or ""):
            _process.allow_loopback_candidates()
        self._portal.start()
        atexit.register(self.close)
        started = time.monotonic()
        try:
            # the deadline pauses while the session waits in the service's queue
            self._portal.call(self._session.connect, deadline, timeout=deadline)
        except BaseException as exc:
            self.close()
            if isinstance(exc, TimeoutError) and not isinstance(exc, DecartSDKError):
                raise TimeoutError_(f"could not connect within {deadline.timeout} s") from None
            raise  # the session's own reason (a coded TimeoutError_ among them), or Ctrl-C
        self._figures.connect_seconds = round(time.monotonic() - started, 3)
        if frames is not None and self._feeding is not None:
            self._feeding.start(frames)
        self._events.caught_up()  # the handlers given to connect() have seen "connected"
        self._events.release()  # events of the connect reach handlers registered after it
        self._figures.start()

    # -- sending -----------------------------------------------------------

    def set_source(self, source: Any, *, timeout: float = 2.0) -> None:
        """Swap the input mid-session (the JS SDK's ``replaceVideoTrack``): ``source`` is
        anything ``connect()`` takes; None stops reading one (push with ``send_frame``).

        A bad source raises before anything changes. The old source's thread is
        stopped, waiting at most ``timeout`` s for a ``read()`` in progress; the
        session goes on meanwhile with the old source's last frame.
        """
        if self._feeding is None:
            raise InvalidOptionsError(f"{self.model.name} clients send no video frames")
        self._check_open()
        self._feeding.start(None if source is None else frames_of(source), timeout)

    def send_frame(self, frame: np.ndarray, *, copy: bool = True) -> float:
        """Queue one input frame (any size, uint8, in ``pixel_format``); never blocks.

        The newest frame wins: the track sends whatever is latest at the model's fps.
        The latest frame is kept (for repeats while no new one comes, and for a
        reconnect). A frame that needs no scaling or conversion is kept as a copy;
        ``copy=False`` keeps the array itself, for a caller that never writes to
        an array once sent (e.g. a fresh array per frame): one copy fewer.

        Returns the frame's capture time (``time.time()``): over LiveKit the output
        made from it says so (``frames(with_info=True)``'s ``source_time``).
        """
        if self._input is None:
            raise InvalidOptionsError(f"{self.model.name} clients send no video frames")
        self._check_open()
        return self._input.put(frame, copy=copy)

    def set_prompt(self, prompt: str, *, enhance: bool = True, timeout: float = 15.0) -> None:
        """Change the prompt; returns once the server acknowledged it."""
        check_prompt(prompt)
        self._call(Deadline(timeout), "the prompt", self._session.set_prompt, prompt, bool(enhance))

    def set(
        self,
        *,
        prompt: str | None = None,
        enhance: bool = True,
        image: Any = None,
        timeout: float = 30.0,
    ) -> None:
        """Set prompt and reference image together; the image is cleared if not given."""
        if prompt is None and image is None:
            raise InvalidInputError("set() needs a prompt, an image, or both")
        self._set_image(image, prompt, enhance, timeout, "the new state")

    def set_image(
        self,
        image: Any,
        *,
        prompt: str | None = None,
        enhance: bool | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Set (or, with ``None``, clear) the reference image; the prompt too if given.

        An uploaded file's ``"file_..."`` id (``DecartClient.files``) goes as a reference."""
        self._set_image(image, prompt, enhance, timeout, "the image")

    def _set_image(
        self, image: Any, prompt: str | None, enhance: bool | None, timeout: float, what: str
    ) -> None:
        if prompt is not None:
            check_prompt(prompt)
        deadline = Deadline(timeout)  # one timeout for fetching the image and the ack
        data = None
        if image is not None:
            data = images.to_wire(
                image, pixel_format=self.pixel_format, fetch_timeout=deadline.remaining()
            )
        kept = UNSET if prompt is None else prompt  # unset: the server's prompt stays
        self._call(deadline, what, self._session.set_image, data, kept, enhance)

    def play_audio(
        self, audio: Any, *, sample_rate: int | None = None, timeout: float | None = None
    ) -> None:
        """live_avatar only: play audio through the avatar; returns when it was played."""
        if self._audio is None:
            raise InvalidOptionsError(
                f"play_audio() is only available for live_avatar clients, not {self.model.name}"
            )
        self._check_open()
        pcm = decode_audio(audio, sample_rate)
        if timeout is None:
            timeout = len(pcm) / 48_000 + 30.0
        self._audio.play(pcm, timeout, self._why_over)

    # -- receiving ---------------------------------------------------------

    def frames(self, *, timeout: float | None = None, with_info: bool = False) -> FrameIterator:
        """Iterate output frames (height, width, 3) uint8 in ``pixel_format``.

        Each iterator sees every frame it keeps up with; a slow one skips to the
        newest (``.dropped`` counts the skipped). Ends when the client closes;
        raises the error if the session dies, or at ``timeout`` between frames.
        ``with_info=True`` yields ``(frame, FrameInfo)``: when it arrived and, over
        LiveKit, the capture time of the input it was made from (``source_time``).
        """
        return FrameIterator(self._hub, timeout, with_info)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def read(self, timeout: float | None = None) -> tuple[bool, np.ndarray | None]:
        """Like ``cv2.VideoCapture.read()``: ``(True, frame)`` or ``(False, None)``."""
        got = self._hub.read_after(self._read_seen, timeout)
        if got is None:
            return False, None
        self._read_seen, array = got
        return True, array

    def audio_frames(self, *, timeout: float | None = None) -> AudioIterator:
        """Iterate the service's output audio (live_avatar speaks back) from now on.

        Each item is an [`AudioChunk`][decart_sync.client.output_audio.AudioChunk]:
        ``.samples`` (frames, channels) int16 and ``.sample_rate``. The last
        few seconds are kept for each reader; one that falls further behind
        skips ahead (``.dropped``). Ends when the client closes; raises at
        ``timeout`` between chunks.
        """
        return AudioIterator(self._audio_out, timeout)

    @property
    def latest_frame(self) -> np.ndarray | None:
        frame = self._hub.latest()
        return None if frame is None else self._hub.to_numpy(frame)

    # -- state -------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._session.state

    def get_connection_state(self) -> str:
        return self._session.state

    def is_connected(self) -> bool:
        return self._session.state in (CONNECTED, GENERATING)

    @property
    def session_id(self) -> str | None:
        return self._session.session_id

    @property
    def subscribe_token(self) -> str | None:
        """What a viewer passes to [`subscribe()`][decart_sync.subscribe] to watch this
        session's output."""
        return self._session.subscribe_token

    @property
    def stats(self) -> dict[str, Any]:
        """Figures people can read (docs/stats.md has the table): frames in, sent,
        skipped, received and dropped; rolling fps both ways; time to first frame and
        glass to glass; the media library's network figures (None while unknown, e.g.
        during a reconnect). Waits at most about half a second."""
        return self._figures.snapshot()

    @property
    def connection_quality(self) -> dict[str, Any] | None:
        """The JS SDK's connection-quality verdict, updated every second once connected:
        ``level`` good/fair/poor/critical, ``limiting_factor``, ``warming_up`` and the
        smoothed figures (docs/stats.md); None before the first second. A
        ``connection_quality`` event carries it whenever its level changes."""
        return self._figures.quality()

    def media_report(self, timeout: float = 5.0) -> list[Any]:
        """The media library's own stats of what this client sends, as it gives them:
        LiveKit's ``RtcStats`` of the published tracks, or aiortc's ``getStats()``
        values. [] while not connected. Not figures to rely on (see `stats`):
        for tests and diagnosis. Raises TimeoutError_ after ``timeout`` seconds."""
        return self._figures.media_report(timeout)

    @property
    def source_finished(self) -> bool:
        return self._feeding is not None and self._feeding.finished

    # -- events ------------------------------------------------------------

    def on(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Call ``handler(data)`` on each event: ``connection_change`` (state),
        ``error`` (DecartSDKError), ``generation_tick`` (seconds); JS spellings too."""
        named = signals.named(event)
        self._handlers.add(named, handler)
        if named is signals.CONNECTION_QUALITY:
            self._figures.want_quality()

    def off(self, event: str, handler: Callable[[Any], Any]) -> None:
        self._handlers.remove(signals.named(event), handler)

    def _count_audio(self, frame: Any) -> None:
        self._figures.count_audio()
        self._audio_out.publish(frame)

    def _why_over(self) -> DecartSDKError | None:
        """Why this client can do no more: the session's error, or its closing; else None."""
        if self._closed:
            return self._session.error or WebSocketError("the client was closed")
        return self._session.error

    def _source_failed(self, error: DecartSDKError) -> None:
        self._events.emit(signals.ERROR, error)

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        """Close the session; idempotent, returns within about 2 s whatever the server does.

        One deadline (`CLOSE_TIMEOUT`) covers every step, each taking
        what is left of it; a thread stuck in user code (a source's ``read()``,
        an event handler) is left behind rather than waited for past it.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._figures.closed = True
        atexit.unregister(self.close)
        deadline = Deadline(CLOSE_TIMEOUT)
        left = lambda: deadline.remaining() or 0.0  # noqa: E731
        # Asked to stop now, joined at the end: they end while the session closes.
        feeder = self._feeding.stop_soon() if self._feeding is not None else None
        self._figures.stop(0.0)
        if self._audio is not None:
            self._audio.cancel()
        if self._portal.running and not self._portal.in_loop_thread():
            try:
                self._portal.call(self._session.close, timeout=max(0.0, left() - CLOSE_RESERVE))
            except BaseException as exc:  # closing must finish whatever happened
                log.debug("session close did not finish cleanly: %r", exc)
            self._portal.stop(left())
        self._hub.close()
        self._audio_out.close()
        self._figures.stop(left())  # before the events end: its last stats are delivered
        self._events.stop(left())
        if feeder is not None:
            feeder.stop(left())  # last: only a read() stuck in user code takes long
        self._handlers.clear()

    disconnect = close

    def __enter__(self) -> RealtimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<RealtimeClient model={self.model.name!r} state={self.state!r} "
            f"session_id={self.session_id!r}>"
        )

    # -- helpers -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise WebSocketError("the client is closed")

    def _call(self, deadline: Deadline, what: str, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` on the loop in what is left of ``deadline``."""
        self._check_open()
        try:
            return self._portal.call(func, *args, timeout=deadline.remaining())
        except TimeoutError:
            raise TimeoutError_(
                f"the server did not acknowledge {what} within {deadline.timeout} s"
            ) from None
