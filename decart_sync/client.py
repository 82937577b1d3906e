"""The public blocking client.

Read top to bottom, this is the user's story: ``connect()`` checks the options
and opens a session; the returned :class:`RealtimeClient` sends frames and
prompts, hands back numpy frames, reports events, and closes. Everything
asynchronous happens in :mod:`.session` on the client's own loop thread; this
module only validates, converts and waits (always with a deadline, always
interruptible).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import attrs
import numpy as np

from . import images, signals
from ._ice import allow_loopback_candidates, is_loopback_url
from ._portal import Deadline, Portal
from ._version import __version__
from .audio import AvatarAudio, decode_audio
from .errors import (
    DecartSDKError,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    InvalidOptionsError,
    TimeoutError_,
    WebSocketError,
)
from .models import ModelDefinition, resolve
from .peer import DEFAULT_ICE_SERVERS
from .session import CONNECTED, GENERATING, Desired, Session, SessionOptions
from .sources import Feeder, frames_of
from .subscribe import SubscribeToken, decode_token
from .tracks import PIXEL_FORMATS, FrameHub, FrameIterator, LatestFrame

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api3.decart.ai"
MAX_PROMPT_LENGTH = 1000
CLOSE_TIMEOUT = 2.0


@attrs.define
class InitialState:
    """What the session starts with; ``image`` takes every kind ``set_image`` does."""

    prompt: str | None = None
    enhance: bool = True
    image: Any = None


def connect(
    source: Any = None,
    *,
    model: ModelDefinition | str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    initial_state: InitialState | dict[str, Any] | None = None,
    pixel_format: str = "rgb24",
    timeout: float = 30.0,
    ice_servers: Sequence[str] | None = None,
    customize_offer: Callable[[Any], Any] | None = None,
    on_remote_stream: Callable[[Any], Any] | None = None,
    reconnect: bool = True,
    verify_tls: bool = True,
    integration: str | None = None,
) -> RealtimeClient:
    """Open a realtime session and return once media flows.

    ``source`` is None (push frames with ``send_frame``), an iterable of numpy
    frames, an object with ``read() -> (ok, frame)`` such as ``cv2.VideoCapture``,
    or a media file path.
    """
    if model is None:
        raise InvalidOptionsError("model is required, e.g. model=models.realtime.mirage()")
    definition = resolve(model)
    key = _api_key(api_key)
    base = _base_url(base_url)
    _check_pixel_format(pixel_format)
    _check_timeout(timeout)
    desired = _desired(initial_state, pixel_format)
    if definition.is_avatar and source is not None:
        raise InvalidOptionsError("live_avatar takes no video source; pass source=None")
    frames = None if source is None else frames_of(source)
    query = {"api_key": key, "model": definition.name, "user_agent": user_agent(integration)}
    url = f"{base}{definition.url_path}?{urlencode(query, quote_via=quote)}"
    options = SessionOptions(
        model=definition,
        url=url,
        ice_servers=_ice_servers(ice_servers, base),
        verify_tls=_verify_tls(verify_tls),
        secret=key,
        connect_timeout=timeout,
        reconnect=reconnect,
        customize_offer=customize_offer,
        wants_remote_stream=on_remote_stream is not None,
    )
    client = RealtimeClient(options, desired, pixel_format, on_remote_stream=on_remote_stream)
    client._open(frames, timeout)
    return client


def subscribe(
    token: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    pixel_format: str = "rgb24",
    timeout: float = 30.0,
    ice_servers: Sequence[str] | None = None,
    model: ModelDefinition | str | None = None,
    verify_tls: bool = True,
    integration: str | None = None,
) -> RealtimeClient:
    """Watch another session's output: a receive-only client.

    ``model`` only sets the size of the frames handed out (default: mirage's).
    """
    parsed: SubscribeToken = decode_token(token)
    key = _api_key(api_key)
    base = _base_url(base_url)
    _check_pixel_format(pixel_format)
    _check_timeout(timeout)
    definition = resolve(model) if model is not None else resolve("lucy-restyle")
    query = {"IP": parsed.ip, "port": parsed.port, "api_key": key}
    query["user_agent"] = user_agent(integration)
    url = f"{base}/subscribe/{quote(parsed.sid)}?{urlencode(query, quote_via=quote)}"
    options = SessionOptions(
        model=definition,
        url=url,
        ice_servers=_ice_servers(ice_servers, base),
        subscribe=True,
        verify_tls=_verify_tls(verify_tls),
        secret=key,
        connect_timeout=timeout,
    )
    client = RealtimeClient(options, Desired(), pixel_format)
    client._open(None, timeout)
    return client


class RealtimeClient:
    """A live session. Thread-safe; every blocking method takes ``timeout=``."""

    def __init__(
        self,
        options: SessionOptions,
        desired: Desired,
        pixel_format: str,
        *,
        on_remote_stream: Callable[[Any], Any] | None = None,
    ) -> None:
        self.model = options.model
        self.pixel_format = pixel_format
        self._subscriber = options.subscribe
        self._hub = FrameHub(self.model, pixel_format)
        takes_video = not (self._subscriber or self.model.is_avatar)
        self._input = LatestFrame(self.model, pixel_format) if takes_video else None
        self._audio = AvatarAudio() if self.model.is_avatar and not self._subscriber else None
        self._portal = Portal()
        self._events = signals.Dispatcher(self)
        self._on_remote_stream = on_remote_stream
        self._handlers: dict[tuple[str, Callable[..., Any]], Callable[..., Any]] = {}
        self._feeder: Feeder | None = None
        self._read_seen = 0
        self._closed = False
        self._close_lock = threading.Lock()
        self.audio_frames_received = 0
        self._session = Session(
            options,
            hub=self._hub,
            emit=self._emit,
            desired=desired,
            input_frames=self._input,
            audio_track=self._audio.track if self._audio is not None else None,
            on_audio=self._count_audio,
        )

    def _open(self, frames: Callable[[], Iterator[Any]] | None, timeout: float) -> None:
        if is_loopback_url(self._session.options.url):
            allow_loopback_candidates()
        self._portal.start()
        atexit.register(self.close)
        try:
            self._portal.call(self._session.connect(), timeout + 1.0)
        except TimeoutError:
            self.close()
            raise TimeoutError_(f"could not connect within {timeout} s") from None
        except BaseException:
            self.close()
            raise
        if frames is not None and self._input is not None:
            self._feeder = Feeder(frames, self._input.put, self.model.fps, self._source_failed)
            self._feeder.start()
        self._events.release()  # events of the connect reach handlers registered after it

    # -- sending -----------------------------------------------------------

    def send_frame(self, frame: np.ndarray) -> None:
        """Queue one input frame (any size, uint8, in ``pixel_format``); never blocks.

        The newest frame wins: the track sends whatever is latest at the model's fps.
        """
        if self._input is None:
            raise InvalidOptionsError(f"{self.model.name} clients send no video frames")
        self._check_open()
        self._input.put(frame)

    def set_prompt(self, prompt: str, *, enhance: bool = True, timeout: float = 15.0) -> None:
        """Change the prompt; returns once the server acknowledged it."""
        check_prompt(prompt)
        self._call(self._session.set_prompt(prompt, bool(enhance)), Deadline(timeout), "the prompt")

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
        """Set (or, with ``None``, clear) the reference image; the prompt too if given."""
        self._set_image(image, prompt, enhance, timeout, "the image")

    def _set_image(
        self, image: Any, prompt: str | None, enhance: bool | None, timeout: float, what: str
    ) -> None:
        if prompt is not None:
            check_prompt(prompt)
        deadline = Deadline(timeout)  # one timeout for fetching the image and the ack
        data = None
        if image is not None:
            data = images.to_base64(
                image, pixel_format=self.pixel_format, fetch_timeout=deadline.remaining()
            )
        if prompt is None:
            call = self._session.set_image(data, enhance=enhance)
        else:
            call = self._session.set_image(data, prompt, enhance)
        self._call(call, deadline, what)

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
        done = self._audio.queue(pcm)
        deadline = time.monotonic() + timeout
        try:
            while not done.wait(0.1):
                if self._closed or self._session.error is not None:
                    raise self._session.error or WebSocketError("the client was closed")
                if time.monotonic() >= deadline:
                    raise TimeoutError_(f"the audio did not finish playing within {timeout} s")
        except BaseException:
            self._audio.cancel()
            raise

    # -- receiving ---------------------------------------------------------

    def frames(self, *, timeout: float | None = None) -> FrameIterator:
        """Iterate output frames (height, width, 3) uint8 in ``pixel_format``.

        Each iterator sees every frame it keeps up with; a slow one skips to the
        newest (``.dropped`` counts the skipped). Ends when the client closes;
        raises the error if the session dies, or at ``timeout`` between frames.
        """
        return FrameIterator(self._hub, timeout)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def read(self, timeout: float | None = None) -> tuple[bool, np.ndarray | None]:
        """Like ``cv2.VideoCapture.read()``: ``(True, frame)`` or ``(False, None)``."""
        try:
            got = self._hub.wait_next(self._read_seen, timeout)
        except DecartSDKError:
            return False, None
        if got is None:
            return False, None
        self._read_seen, frame, _ = got
        return True, self._hub.to_numpy(frame)

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
        session = self._session
        if session.session_id is None or session.server_ip is None or not session.server_port:
            return None
        return SubscribeToken(session.session_id, session.server_ip, session.server_port).encode()

    @property
    def stats(self) -> dict[str, float]:
        """Counters: frames put (``frames_in``), sent, skipped (replaced by a newer
        one before they could go: the source is faster than the model's fps) and
        received, reconnects, audio played; and ``seconds_since_last_frame``,
        which grows when the service's media stalls."""
        last = self._hub.last_frame_time
        return {
            "seconds_since_last_frame": -1.0 if last is None else time.monotonic() - last,
            "frames_in": self._input.count if self._input is not None else 0,
            "frames_sent": self._input.sent if self._input is not None else 0,
            "frames_skipped": self._input.skipped if self._input is not None else 0,
            "frames_received": self._hub.received,
            "reconnects": self._session.reconnects,
            "audio_chunks_played": self._audio.played_chunks if self._audio else 0,
            "audio_frames_received": self.audio_frames_received,
        }

    @property
    def source_finished(self) -> bool:
        return self._feeder is not None and self._feeder.finished.is_set()

    # -- events ------------------------------------------------------------

    def on(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Call ``handler(data)`` on each event: ``connection_change`` (state),
        ``error`` (DecartSDKError), ``generation_tick`` (seconds); JS spellings too."""
        signal, kwarg = _event(event)

        def receiver(sender: Any, **kwargs: Any) -> None:
            handler(kwargs[kwarg])

        self._handlers[(signal.name, handler)] = receiver
        signal.connect(receiver, sender=self, weak=False)

    def off(self, event: str, handler: Callable[[Any], Any]) -> None:
        signal, _ = _event(event)
        receiver = self._handlers.pop((signal.name, handler), None)
        if receiver is not None:
            signal.disconnect(receiver, sender=self)

    def _emit(self, kind: str, value: Any) -> None:
        """Called on the loop thread: queue only, never run user code here."""
        if kind == "state":
            self._events.emit(signals.connection_changed, state=value)
        elif kind == "error":
            self._events.emit(signals.error, error=value)
        elif kind == "tick":
            self._events.emit(signals.generation_tick, seconds=value)
        elif kind == "remote_stream":
            self._events.emit(signals.remote_stream, tracks=value)
            if self._on_remote_stream is not None:
                self._events.call(self._on_remote_stream, value)

    def _count_audio(self, frame: Any) -> None:
        self.audio_frames_received += 1

    def _source_failed(self, error: DecartSDKError) -> None:
        self._events.emit(signals.error, error=error)

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        """Close the session; idempotent, returns within about 2 s whatever the server does."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        started = time.monotonic()
        if self._feeder is not None:
            self._feeder.stop(0.5)
        if self._audio is not None:
            self._audio.cancel()
        if self._portal.running and not self._portal.in_loop_thread():
            try:
                self._portal.call(self._session.close(), CLOSE_TIMEOUT - 0.5)
            except BaseException as exc:  # closing must finish whatever happened
                log.debug("session close did not finish cleanly: %r", exc)
            self._portal.stop(max(0.1, CLOSE_TIMEOUT - (time.monotonic() - started)))
        self._hub.close()
        self._events.stop(0.5)
        for (name, _), receiver in list(self._handlers.items()):
            signals.EVENT_NAMES_BY_SIGNAL[name].disconnect(receiver, sender=self)
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

    def _call(self, coro: Any, deadline: Deadline, what: str) -> Any:
        """Run ``coro`` in what is left of ``deadline``."""
        if self._closed:
            coro.close()
            raise WebSocketError("the client is closed")
        try:
            return self._portal.call(coro, deadline.remaining())
        except TimeoutError:
            raise TimeoutError_(
                f"the server did not acknowledge {what} within {deadline.timeout} s"
            ) from None


class DecartClient:
    """Settings for repeated use, like the official ``createDecartClient``."""

    def __init__(
        self,
        api_key: str | None = None,
        realtime_base_url: str | None = None,
        integration: str | None = None,
    ) -> None:
        self._api_key = _api_key(api_key)
        self.realtime_base_url = _base_url(realtime_base_url)
        self.integration = integration
        self.realtime = _Realtime(self)

    def __repr__(self) -> str:
        return f"<DecartClient realtime_base_url={self.realtime_base_url!r} api_key=***>"


class _Realtime:
    def __init__(self, owner: DecartClient) -> None:
        self._owner = owner

    def connect(self, source: Any = None, **options: Any) -> RealtimeClient:
        owner = self._owner
        return connect(
            source,
            api_key=owner._api_key,
            base_url=owner.realtime_base_url,
            integration=owner.integration,
            **options,
        )

    def subscribe(self, token: str, **options: Any) -> RealtimeClient:
        owner = self._owner
        return subscribe(
            token,
            api_key=owner._api_key,
            base_url=owner.realtime_base_url,
            integration=owner.integration,
            **options,
        )


# -- option checks ----------------------------------------------------------


def user_agent(integration: str | None = None) -> str:
    agent = f"decart-sync/{__version__} lang/py"
    return f"{agent} {integration}" if integration else agent


def check_prompt(prompt: Any) -> None:
    if not isinstance(prompt, str):
        raise InvalidInputError(f"a prompt must be text, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidInputError("the prompt is empty; describe the style you want")
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise InvalidInputError(
            f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_LENGTH}"
        )


def _api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get("DECART_API_KEY")
    if not isinstance(key, str) or not key.strip():
        raise InvalidAPIKeyError(
            "no API key: pass api_key= or set DECART_API_KEY "
            "(for the local emulator any non-empty key works)"
        )
    return key.strip()


def _base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get("DECART_REALTIME_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise InvalidBaseURLError(
            f"base URL {url!r} must be ws://, wss://, http:// or https:// with a host"
        )
    return parts._replace(scheme=scheme).geturl().rstrip("/")


def _ice_servers(ice_servers: Sequence[str] | None, base: str) -> list[str]:
    if ice_servers is None:
        # STUN finds nothing useful for a server on this machine, and may be unreachable.
        return [] if is_loopback_url(base) else list(DEFAULT_ICE_SERVERS)
    if isinstance(ice_servers, str) or not all(isinstance(s, str) for s in ice_servers):
        raise InvalidOptionsError("ice_servers must be a list of stun:/turn: URLs")
    return list(ice_servers)


def _verify_tls(verify: bool) -> bool:
    if not verify:
        log.warning("TLS certificate verification is OFF for the signaling WebSocket")
    return bool(verify)


def _check_pixel_format(pixel_format: str) -> None:
    if pixel_format not in PIXEL_FORMATS:
        raise InvalidOptionsError(
            f"pixel_format must be one of {', '.join(PIXEL_FORMATS)}, got {pixel_format!r}"
        )


def _check_timeout(timeout: Any) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidOptionsError(f"timeout must be a positive number of seconds, got {timeout!r}")


def _desired(initial: InitialState | dict[str, Any] | None, pixel_format: str) -> Desired:
    if initial is None:
        return Desired()
    if isinstance(initial, dict):
        unknown = set(initial) - {"prompt", "image"}
        if unknown:
            raise InvalidOptionsError(f"unknown initial_state keys: {sorted(unknown)}")
        prompt = initial.get("prompt")
        if isinstance(prompt, dict):
            text, enhance = prompt.get("text"), prompt.get("enhance", True)
            initial = InitialState(text, enhance, initial.get("image"))
        else:
            initial = InitialState(prompt, True, initial.get("image"))
    if not isinstance(initial, InitialState):
        raise InvalidOptionsError("initial_state must be a dict or an InitialState")
    if initial.prompt is not None:
        check_prompt(initial.prompt)
    image = None
    if initial.image is not None:
        image = images.to_base64(initial.image, pixel_format=pixel_format)
    return Desired(prompt=initial.prompt, enhance=bool(initial.enhance), image=image)


def _event(name: str) -> tuple[Any, str]:
    try:
        return signals.EVENT_NAMES[name]
    except KeyError:
        raise InvalidOptionsError(
            f"unknown event {name!r}; use connection_change, error or generation_tick"
        ) from None
