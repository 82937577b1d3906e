"""The public blocking client: where the user's story starts.

``connect()`` checks the options, chooses the transport and opens a session;
``subscribe()`` does the same for a viewer. Both return a
[`RealtimeClient`][decart_sync.RealtimeClient], which sends frames and prompts,
hands back numpy frames, reports events, and closes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import options
from .._portal import Deadline
from ..errors import InvalidOptionsError
from ..metrics.rates import check_interval
from ..models import ModelDefinition, resolve
from ..options import InitialState
from ..realtime.messages import Desired
from ..realtime.session import SessionOptions
from ..realtime.subscribe_tokens import RoomToken, decode_token, watch_credentials
from ..realtime.transports import MediaSettings
from ..sources import frames_of
from .realtime import RealtimeClient

__all__ = ["InitialState", "RealtimeClient", "connect", "subscribe"]


# The keywords are defined once, in options.CONNECT_OPTIONS; they stay spelled out here for
# IDEs and type checkers, and tests/test_options.py fails when the two differ.
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
    transport: str | None = None,
    video_codec: str = "h264",
    resolution: str | None = None,
    speed: str | None = None,
    stats_interval: float | None = None,
    origin: str | None = None,
    queue_timeout: float | None = None,
    query_params: Mapping[str, str] | None = None,
    mirror: bool = False,
    on: Mapping[str, Callable[[Any], Any]] | None = None,
) -> RealtimeClient:
    """Open a realtime session and return once media flows.

    ``source`` is None (push frames with ``send_frame``), an iterable of numpy
    frames, an object with ``read() -> (ok, frame)`` such as ``cv2.VideoCapture``,
    or a media file path.

    ``transport`` defaults to the model's: today's models (``lucy-2.1`` and the
    rest of the official SDK's table) take LiveKit, as the official SDKs do; the
    classic models (``mirage``, ``mirage_v2``, ``lucy_v2v_720p_rt``, ``lucy_2_rt``,
    ``live_avatar``) and custom models take plain WebRTC. ``video_codec``
    (``"h264"``, ``"vp8"`` or ``"vp9"``), ``resolution`` (``"720p"``/``"1080p"``) and
    ``speed`` (``"fast"``) apply to LiveKit sessions. ``stats_interval``: send
    ``client.stats`` to ``stats`` handlers every so many seconds. ``origin``
    (``"https://example.com"``) is sent as the control WebSocket's ``Origin``
    header, for a client token scoped to origins.

    A busy service queues a LiveKit session: ``queue_position`` events report
    its place, time in the queue does not count against ``timeout``, and
    ``queue_timeout`` (None: no bound) bounds it. ``on`` maps event names to
    handlers that are called as events happen, also during connect
    (``on={"queue_position": show, "connection_change": log}``); handlers added
    later with ``client.on`` get the connect's events once it returns.
    ``query_params`` adds to the stream URL's query; ``mirror=True`` flips the
    input left to right before it is sent (a selfie camera, as the JS SDK's
    ``mirror``). A failed
    attempt is retried as the official SDKs do (1 s doubling to 10 s, five times,
    within ``timeout``); a permanent error (bad key, unknown model) fails at once.
    """
    if model is None:
        raise InvalidOptionsError("model is required, e.g. model=models.realtime.mirage()")
    definition = resolve(model)
    key = options.api_key(api_key)
    base = options.base_url(base_url)
    options.check_pixel_format(pixel_format)
    options.check_timeout(timeout)
    check_interval(stats_interval)
    origin = options.origin(origin)
    handlers = options.handlers(on)
    extra = options.query_params(query_params)
    kind = options.transport(transport, definition)
    desired = options.desired(initial_state, pixel_format)
    if definition.is_avatar and source is not None:
        raise InvalidOptionsError("live_avatar takes no video source; pass source=None")
    frames = None if source is None else frames_of(source)
    media = MediaSettings(
        definition,
        ice_servers=options.ice_servers(ice_servers, base),
        customize_offer=customize_offer,
        wants_remote_stream=on_remote_stream is not None,
        codec=options.video_codec(video_codec),
    )
    livekit = options.livekit_query(resolution, speed) if kind == "livekit" else None
    session = SessionOptions(
        model=definition,
        url=options.stream_url(base, definition, key, integration, livekit, extra),
        media=media,
        transport=kind,
        verify_tls=options.verify_tls(verify_tls),
        secret=key,
        connect_timeout=timeout,
        reconnect=reconnect,
        origin=origin,
        queue_timeout=options.queue_timeout(queue_timeout),
    )
    client = RealtimeClient(
        session,
        desired,
        pixel_format,
        on_remote_stream=on_remote_stream,
        stats_interval=stats_interval,
        handlers=handlers,
        mirror=bool(mirror),
    )
    client._open(frames, Deadline(timeout))
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

    The token says the transport: a LiveKit session's token names its room.
    ``model`` only sets the size of the frames handed out (default: mirage's).
    """
    parsed = decode_token(token)
    key = options.api_key(api_key)
    base = options.base_url(base_url)
    options.check_pixel_format(pixel_format)
    options.check_timeout(timeout)
    definition = resolve(model) if model is not None else resolve("lucy-restyle")
    media = MediaSettings(
        definition, receive_only=True, ice_servers=options.ice_servers(ice_servers, base)
    )
    url: str | None
    if isinstance(parsed, RoomToken):
        kind = options.transport("livekit", definition)
        media.watch = functools.partial(watch_credentials, base, parsed.room_name, key, timeout)
        url = None  # a LiveKit viewer has no control channel
    else:
        kind, url = "webrtc", options.subscribe_url(base, parsed, key, integration)
    session = SessionOptions(
        model=definition,
        url=url,
        media=media,
        transport=kind,
        subscribe=True,
        verify_tls=options.verify_tls(verify_tls),
        secret=key,
        connect_timeout=timeout,
    )
    client = RealtimeClient(session, Desired(), pixel_format)
    client._open(None, Deadline(timeout))
    return client
