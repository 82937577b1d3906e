"""Drive the official async SDK (``decart[realtime]==0.0.37``) against the emulator.

Runs in the official SDK's own virtualenv (see ``tests/e2e/test_official_sdk.py``),
which has neither decart_sync nor pytest: this file imports only the SDK, its
dependencies (aiortc, av) and numpy.

    python tests/drivers/official_client.py --url ws://127.0.0.1:PORT --scenario camera [--hold]

It prints one line, ``OBSERVATIONS {json}``, with what the SDK saw. With
``--hold`` it then keeps every connection open until a line (or EOF) arrives
on stdin, so the caller can inspect the emulator's live sessions before the
SDK disconnects. Errors are reported in the JSON (``"ok": false``) and in the
exit status.

Two things about the machine, none about the SDK, are adjusted here:

- aioice leaves 127.0.0.1 out of its host candidates, and the emulator answers
  with loopback candidates only: 127.0.0.1 is added to the candidates (what
  ``decart_sync/_process.py`` does for decart_sync itself).
- the SDK hardcodes the STUN server ``stun:stun.l.google.com:19302``; nothing
  here may leave 127.0.0.0/8, so the peer connection is built without ICE
  servers. The URL the SDK asked for is reported as ``stun_requested``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from official_media import (  # same folder, same virtualenv
    TONE_SECONDS,
    AudioWatch,
    Events,
    LogCapture,
    Remote,
    VideoWatch,
    blend,
    encode_png,
    grayscale,
    invert,
    patch_network,
    pattern,
    pattern_track,
    scaled,
    solid,
    stun_requested,
    timed,
    tone_wav,
)

API_KEY = "official-sdk-test-key"
SOLID_TOLERANCE = 5.0  # the same as TOLERANCE, for solid pictures
FRAMES_WANTED = 10
ACK_TIMEOUT = 20.0
# The live_avatar scenario's portrait.
PORTRAIT = (200, 160, 120)


# -- scenarios -------------------------------------------------------------------


class Scenario:
    """One run: connections opened are closed at the end, watches are stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: list[Any] = []
        self.watches: list[VideoWatch | AudioWatch] = []

    async def connect(
        self, model_name: str, *, track: Any = None, initial_state: Any = None
    ) -> tuple[Any, Remote, float]:
        from decart import models
        from decart.realtime.client import RealtimeClient
        from decart.realtime.types import RealtimeConnectOptions

        remote = Remote()
        options = RealtimeConnectOptions(
            model=models.realtime(model_name),
            on_remote_stream=remote,
            initial_state=initial_state,
        )
        client, seconds = await timed(
            RealtimeClient.connect(
                base_url=self.url, api_key=API_KEY, local_track=track, options=options
            )
        )
        self.clients.append(client)
        return client, remote, seconds

    async def video(self, remote: Remote) -> VideoWatch:
        watch = await remote.video_watch()
        self.watches.append(watch)
        return watch

    async def audio(self, remote: Remote) -> AudioWatch:
        watch = await remote.audio_watch()
        self.watches.append(watch)
        return watch

    async def close(self) -> None:
        for watch in self.watches:
            watch.stop()
        for client in reversed(self.clients):
            try:
                await asyncio.wait_for(client.disconnect(), 10)
            except Exception as exc:
                logging.warning("disconnect failed: %r", exc)


def client_report(client: Any, events: Events, connect_s: float) -> dict[str, Any]:
    return {
        "session_id": client.session_id,
        "subscribe_token": client.subscribe_token,
        "state": client.get_connection_state(),
        "connect_s": connect_s,
        **events.report(),
    }


async def camera(run: Scenario) -> dict[str, Any]:
    """mirage with an initial prompt; set_prompt; set_image."""
    from decart import ModelState, Prompt

    picture = pattern()
    client, remote, connect_s = await run.connect(
        "mirage",
        track=pattern_track(picture),
        initial_state=ModelState(prompt=Prompt(text="invert")),
    )
    events = Events(client)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["inverted"] = await watch.until(invert(picture), after=FRAMES_WANTED)

    _, out["set_prompt_s"] = await timed(client.set_prompt("grayscale"), ACK_TIMEOUT)
    out["grayscale"] = await watch.until(grayscale(picture), after=watch.count + 1)

    reference = solid((30, 90, 150))
    _, out["set_image_s"] = await timed(client.set_image(encode_png(reference)), ACK_TIMEOUT)
    # No prompt with the image: the prompt stays, the image blends in.
    out["with_image"] = await watch.until(
        blend(grayscale(picture), reference), after=watch.count + 1
    )
    out["first_tick_s"] = await events.first_tick()
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def passthrough(run: Scenario) -> dict[str, Any]:
    """mirage with no initial state (the SDK's passthrough message); then set()."""
    from decart import SetInput

    picture = pattern()
    client, remote, connect_s = await run.connect("mirage", track=pattern_track(picture))
    events = Events(client)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["unchanged"] = await watch.until(picture, after=FRAMES_WANTED)
    reference = solid((220, 200, 40))
    update = SetInput(prompt="invert", image=encode_png(reference))
    _, out["set_s"] = await timed(client.set(update), ACK_TIMEOUT)
    out["set_applied"] = await watch.until(blend(invert(picture), reference), after=watch.count + 1)
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def initial_image(run: Scenario) -> dict[str, Any]:
    """lucy-2.1 with an initial reference image (bytes) and prompt; then clear the image."""
    from decart import ModelState, Prompt

    picture = pattern()
    reference = solid((100, 60, 30))
    client, remote, connect_s = await run.connect(
        "lucy-2.1",
        track=pattern_track(picture),
        initial_state=ModelState(image=encode_png(reference), prompt=Prompt(text="invert")),
    )
    events = Events(client)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["with_image"] = await watch.until(blend(invert(picture), reference), after=FRAMES_WANTED)
    _, out["clear_image_s"] = await timed(client.set_image(None), ACK_TIMEOUT)
    out["cleared"] = await watch.until(invert(picture), after=watch.count + 1)
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def live_avatar(run: Scenario) -> dict[str, Any]:
    """live_avatar with a portrait (a data: URL) and prompt; play_audio brightens it."""
    from decart import ModelState, Prompt

    portrait = solid(PORTRAIT)
    data_url = "data:image/png;base64," + base64.b64encode(encode_png(portrait)).decode()
    client, remote, connect_s = await run.connect(
        "live_avatar", initial_state=ModelState(image=data_url, prompt=Prompt(text="smile"))
    )
    events = Events(client)
    watch = await run.video(remote)
    echo = await run.audio(remote)
    out: dict[str, Any] = {}
    # Silence: the emulator shows the portrait at a quarter of its brightness. A solid
    # colour survives VP8 almost exactly, so the tolerance is tighter than for gradients.
    silent = scaled(portrait, 0.25)
    out["silent"] = await watch.until(silent, after=FRAMES_WANTED, tolerance=SOLID_TOLERANCE)

    playing = asyncio.ensure_future(client.play_audio(tone_wav()))
    start = time.monotonic()
    out["loud"] = await watch.until(portrait, after=watch.count + 1, tolerance=SOLID_TOLERANCE)
    out["loud_while_playing"] = not playing.done()
    await asyncio.wait_for(playing, TONE_SECONDS + 15)
    out["play_audio_s"] = round(time.monotonic() - start, 3)
    out["silent_again"] = await watch.until(
        silent, after=watch.count + 1, tolerance=SOLID_TOLERANCE
    )
    out["echo_frames"] = echo.count
    out["echo_max_rms"] = round(echo.max_rms, 4)
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def bad_key(run: Scenario) -> dict[str, Any]:
    """An empty API key: the server's error must end connect at once, without retries."""
    from decart import models
    from decart.realtime.client import RealtimeClient
    from decart.realtime.types import RealtimeConnectOptions

    options = RealtimeConnectOptions(
        model=models.realtime("lucy-restyle"), on_remote_stream=Remote()
    )
    start = time.monotonic()
    try:
        client = await RealtimeClient.connect(
            base_url=run.url, api_key="", local_track=pattern_track(pattern()), options=options
        )
    except Exception as exc:
        return {
            "raised": type(exc).__name__,
            "message": str(exc),
            "seconds": round(time.monotonic() - start, 3),
        }
    run.clients.append(client)
    return {"raised": None, "seconds": round(time.monotonic() - start, 3)}


async def subscribe(run: Scenario) -> dict[str, Any]:
    """A mirage publisher; a viewer subscribes with its subscribe_token."""
    from decart import ModelState, Prompt
    from decart.realtime.client import RealtimeClient
    from decart.realtime.subscribe import SubscribeOptions, decode_subscribe_token

    picture = pattern()
    publisher, remote, connect_s = await run.connect(
        "mirage",
        track=pattern_track(picture),
        initial_state=ModelState(prompt=Prompt(text="invert")),
    )
    events = Events(publisher)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["publisher_inverted"] = await watch.until(invert(picture), after=FRAMES_WANTED)

    token = publisher.subscribe_token
    payload = decode_subscribe_token(token)
    out["token"] = {"sid": payload.sid, "ip": payload.ip, "port": payload.port}
    viewer_remote = Remote()
    viewer, out["subscribe_connect_s"] = await timed(
        RealtimeClient.subscribe(
            base_url=run.url,
            api_key=API_KEY,
            options=SubscribeOptions(token=token, on_remote_stream=viewer_remote),
        )
    )
    run.clients.append(viewer)
    viewer_events = Events(viewer)
    viewer_watch = await run.video(viewer_remote)
    out["viewer_inverted"] = await viewer_watch.until(invert(picture), after=FRAMES_WANTED)
    out["viewer_frame_size"] = viewer_watch.size
    out["viewer_kinds"] = viewer_remote.kinds
    out["viewer"] = {"state": viewer.get_connection_state(), **viewer_events.report()}
    out["client"] = client_report(publisher, events, connect_s)
    return out


SCENARIOS: dict[str, Callable[[Scenario], Awaitable[dict[str, Any]]]] = {
    "camera": camera,
    "passthrough": passthrough,
    "initial_image": initial_image,
    "live_avatar": live_avatar,
    "subscribe": subscribe,
    "bad_key": bad_key,
}


# -- main ------------------------------------------------------------------------


def emit(observations: dict[str, Any]) -> None:
    print("OBSERVATIONS " + json.dumps(observations), flush=True)


async def wait_for_stdin(timeout: float) -> None:
    """Until a line or EOF on stdin (a daemon thread: a stuck read cannot block exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def release() -> None:
        if not done.done():
            done.set_result(None)

    def read() -> None:
        sys.stdin.readline()
        loop.call_soon_threadsafe(release)

    threading.Thread(target=read, name="official-client-stdin", daemon=True).start()
    try:
        await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        logging.warning("no release on stdin within %s s; disconnecting", timeout)


async def main_async(url: str, scenario: str, hold: bool, budget: float) -> int:
    from importlib.metadata import version

    patch_network()
    sdk_log = LogCapture()
    logging.getLogger("decart").addHandler(sdk_log)
    run = Scenario(url)
    observations: dict[str, Any] = {"scenario": scenario, "sdk_version": version("decart")}
    status = 0
    try:
        result = await asyncio.wait_for(SCENARIOS[scenario](run), budget)
        observations.update(result, ok=True)
    except Exception as exc:
        observations.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        observations["traceback"] = traceback.format_exc()
        status = 1
    observations["stun_requested"] = sorted(set(stun_requested))
    observations["sdk_log"] = sdk_log.records
    emit(observations)
    try:
        if hold:
            await wait_for_stdin(budget)
    finally:
        await run.close()
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="the emulator, ws://127.0.0.1:PORT")
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--hold", action="store_true", help="wait for stdin before closing")
    parser.add_argument("--budget", type=float, default=75.0, help="seconds for the scenario")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main_async(args.url, args.scenario, args.hold, args.budget)))


if __name__ == "__main__":
    main()
