"""The LiveKit floor: livekit's ``rtc`` driven directly, with the protocol's few messages.

What any client of today's path cannot do without: the control WebSocket's
``livekit_join`` and passthrough ``set_image`` (docs/protocol.md, "Connecting
over LiveKit"), one ``rtc.VideoSource`` at the model's size published as one
H264 layer at decart_sync's bitrate settings, the pattern's RGB24 numpy array
in through ``capture_frame`` on the loop, RGB24 out through
``rtc.VideoStream``. No wrapper, no thread hand-off, no frame metadata.
Imports nothing from decart_sync, so its memory is the floor's too.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import time
from typing import Any

from websockets.asyncio.client import connect

from benchmarks.livekit_run import stream_and_measure
from benchmarks.stamp import Pattern, Recorder, emit, worker_args

# decart_sync's publish settings (decart_sync/realtime/transports/livekit.py, PUBLISH_FPS
# and MAX_BITRATE["h264"]); tests/unit/test_units.py holds the two to the same values.
PUBLISH_FPS = 30
MAX_BITRATE = 3_500_000
INFERENCE_PREFIX = "inference-server-"
# Registered before livekit's own exit handler, so it runs after it: a native callback
# still under way then gets the GIL back before finalization (decart_sync/_process.py,
# settle_livekit_at_exit, says why; without it the process now and then aborts at exit).
atexit.register(time.sleep, 0.05)


async def _reply(ws: Any, kind: str, timeout: float = 15.0) -> dict:
    """The next control message of type ``kind``; others are skipped."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == kind:
                return message
            if message.get("type") == "error":
                raise RuntimeError(f"the service said: {message.get('error')}")


async def run(
    url: str, seconds: float, width: int, height: int, fps: float, warmup: float, model_name: str
) -> dict:
    from livekit import rtc

    pattern = Pattern(width, height)
    rec = Recorder()
    t0 = time.monotonic()
    ws = await connect(f"{url}/v1/stream?api_key=bench&model={model_name}", max_size=None)
    await ws.send(json.dumps({"type": "livekit_join", "passthrough": True}))
    info = await _reply(ws, "livekit_room_info")
    room = rtc.Room()
    remote: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_track(track: Any, _publication: Any, participant: Any) -> None:
        video = track.kind == rtc.TrackKind.KIND_VIDEO
        if video and participant.identity.startswith(INFERENCE_PREFIX) and not remote.done():
            remote.set_result(track)

    room.on("track_subscribed", on_track)
    await room.connect(info["livekit_url"], info["token"])
    source = rtc.VideoSource(width, height)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(
        video_codec=rtc.VideoCodec.H264,
        video_encoding=rtc.VideoEncoding(max_framerate=PUBLISH_FPS, max_bitrate=MAX_BITRATE),
        source=rtc.TrackSource.SOURCE_CAMERA,
        simulcast=False,
        degradation_preference=rtc.DegradationPreference.MAINTAIN_RESOLUTION,
    )
    await room.local_participant.publish_track(track, options)
    await ws.send(json.dumps({"type": "set_image", "image_data": None, "prompt": None}))
    await _reply(ws, "set_image_ack")
    rec.connect_time = time.monotonic() - t0
    drain = asyncio.ensure_future(_drain(ws))
    try:
        return await stream_and_measure(
            source,
            asyncio.wait_for(remote, 15),
            rec,
            name="bare_livekit",
            pattern=pattern,
            fps=fps,
            warmup=warmup,
            seconds=seconds,
        )
    finally:
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
        await room.disconnect()
        await source.aclose()
        await ws.close()


async def _drain(ws: Any) -> None:
    async for _ in ws:
        pass


def main() -> None:
    args = worker_args()
    emit(
        asyncio.run(
            run(
                args.url,
                args.seconds,
                args.width,
                args.height,
                args.fps,
                args.warmup,
                args.model,
            )
        )
    )


if __name__ == "__main__":
    main()
