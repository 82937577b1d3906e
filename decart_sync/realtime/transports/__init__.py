"""Media transports: how a session's video and audio travel.

The control WebSocket (prompts, images, acks, ticks, errors) is the same for
every transport and stays with `Session`; only
the media handshake and the media themselves differ. A transport is made for
one connection attempt and thrown away with it:

1. `MediaTransport.join()`, right after the WebSocket opened, before the
   initial state (LiveKit asks for its room here; plain WebRTC has nothing to do);
2. `MediaTransport.start()`, after the initial state: returns once media flows;
3. control messages that belong to media are offered to `MediaTransport.handle()`;
4. `MediaTransport.abort()` wakes a ``start`` that can no longer succeed;
5. `MediaTransport.close()`, bounded, frees everything.

`MediaTransport.stats()` may be asked at any time for the media library's
network figures.

Decoded frames, media loss and the user's raw tracks go back through
`MediaHooks`. Transports are imported only when a session asks for
one, so each may bring its own media library.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from ...errors import DecartSDKError, InvalidOptionsError
from ...metrics.rates import NetworkStats
from ...models import ModelDefinition
from ..messages import Message

if TYPE_CHECKING:
    from ..tracks import LatestFrame

TRANSPORTS = ("webrtc", "livekit")
CODECS = ("h264", "vp8", "vp9")  # what the LiveKit transport publishes (JS SDK 0.1.20)
# The pixel format each transport takes input frames in (see tracks.LatestFrame).
INPUT_PIXELS = {"webrtc": "yuv420p", "livekit": "rgb24"}


@attrs.define
class MediaSettings:
    """What the user asked of media, for every connection of a session."""

    model: ModelDefinition
    receive_only: bool = False  # a subscriber: video and audio in, nothing out
    input: LatestFrame | None = None  # the user's frames, for camera models
    audio: Callable[[], Any] | None = None  # a fresh outgoing audio track (live_avatar)
    ice_servers: list[str] = attrs.Factory(list)  # WebRTC
    customize_offer: Callable[[Any], Any] | None = None  # WebRTC
    wants_remote_stream: bool = False
    codec: str = "h264"  # LiveKit: the published video's codec
    watch: Callable[[], Message] | None = None  # LiveKit viewer: fetches room credentials


@attrs.define
class MediaHooks:
    """How a transport reaches its session; every hook runs on the event loop."""

    send: Callable[[Message], Awaitable[None]]  # a control message to the server
    video: Callable[[Any], None]  # a decoded output frame (av.VideoFrame)
    audio: Callable[[Any], None]  # a decoded output audio frame
    lost: Callable[[str, BaseException | None], None]  # the media connection is gone
    remote_stream: Callable[[Any], None]  # the raw remote track, for on_remote_stream
    identify: Callable[[str | None, str | None], None]  # session id, subscribe token
    queued: Callable[[int, int], None]  # position, queue size: waiting for a model


class MediaTransport(abc.ABC):
    #: the passthrough initial state goes before media starts (else after, as LiveKit does)
    passthrough_first = True

    async def join(self, passthrough: bool) -> None:  # noqa: B027  (optional)
        """Before the initial state: what media needs from the control channel first.

        ``passthrough``: the session starts with no prompt and no image.
        """

    @abc.abstractmethod
    async def start(self) -> None:
        """Set up media; returns once it flows. Raises a coded error otherwise."""

    @abc.abstractmethod
    def handle(self, message: Message) -> bool:
        """A control message for media; False if it is not one.

        Raises KeyError, TypeError or ValueError for a malformed one.
        """

    @abc.abstractmethod
    def abort(self, error: DecartSDKError) -> None:
        """The attempt failed elsewhere: a pending `start()` raises ``error``."""

    async def stats(self) -> NetworkStats:
        """RTT, loss, jitter and bitrates from the media library; None where unknown."""
        return NetworkStats()

    async def sent_report(self) -> list[Any]:
        """The media library's own stats objects for what this client sends; [] without
        media. For tests and diagnosis: their types are the library's, not ours."""
        return []

    @abc.abstractmethod
    async def close(self) -> None:
        """Free everything; bounded in time, never raises."""


def check(kind: str) -> None:
    """Raise a coded error, saying what to install, unless ``kind`` can be used here."""
    if kind not in TRANSPORTS:
        raise InvalidOptionsError(f"transport must be one of {', '.join(TRANSPORTS)}, got {kind!r}")
    if kind == "livekit":
        try:
            import livekit.rtc  # noqa: F401
        except ImportError as exc:
            raise InvalidOptionsError(
                "the LiveKit transport needs the livekit package, which decart-sync "
                f"installs; it cannot be imported here ({exc}): pip install decart-sync again",
                cause=exc,
            ) from None


def create(kind: str, settings: MediaSettings, hooks: MediaHooks) -> MediaTransport:
    check(kind)
    if kind == "livekit":
        from .livekit import LiveKitTransport

        return LiveKitTransport(settings, hooks)
    from .webrtc import WebRTCTransport

    return WebRTCTransport(settings, hooks)
