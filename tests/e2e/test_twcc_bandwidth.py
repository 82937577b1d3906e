"""The emulator's transport-wide congestion feedback (emulator/livekit/twcc.py), end to end:
a LiveKit client publishing to the emulator must see a bandwidth estimate a real server
would let it have, on both LiveKit signaling paths (on ``/rtc/v1`` the camera's m-section
comes in a later offer, which keeps only what the bundle negotiated first).
tests/unit/test_twcc.py checks the packets themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SIGNALING, published_stats, took_its_path, wait_until


@pytest.mark.parametrize("v1", list(SIGNALING.values()), ids=list(SIGNALING))
def test_a_livekit_client_gets_the_bandwidth_a_server_would_give(v1: bool) -> None:
    # With aiortc's REMB alone the estimate grew from 300 kbit/s by 8% a second
    # (about 500 kbit/s at 6 s); with feedback the client probes.
    import decart_sync
    from decart_sync import ModelDefinition
    from decart_sync.emulator import Emulator

    model = ModelDefinition("test-hd-lk", fps=30, width=1280, height=720, transport="livekit")
    ys, xs = np.mgrid[0:720, 0:1280]
    frame = np.stack([xs * 255 // 1280, ys * 255 // 720, np.full_like(xs, 96)], -1)
    frame = frame.astype(np.uint8)
    with (
        Emulator(models={model.name: model}, livekit_v1=v1) as emu,
        took_its_path(emu),
        decart_sync.connect(None, model=model, api_key="k", base_url=emu.url, timeout=20) as client,
    ):
        frames = client.frames(timeout=10)

        def estimate() -> float:
            client.send_frame(frame)
            next(frames)
            stats = published_stats(client)  # LiveKit's own estimate
            pairs = [s.candidate_pair.candidate_pair for s in stats if s.HasField("candidate_pair")]
            return max((p.available_outgoing_bitrate for p in pairs), default=0.0)

        wait_until(lambda: estimate() > 2_000_000, 6, "a bandwidth estimate over 2 Mbit/s")
