"""What the JS SDK's connect options and replaceVideoTrack do, in Python:
video_codec="vp8", query_params=, mirror=True and client.set_source()."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from helpers import KEY, close_to, invert, pattern, repeat, wait_for_frame

import decart_sync
from decart_sync import DecartSDKError, ModelDefinition
from decart_sync.emulator import Emulator

pytestmark = pytest.mark.timeout(120)

FRAME = pattern()


def query_of(emulator: Emulator, client: decart_sync.RealtimeClient) -> dict[str, list[str]]:
    served = emulator.wait_for_session(session_id=client.session_id)
    assert served.ws.request is not None
    return parse_qs(urlsplit(served.ws.request.path).query)


def test_query_params_reach_the_stream_url_and_ours_stay_ours(connect, emulator) -> None:
    client = connect(None, query_params={"region": "eu", "trace": "a b&c"})
    query = query_of(emulator, client)
    assert query["region"] == ["eu"] and query["trace"] == ["a b&c"]
    assert query["api_key"] == [KEY] and query["model"] == [client.model.name]
    for bad in ({"api_key": "x"}, {"model": "y"}, {"n": 1}, ["region"]):
        with pytest.raises(DecartSDKError, match="query_params") as info:
            connect(None, query_params=bad)
        assert info.value.code == "INVALID_OPTIONS"


def test_mirror_flips_the_input_left_to_right(connect) -> None:
    client = connect(repeat(FRAME), mirror=True, initial_state={"prompt": "invert"})
    wait_for_frame(client.frames(timeout=10), close_to(invert(FRAME[:, ::-1])))
    assert not close_to(invert(FRAME))(client.read(timeout=5)[1])


def test_set_source_swaps_the_input_mid_session(connect) -> None:
    client = connect(repeat(FRAME), initial_state={"prompt": "invert"})
    frames = client.frames(timeout=10)
    wait_for_frame(frames, close_to(invert(FRAME)))
    other = np.ascontiguousarray(FRAME[::-1])  # upside down: far from FRAME
    client.set_source(repeat(other))
    wait_for_frame(frames, close_to(invert(other)))
    # None: no source any more; frames pushed by hand go instead.
    client.set_source(None)
    third = np.full_like(FRAME, 60)
    for _ in range(200):
        client.send_frame(third)
        frame = client.read(timeout=5)[1]
        if close_to(invert(third))(frame):
            break
    else:
        raise AssertionError("the pushed frames never replaced the source's")
    with pytest.raises(DecartSDKError) as info:  # a bad source changes nothing
        client.set_source(42)
    assert info.value.code == "INVALID_INPUT"
    client.close()
    with pytest.raises(DecartSDKError):
        client.set_source(repeat(FRAME))


def test_vp8_is_published_over_livekit() -> None:
    model = ModelDefinition("test-small-lk", fps=25, width=320, height=192, transport="livekit")
    frame = pattern(model)
    with Emulator(models={model.name: model}) as emu:
        client = decart_sync.connect(
            repeat(frame),
            model=model,
            api_key=KEY,
            base_url=emu.url,
            video_codec="vp8",
            initial_state={"prompt": "invert"},
            timeout=20,
        )
        try:
            wait_for_frame(client.frames(timeout=10), close_to(invert(frame)))
            report = client.media_report(timeout=5)
            mimes = {
                item.codec.codec.mime_type.lower()
                for item in report
                if item.WhichOneof("stats") == "codec"
            }
            assert "video/vp8" in mimes and "video/h264" not in mimes, mimes
        finally:
            client.close()
