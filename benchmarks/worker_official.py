"""The official async SDK (decart[realtime]==0.0.37), run in its own virtualenv.

Imports nothing from decart_sync: that venv does not have it.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.stamp import Pattern, Recorder, emit
from benchmarks.tracks import PatternTrack


async def run(url: str, seconds: float, width: int, height: int, fps: float, warmup: float) -> dict:
    import aioice.ice
    from decart import DecartClient, models
    from decart.realtime.client import RealtimeClient
    from decart.realtime.types import RealtimeConnectOptions

    # The same loopback candidate as the other two workers get (see decart_sync/_ice.py).
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda v4, v6: ["127.0.0.1", *original(v4, v6)]
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
    end_warmup = time.monotonic() + warmup
    while time.monotonic() < end_warmup:
        (await track.recv()).to_ndarray(format="rgb24")
    rec.sent.clear()
    rec.begin()
    while time.monotonic() - rec.start < seconds:
        rec.on_output((await track.recv()).to_ndarray(format="rgb24"))
    figures = rec.result("official_sdk")
    await realtime.disconnect()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--fps", type=float, default=25)
    args = parser.parse_args()
    emit(asyncio.run(run(args.url, args.seconds, args.width, args.height, args.fps, args.warmup)))


if __name__ == "__main__":
    main()
