"""A LiveKit server test double: what Decart's LiveKit-era clients need, on loopback.

Decart's service carries media through a LiveKit room (docs/protocol.md,
"Connecting over LiveKit").
This package plays the LiveKit server for the emulator: one room per session,
with the client and an ``inference-server-...`` participant whose tracks are
ordinary aiortc tracks; the client's published tracks come out as aiortc
tracks too. Viewers (tokens that cannot publish, as ``/watch-stream`` gives)
get the inference server's tracks only (see `room`). Signaling is
LiveKit's protobuf protocol over the emulator's own WebSocket port, on both
of its paths (`rooms`): ``/rtc/v1``, one peer connection (`single`), and the
classic ``/rtc``, two (`classic`); media runs over aiortc peers. Like a LiveKit server, it answers
a publisher for transport-wide congestion feedback and sends it (`twcc`),
so the client's bandwidth estimate is what a real server would let it have,
and accepts a publisher's simulcast, passing on its best layer
(`simulcast`), so the client encodes what it would for the service.

Wiring, per control session on ``livekit_join`` (all on the emulator's loop)::

    room = rooms.create_room(on_client_track=feed_pipeline)  # the client's camera
    identity = room.publish(output_video_track, fork=relay_copy)  # inference-server-xxxx
    send({"type": "livekit_room_info", "livekit_url": "ws://127.0.0.1:<port>",
          "token": rooms.token(room.name, "client"), "room_name": room.name,
          "session_id": ...})
    ...; await room.left.wait()  # the client went; await room.close() at the end
    viewer_token = rooms.token(room.name, "viewer-1", can_publish=False)

Needs the ``livekit-protocol`` package (the ``emulator`` extra brings it).
"""

from .room import SERVER_IDENTITY_PREFIX, Room
from .rooms import LiveKitRooms

__all__ = ["SERVER_IDENTITY_PREFIX", "LiveKitRooms", "Room"]
