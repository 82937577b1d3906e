"""The public blocking client: where the user's story starts.

``connect()`` checks the options, chooses the transport and opens a session;
``subscribe()`` does the same for a viewer. Both return a
[`RealtimeClient`][decart_sync.RealtimeClient], which sends frames and prompts,
hands back numpy frames, reports events, and closes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import options
from .._portal import Deadline
from ..errors import InvalidOptionsError
from ..metrics.rates import check_interval
from ..models import ModelDefinition, resolve
from ..options import ConnectKeywords, InitialState
from ..realtime.messages import Desired
from ..realtime.session import SessionOptions
from ..realtime.subscribe_tokens import RoomToken, decode_token, watch_credentials
from ..realtime.transports import MediaSettings
from ..sources import frames_of
from .realtime import RealtimeClient

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["InitialState", "RealtimeClient", "connect", "subscribe"]


@options.shows_the_table
def connect(source: Any = None, **keywords: Unpack[ConnectKeywords]) -> RealtimeClient:
    """Open a realtime session and return once media flows.

    ``source`` is None (push frames with ``send_frame``), an iterable of numpy
    frames, an object with ``read() -> (ok, frame)`` such as ``cv2.VideoCapture``,
    or a media file path. The keywords, ``model`` required, are the options of
    ``decart_sync.options.CONNECT_OPTIONS``: each one's type, default and meaning
    are in ``ConnectKeywords`` and in the usage guide's options table.

    A failed attempt is retried as the official SDKs do (1 s doubling to 10 s,
    five times, within ``timeout``); a permanent error (bad key, unknown model)
    fails at once.
    """
    o = options.completed(keywords, "connect")
    if o["model"] is None:
        raise InvalidOptionsError("model is required, e.g. model=models.realtime.mirage()")
    definition = resolve(o["model"])
    key = options.api_key(o["api_key"])
    base = options.base_url(o["base_url"])
    pixel_format, timeout = o["pixel_format"], o["timeout"]
    options.check_pixel_format(pixel_format)
    options.check_timeout(timeout)
    check_interval(o["stats_interval"])
    origin = options.origin(o["origin"])
    handlers = options.handlers(o["on"])
    extra = options.query_params(o["query_params"])
    kind = options.transport(o["transport"], definition)
    desired = options.desired(o["initial_state"], pixel_format)
    if definition.is_avatar and source is not None:
        raise InvalidOptionsError("live_avatar takes no video source; pass source=None")
    frames = None if source is None else frames_of(source)
    media = MediaSettings(
        definition,
        ice_servers=options.ice_servers(o["ice_servers"], base),
        customize_offer=o["customize_offer"],
        wants_remote_stream=o["on_remote_stream"] is not None,
        codec=options.video_codec(o["video_codec"]),
    )
    livekit = options.livekit_query(o["resolution"], o["speed"]) if kind == "livekit" else None
    session = SessionOptions(
        model=definition,
        url=options.stream_url(base, definition, key, o["integration"], livekit, extra),
        media=media,
        transport=kind,
        verify_tls=options.verify_tls(o["verify_tls"]),
        secret=key,
        connect_timeout=timeout,
        reconnect=o["reconnect"],
        origin=origin,
        queue_timeout=options.queue_timeout(o["queue_timeout"]),
    )
    client = RealtimeClient(
        session,
        desired,
        pixel_format,
        on_remote_stream=o["on_remote_stream"],
        stats_interval=o["stats_interval"],
        handlers=handlers,
        mirror=bool(o["mirror"]),
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
