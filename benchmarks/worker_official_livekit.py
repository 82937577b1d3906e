"""Today's official SDK (decart[realtime]==0.2.4, over LiveKit), run in its own virtualenv.

Driven as its own documentation and ``tests/drivers/official_livekit_client.py`` do:
frames in through an ``rtc.VideoSource`` published as the local track, frames
out through ``rtc.VideoStream(..., format=RGB24)``. The pattern goes in as the
same RGB24 numpy array decart_sync's worker hands to ``send_frame``, and comes
out as the same RGB24 array its ``frames()`` yields. Imports nothing from
decart_sync: that venv does not have it.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.livekit_run import stream_and_measure
from benchmarks.stamp import Pattern, Recorder, emit, worker_args


async def run(
    url: str, seconds: float, width: int, height: int, fps: float, warmup: float, model_name: str
) -> dict:
    from decart.models import ModelDefinition
    from decart.realtime.client import RealtimeClient
    from decart.realtime.types import RealtimeConnectOptions
    from livekit import rtc

    # A custom model of the SDK's own kind: the emulator serves it under this name.
    model = ModelDefinition(
        name=model_name, url_path="/v1/stream", fps=round(fps), width=width, height=height
    )
    pattern = Pattern(width, height)
    rec = Recorder()
    source = rtc.VideoSource(width, height)
    local = rtc.LocalVideoTrack.create_video_track("camera", source)
    remote: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_remote_stream(track, *_: object) -> None:
        if not remote.done():
            remote.set_result(track)

    t0 = time.monotonic()
    client = await RealtimeClient.connect(
        base_url=url,
        api_key="bench",
        local_track=local,
        options=RealtimeConnectOptions(model=model, on_remote_stream=on_remote_stream),
    )
    rec.connect_time = time.monotonic() - t0

    try:
        return await stream_and_measure(
            source,
            remote,
            rec,
            name="official_livekit",
            pattern=pattern,
            fps=fps,
            warmup=warmup,
            seconds=seconds,
        )
    finally:
        await client.disconnect()
        await source.aclose()


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
