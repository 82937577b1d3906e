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

import numpy as np

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

    rgb24 = rtc.VideoBufferType.RGB24

    async def produce() -> None:
        index, due = 0, time.monotonic()
        while True:
            frame = pattern.frame(index)
            rec.sent[index] = time.monotonic()
            source.capture_frame(rtc.VideoFrame(width, height, rgb24, frame.data))
            index += 1
            due += 1 / fps
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    producer = asyncio.ensure_future(produce())
    stream = rtc.VideoStream(await remote, format=rtc.VideoBufferType.RGB24)
    frames = aiter(stream)
    end_warmup = time.monotonic() + warmup
    while time.monotonic() < end_warmup:
        await anext(frames)
    rec.sent.clear()
    rec.begin()
    while (left := seconds - (time.monotonic() - rec.start)) > 0:
        try:  # a stalled network: the clock still ends the run
            out = (await asyncio.wait_for(anext(frames), left)).frame
        except asyncio.TimeoutError:
            break
        rec.on_output(np.frombuffer(out.data, np.uint8).reshape(out.height, out.width, 3))
    figures = rec.result("official_livekit")
    producer.cancel()
    await asyncio.gather(producer, return_exceptions=True)
    await client.disconnect()
    await stream.aclose()
    await source.aclose()
    return figures


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
