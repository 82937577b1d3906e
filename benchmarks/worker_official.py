"""The official async SDK (decart[realtime]==0.0.37), run in its own virtualenv.

Imports nothing from decart_sync: that venv does not have it.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.stamp import Pattern, Recorder, emit, worker_args
from benchmarks.tracks import PatternTrack, measure


async def run(url: str, seconds: float, width: int, height: int, fps: float, warmup: float) -> dict:
    import aioice.ice
    from decart import DecartClient, models
    from decart.realtime.client import RealtimeClient
    from decart.realtime.types import RealtimeConnectOptions

    # The same loopback candidate as the other two workers get (see decart_sync/_process.py).
    original = aioice.ice.get_host_addresses

    def with_loopback(*args: object, **kwargs: object) -> list[str]:
        return ["127.0.0.1", *original(*args, **kwargs)]

    aioice.ice.get_host_addresses = with_loopback
    rec = Recorder()
    remote: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_remote_stream(track) -> None:
        if track.kind == "video" and not remote.done():
            remote.set_result(track)

    client = DecartClient(api_key="bench", realtime_base_url=url)
    t0 = time.monotonic()
    realtime = await RealtimeClient.connect(
        base_url=client.realtime_base_url,
        api_key="bench",
        local_track=PatternTrack(Pattern(width, height), fps, rec),
        options=RealtimeConnectOptions(
            model=models.realtime("mirage"), on_remote_stream=on_remote_stream
        ),
    )
    rec.connect_time = time.monotonic() - t0
    track = await remote
    await measure(track, rec, seconds, warmup)
    figures = rec.result("official_sdk")
    await realtime.disconnect()
    return figures


def main() -> None:
    args = worker_args()
    emit(asyncio.run(run(args.url, args.seconds, args.width, args.height, args.fps, args.warmup)))


if __name__ == "__main__":
    main()
