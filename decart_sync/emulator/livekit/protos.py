"""LiveKit protobuf messages as our server sends them, built in one place.

Identifiers follow LiveKit's prefixes (``RM_``, ``PA_``, ``TR_``): the Rust
client core parses participant and track sids by prefix and *panics* on a
participant sid without ``PA_`` (``try_into().unwrap()``), so they are not
cosmetic. The client finds the owner of a subscribed media track from the
stream id of the subscriber offer's ``a=msid`` line, ``"{PA_sid}|{TR_sid}"``.
"""

from __future__ import annotations

import secrets
import time

from livekit.protocol import models as lkm
from livekit.protocol import rtc as lkr

# A release that serves /rtc/v1 (livekit-server added it in 1.9.10).
SERVER_VERSION = "1.9.10"
# What the client advertises as "protocol" on /rtc (?protocol=..) is 16-18; we speak 16.
PROTOCOL_VERSION = 16
# The Rust core ticks a tokio interval of ping_interval seconds: it must not be 0.
PING_INTERVAL = 10
PING_TIMEOUT = 20

STATE_ACTIVE = lkm.ParticipantInfo.State.ACTIVE
STATE_DISCONNECTED = lkm.ParticipantInfo.State.DISCONNECTED


def new_sid(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(9).replace('-', 'x').replace('_', 'y')}"


def now_ms() -> int:
    return int(time.time() * 1000)


def participant(
    sid: str, identity: str, *, name: str = "", joined_ms: int = 0, can_publish: bool = True
) -> lkm.ParticipantInfo:
    joined_ms = joined_ms or now_ms()
    return lkm.ParticipantInfo(
        sid=sid,
        identity=identity,
        name=name or identity,
        state=STATE_ACTIVE,
        joined_at=joined_ms // 1000,
        joined_at_ms=joined_ms,
        permission=lkm.ParticipantPermission(
            can_subscribe=True, can_publish=can_publish, can_publish_data=can_publish
        ),
        kind=lkm.ParticipantInfo.Kind.STANDARD,
    )


def track(sid: str, kind: str, *, name: str = "", width: int = 0, height: int = 0) -> lkm.TrackInfo:
    video = kind == "video"
    return lkm.TrackInfo(
        sid=sid,
        type=lkm.TrackType.VIDEO if video else lkm.TrackType.AUDIO,
        source=lkm.TrackSource.CAMERA if video else lkm.TrackSource.MICROPHONE,
        name=name or kind,
        width=width,
        height=height,
        mime_type="video/VP8" if video else "audio/opus",
    )


def room(sid: str, name: str, *, created_ms: int, participants: int, publishers: int) -> lkm.Room:
    return lkm.Room(
        sid=sid,
        name=name,
        empty_timeout=300,
        departure_timeout=20,
        max_participants=2,
        creation_time=created_ms // 1000,
        creation_time_ms=created_ms,
        # What aiortc can decode and send.
        enabled_codecs=[
            lkm.Codec(mime="video/H264"),
            lkm.Codec(mime="video/VP8"),
            lkm.Codec(mime="audio/opus"),
        ],
        num_participants=participants,
        num_publishers=publishers,
    )


def join(
    room_info: lkm.Room,
    me: lkm.ParticipantInfo,
    others: list[lkm.ParticipantInfo],
    *,
    single: bool = False,
) -> lkr.SignalResponse:
    """The JoinResponse; ``single``: on ``/rtc/v1``, where the one PC is the publisher's."""
    return lkr.SignalResponse(
        join=lkr.JoinResponse(
            room=room_info,
            participant=me,
            other_participants=others,
            server_version=SERVER_VERSION,
            # LiveKit announces its STUN/TURN servers here. None: the client must not reach
            # any other host (an empty list also keeps libwebrtc from any default server).
            # The emulator's own STUN server is for preflights (/_emulator/ice-servers).
            ice_servers=[],
            # Two PCs: we offer the subscriber PC at once (as LiveKit does), so the client's
            # connect() completes when that PC connects, before anything is published.
            # One PC: the publisher PC is the primary (pkg/rtc/participant.go).
            subscriber_primary=not single,
            client_configuration=lkm.ClientConfiguration(
                # aiortc cannot ICE-restart: a client that lost media must rejoin.
                resume_connection=lkm.ClientConfigSetting.DISABLED,
            ),
            ping_timeout=PING_TIMEOUT,
            ping_interval=PING_INTERVAL,
            server_info=lkm.ServerInfo(
                edition=lkm.ServerInfo.Edition.Standard,
                version=SERVER_VERSION,
                protocol=PROTOCOL_VERSION,
                region="local",
                node_id="decart-sync-emulator",
            ),
        )
    )


def leave(reason: int, *, reconnect: bool = False) -> lkr.SignalResponse:
    action = lkr.LeaveRequest.Action.RECONNECT if reconnect else lkr.LeaveRequest.Action.DISCONNECT
    return lkr.SignalResponse(
        leave=lkr.LeaveRequest(can_reconnect=reconnect, reason=reason, action=action)  # type: ignore[arg-type]
    )


def update(*participants: lkm.ParticipantInfo) -> lkr.SignalResponse:
    return lkr.SignalResponse(update=lkr.ParticipantUpdate(participants=list(participants)))


def description(kind: str, sdp: str, sid: int = 0) -> lkr.SessionDescription:
    return lkr.SessionDescription(type=kind, sdp=sdp, id=sid)
