"""connect()'s options as type checkers and IDEs see them.

Generated from ``CONNECT_OPTIONS`` in table.py by
``python -m decart_sync.options --write``: edit the table, then run that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from ..models import ModelDefinition
from .values import InitialState


class ConnectOptions(TypedDict, total=False):
    """The options of `connect()` besides the account's: what
    `DecartClient(...).realtime.connect` takes. Each field's default is the one `connect()`
    uses when the field is absent.
    """

    model: ModelDefinition | str | None
    """The model: `models.realtime.mirage()`, a registry name such as `"lucy-2.1"`, or a
    `ModelDefinition`. Required.
    """

    initial_state: InitialState | dict[str, Any] | None
    """The prompt and reference image the session starts with: an `InitialState` or `{"prompt":
    {"text": ..., "enhance": True}, "image": ...}`.
    """

    pixel_format: str
    """Of the frames you send and get back (`bgr24`: OpenCV's order). One of `rgb24`, `bgr24`.
    Default `'rgb24'`.
    """

    timeout: float
    """Seconds to connect, retries included; time in the service's queue does not count. Default
    `30.0`.
    """

    ice_servers: Sequence[str] | None
    """`stun:`/`turn:` URLs (plain WebRTC); default a public STUN server, none for a service on
    this machine.
    """

    customize_offer: Callable[[Any], Any] | None
    """Called with the SDP offer before it is sent; returns the offer to send (plain WebRTC)."""

    on_remote_stream: Callable[[Any], Any] | None
    """Called with the output media track when it arrives."""

    reconnect: bool
    """Reconnect after a drop, replaying the prompt and image. Default `True`."""

    verify_tls: bool
    """Check the signaling socket's TLS certificate (off: a warning is logged). Default `True`."""

    transport: str | None
    """The media path: LiveKit or plain WebRTC; default the model's (LiveKit for today's models,
    plain WebRTC for `mirage`, `mirage_v2`, `lucy_v2v_720p_rt`, `lucy_2_rt`, `live_avatar` and
    custom models). One of `webrtc`, `livekit`.
    """

    video_codec: str
    """The codec a LiveKit session sends. One of `h264`, `vp8`, `vp9`. Default `'h264'`."""

    resolution: str | None
    """The resolution a LiveKit session asks for; default the service's. One of `720p`, `1080p`."""

    speed: str | None
    """The speed a LiveKit session asks for; default the service's. One of `fast`."""

    stats_interval: float | None
    """Seconds between `stats` events (the `client.stats` figures); default none."""

    origin: str | None
    """Sent as the control WebSocket's `Origin` header (`https://example.com`), for a client
    token scoped to origins.
    """

    queue_timeout: float | None
    """Seconds a LiveKit session may wait in the service's queue (`queue_position` events count
    down); default no bound.
    """

    query_params: Mapping[str, str] | None
    """Added to the stream URL's query; they cannot replace the client's own."""

    mirror: bool
    """Flip the input left to right before it is sent (a selfie camera). Default `False`."""

    on: Mapping[str, Callable[[Any], Any]] | None
    """Event names to handlers, called as events happen, also during connect: `{"queue_position":
    show}`.
    """


class ConnectKeywords(ConnectOptions, total=False):
    """Every keyword of `connect()` besides `source`: `ConnectOptions` and the account's."""

    api_key: str | None
    """The account's key; default `$DECART_API_KEY`."""

    base_url: str | None
    """The realtime service; default `$DECART_REALTIME_BASE_URL`, else `wss://api3.decart.ai`."""

    integration: str | None
    """Your integration's name, appended to the user agent."""
