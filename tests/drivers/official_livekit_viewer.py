"""Drives today's official ``decart`` SDK's viewer, unchanged, against the emulator.

Runs in the official SDK's own virtualenv (never this package's); prints one
JSON line of what the viewer saw. Usage:
``python official_livekit_viewer.py URL KEY TOKEN EXPECTED.npy``: ``TOKEN`` is
the publisher's subscribe token, ``EXPECTED.npy`` the RGB picture the
publisher's output should show. ``RealtimeClient.subscribe`` fetches the
room's credentials with ``POST /watch-stream/{room}`` and joins the room.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from decart.realtime.client import RealtimeClient
from decart.realtime.subscribe import SubscribeOptions
from livekit import rtc
from official_livekit_client import exit_now  # same folder, same virtualenv

TOLERANCE = 12.0


async def main(url: str, key: str, token: str, expected: np.ndarray) -> dict:
    tracks: asyncio.Queue = asyncio.Queue()
    states: list[str] = []
    started = time.monotonic()
    client = await RealtimeClient.subscribe(
        base_url=url,
        api_key=key,
        options=SubscribeOptions(token=token, on_remote_stream=tracks.put_nowait),
    )
    connect_s = time.monotonic() - started
    client.on("connection_change", states.append)
    track = await asyncio.wait_for(tracks.get(), 20)
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24)
    errors: list[float] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            event = await asyncio.wait_for(stream.__anext__(), deadline - time.monotonic())
            frame = event.frame
            got = np.frombuffer(bytes(frame.data), np.uint8).reshape(frame.height, -1, 3)
            if got.shape == expected.shape:
                errors.append(float(np.abs(got.astype(int) - expected).mean()))
                if errors[-1] < TOLERANCE:
                    break
    finally:
        await stream.aclose()
    result = {
        "connect_s": connect_s,
        "error": errors[-1] if errors else None,
        "frames_compared": len(errors),
        "state_before_disconnect": client.get_connection_state(),
    }
    await client.disconnect()
    result["states"] = states
    result["state_after_disconnect"] = client.get_connection_state()
    return result


if __name__ == "__main__":
    url, key, token, expected_path = sys.argv[1:5]
    seen = asyncio.run(main(url, key, token, np.load(expected_path)))
    print(json.dumps(seen), flush=True)
    exit_now()
