"""The official JS SDK (@decartai/sdk 0.1.20, livekit-client 2.20) in headless Chromium.

Real parts: Debian's Chromium, the SDK from npm (pinned in
tests/browser/package-lock.json), bundled for the page by esbuild, and the
emulator on loopback. The page (tests/browser/page.js) is served from its own
origin, so the browser enforces CORS on every request to the emulator's two
ports. Its camera is a canvas of four flat colours; what comes back is read
from the output video's pixels. What the SDK reports (connection states, queue
positions, the connection-quality verdict) is read from the page, what the
service received from the emulator.

Skips where node, npm or chromium are missing, unless DECART_SYNC_BROWSER_TESTS
is set (.ci/run installs them and sets it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from browser import REQUIRED, Browser, BrowserError, Site, install, missing
from helpers import SIGNALING, took_its_path

from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator, Faults

pytestmark = pytest.mark.timeout(900)  # the first run also installs the npm packages

MODEL = ModelDefinition("test-browser", fps=25, width=320, height=192, transport="livekit")
KEY = "browser-test-key"
QUADRANTS = [(40, 160, 90), (200, 60, 40), (230, 230, 230), (60, 90, 220)]  # as page.js
REFERENCE = (250, 20, 20)  # the uploaded image: one flat colour
TOLERANCE = 6  # levels: Chromium's own H.264 loop stays within 4
REQUIRED_UPSTREAM_KBPS = 3500  # the JS SDK's requiredUpstreamKbps


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    why = missing()
    if why is not None:
        if os.environ.get(REQUIRED):
            pytest.fail(f"{REQUIRED} is set but the browser test {why}")
        pytest.skip(f"the browser test {why}")
    install()
    with Site() as served:
        yield served


def within(expected: list[tuple[int, ...]], video: str = "output") -> str:
    """A JS expression: the ``video``'s latest picture when every quadrant is near
    ``expected``, else false (for `Browser.wait`)."""
    return (
        f"(() => {{ const s = window.page.sample({json.dumps(video)});"
        f" const want = {json.dumps(expected)};"
        " return s && s.quadrants.every((q, i) => q.every((v, j) =>"
        f" Math.abs(v - want[i][j]) <= {TOLERANCE})) && s; }})()"
    )


def wait_for_picture(
    page: Browser, expected: list[tuple[int, ...]], what: str, video: str = "output"
) -> dict:
    try:
        return page.wait(within(expected, video), timeout=60)
    except BrowserError:
        pytest.fail(f"{what}: want {expected}, last seen {page.call('sample', video)}")


def signaling_path(state: dict) -> str:
    """Which path livekit-client took, from what the page opened and still holds: one
    peer connection that sends and receives on ``/rtc/v1``, two on the classic ``/rtc``."""
    live = [p for p in state["peers"] if p["state"] == "connected"]
    if state["sockets"][-1] == "/rtc/v1":
        assert len(live) == 1 and live[0]["sends"] and live[0]["receives"], live
        return "/rtc/v1"
    assert state["sockets"][-1] == "/rtc", state["sockets"]
    assert sorted((p["sends"], p["receives"]) for p in live) == [(False, True), (True, False)]
    return "/rtc"


@pytest.mark.parametrize("v1", list(SIGNALING.values()), ids=list(SIGNALING))
def test_the_official_js_sdk_in_chromium(site: Site, v1: bool) -> None:
    # livekit-client 2.20 tries /rtc/v1 first and falls back to /rtc where it is not served.
    queue = Faults(queue_positions=3, queue_step=0.2)
    with (
        Emulator(api_keys=KEY, models=[MODEL], faults=queue, livekit_v1=v1) as emu,
        Browser(f"{site.origin}/page.html") as page,
        took_its_path(emu),
    ):
        model = {"name": MODEL.name, "width": MODEL.width, "height": MODEL.height,
                 "fps": MODEL.fps}  # fmt: skip
        page.call("init", {"emulatorUrl": emu.url, "restUrl": emu.rest_url,
                           "accountKey": KEY, "model": model})  # fmt: skip

        # A client token for this page's origin, asked for from the page (CORS on the
        # REST port), and an image uploaded with it.
        token = page.call("createToken", {"expiresIn": 600, "allowedModels": [MODEL.name],
                                          "allowedOrigins": [site.origin]})  # fmt: skip
        assert token["apiKey"].startswith("ek_") and token["token"].count(".") == 2
        assert token["permissions"] == {"models": [MODEL.name], "origins": [site.origin]}
        ref = page.call("upload", list(REFERENCE))
        assert ref["id"].startswith("file_") and ref["fetched_id"] == ref["id"]
        stored = emu.files.get(ref["id"])
        assert stored is not None and stored.data.startswith(b"\x89PNG")

        # Connect with the token: the queue's places shown on the way, then the room.
        page.call("connect", {}, timeout=120)
        state = page.call("state")
        assert [q["position"] for q in state["queue"]] == [3, 2, 1], state["queue"]
        assert state["connection"][:2] == ["connecting", "connected"]
        session = emu.wait_for_session(timeout=10)
        query = parse_qs(urlsplit(session.ws.request.path).query)
        assert query["api_key"] == [token["apiKey"]] and session.mode == "livekit"

        # Passthrough keeps the colours: the picture described as Chromium sent it.
        wait_for_picture(page, QUADRANTS, "passthrough")
        assert signaling_path(page.call("state")) == ("/rtc/v1" if v1 else "/rtc")

        # A prompt, acked (setPrompt resolves on prompt_ack), restyles the frames.
        assert page.call("setPrompt", "invert", timeout=30) is True
        inverted = [tuple(255 - v for v in q) for q in QUADRANTS]
        wait_for_picture(page, inverted, "inverted")

        # The uploaded image by its id: blended into the output (set_image acked).
        assert page.call("setImage", ref["id"], timeout=30) is True
        blended = [tuple((a + b) // 2 for a, b in zip(q, REFERENCE, strict=True)) for q in inverted]
        wait_for_picture(page, blended, "with the reference image")
        kinds = [m["type"] for m in session.messages]
        assert kinds == ["livekit_join", "prompt", "set_image"], kinds
        prompt = {"type": "prompt", "prompt": "invert", "enhance_prompt": False}
        assert session.messages[1] == prompt
        assert session.messages[-1]["image_ref"] == ref["id"]

        # A viewer from the session's subscribe token (credentials from the REST port,
        # the SDK's baseUrl) sees the same picture.
        assert page.call("subscribe", timeout=60) is True
        wait_for_picture(page, blended, "the viewer's", video="viewer")

        # The SDK's own verdict once warmed up: the loopback limits no bandwidth.
        page.wait("window.page.state().quality.some((r) => !r.warmingUp)", timeout=90)
        verdict = page.call("state")["verdict"]
        upstream = verdict["metrics"]["availableUpstreamKbps"]
        assert verdict["limitingFactor"] != "bandwidth", (verdict, page.call("peerStats"))
        assert upstream >= REQUIRED_UPSTREAM_KBPS, (verdict, page.call("peerStats"))
        assert page.call("state")["errors"] == []

        page.call("disconnect")
        assert session.wait(lambda: session.closed, 15), "the session outlived the page"
