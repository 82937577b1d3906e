"""The floor: a minimal asyncio client written straight against aiortc and the protocol."""

from __future__ import annotations

import asyncio
import json
import time

from aiortc import RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import connect

from benchmarks.stamp import Pattern, Recorder, emit, worker_args
from benchmarks.tracks import PatternTrack, measure


async def run(url: str, seconds: float, width: int, height: int, fps: float, warmup: float) -> dict:
    from decart_sync._process import allow_loopback_candidates  # same loopback media path

    allow_loopback_candidates()
    rec = Recorder()
    t0 = time.monotonic()
    ws = await connect(f"{url}/v1/stream?api_key=bench&model=lucy-restyle", max_size=None)
    await ws.send(json.dumps({"type": "set_image", "image_data": None, "prompt": None}))
    while json.loads(await ws.recv())["type"] != "set_image_ack":
        pass
    pc = RTCPeerConnection()
    pc.addTrack(PatternTrack(Pattern(width, height), fps, rec))
    connected = asyncio.Event()
    remote: asyncio.Future = asyncio.get_running_loop().create_future()
    pc.on("connectionstatechange", lambda: pc.connectionState == "connected" and connected.set())
    pc.on("track", lambda track: track.kind == "video" and remote.set_result(track))
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "answer":
            break
    await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
    await connected.wait()
    rec.connect_time = time.monotonic() - t0
    drain = asyncio.ensure_future(_drain(ws))
    track = await remote
    await measure(track, rec, seconds, warmup)
    figures = rec.result("bare_aiortc")
    drain.cancel()
    await pc.close()
    await ws.close()
    return figures


async def _drain(ws) -> None:
    async for _ in ws:
        pass


def main() -> None:
    args = worker_args()
    emit(asyncio.run(run(args.url, args.seconds, args.width, args.height, args.fps, args.warmup)))


if __name__ == "__main__":
    main()
