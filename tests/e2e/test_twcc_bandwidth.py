"""The emulator's transport-wide congestion feedback (emulator/livekit/twcc.py), end to end:
a LiveKit client publishing to the emulator must see a bandwidth estimate a real server
would let it have, on both LiveKit signaling paths (on ``/rtc/v1`` the camera's m-section
comes in a later offer, which keeps only what the bundle negotiated first).
tests/unit/test_twcc.py checks the packets themselves.
"""

from __future__ import annotations

import pytest
from helpers import SIGNALING, published_stats, took_its_path, wait_until


@pytest.mark.parametrize("v1", list(SIGNALING.values()), ids=list(SIGNALING))
def test_a_livekit_client_gets_the_bandwidth_a_server_would_give(v1: bool) -> None:
    # With aiortc's REMB alone the estimate grew from 300 kbit/s by 8% a second
    # (about 500 kbit/s at 6 s); with feedback the client probes.
    import decart_sync
    from decart_sync import ModelDefinition
    from decart_sync.emulator import Emulator
    from decart_sync.sources import synthetic

    model = ModelDefinition("test-hd-lk", fps=30, width=1280, height=720, transport="livekit")
    # A moving picture, as a camera's. A still one needs a few kbit/s once its key frame
    # is out, and libwebrtc neither raises the estimate of a sender using so little of it
    # nor probes again: the probes of the first second, which a busy machine can spoil
    # (the pacer late, their feedback not back within libwebrtc's second), would decide
    # the run. A sender that fills its estimate has it follow the feedback all along.
    with (
        Emulator(models={model.name: model}, livekit_v1=v1) as emu,
        took_its_path(emu),
        decart_sync.connect(
            synthetic(model), model=model, api_key="k", base_url=emu.url, timeout=20
        ) as client,
    ):
        frames = client.frames(timeout=10)
        seen: list[float] = []

        def over_2_mbit() -> bool:
            next(frames)  # one look per restyled frame
            stats = published_stats(client)  # LiveKit's own estimate
            pairs = [s.candidate_pair.candidate_pair for s in stats if s.HasField("candidate_pair")]
            seen.append(max((p.available_outgoing_bitrate for p in pairs), default=0.0))
            return seen[-1] > 2_000_000

        try:
            wait_until(over_2_mbit, 6, "a bandwidth estimate over 2 Mbit/s")
        except AssertionError as exc:
            # Low from the start and growing a few % a second: the first probes came to little.
            went = f"it went from {seen[0]:.0f} to {seen[-1]:.0f} bit/s"
            raise AssertionError(f"{exc}; {went}") from None
