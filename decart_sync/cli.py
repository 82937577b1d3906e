"""``decart-sync``: run the emulator, or restyle a video and record the result.

    decart-sync stream --source input.mp4 --model mirage --prompt "sepia" --seconds 10 --out out.mp4
    decart-sync stream --source synthetic --prompt invert --out out.mp4
    decart-sync emulator --port 8765

With no API key (``--api-key`` or ``$DECART_API_KEY``), ``stream`` starts the
embedded emulator and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence

import av
import numpy as np

from . import models
from .client import connect
from .errors import DecartSDKError
from .models import ModelDefinition
from .sources import synthetic


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="decart-sync", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    stream = sub.add_parser("stream", help="restyle a video source and write the result")
    stream.add_argument("--source", default="synthetic", help="a media file, or 'synthetic'")
    stream.add_argument("--model", default="mirage", help="realtime model name")
    stream.add_argument("--prompt", default="sepia", help="style prompt ('none' = passthrough)")
    stream.add_argument("--seconds", type=float, default=10.0, help="how long to stream")
    stream.add_argument("--out", default="restyled.mp4", help="output video file")
    stream.add_argument("--api-key", default=None, help="default: $DECART_API_KEY")
    stream.add_argument("--base-url", default=None, help="default: $DECART_REALTIME_BASE_URL")
    stream.add_argument("--timeout", type=float, default=30.0, help="connect timeout, seconds")
    emulator = sub.add_parser("emulator", help="serve the local emulator of the service")
    emulator.add_argument(
        "args", nargs=argparse.REMAINDER, help="see python -m decart_sync.emulator -h"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "emulator":
            from .emulator.cli import main as emulator_main

            return emulator_main(args.args)
        return _stream(args)
    except (DecartSDKError, ImportError) as exc:  # ImportError: the emulator extra is missing
        print(f"decart-sync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _stream(args: argparse.Namespace) -> int:
    model = models.realtime(args.model)
    api_key = args.api_key or os.environ.get("DECART_API_KEY")
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if not api_key:
            from .emulator import Emulator

            emu = stack.enter_context(Emulator())
            base_url, api_key = emu.url, "local-emulator"
            print(f"no API key set: streaming through the embedded emulator at {emu.url}")
        source = synthetic(model) if args.source == "synthetic" else args.source
        prompt = None if args.prompt.lower() == "none" else args.prompt
        initial = {"prompt": {"text": prompt, "enhance": True}} if prompt else None
        started = time.monotonic()
        client = stack.enter_context(
            connect(
                None if model.is_avatar else source,
                model=model,
                api_key=api_key,
                base_url=base_url,
                initial_state=initial,
                timeout=args.timeout,
            )
        )
        print(
            f"connected to {model.name} in {time.monotonic() - started:.2f} s, "
            f"session {client.session_id}"
        )
        written = _record(client.frames(timeout=10.0), model, args.out, args.seconds)
        print(
            f"wrote {written} frames ({model.width}x{model.height}) to {args.out}; "
            f"stats {client.stats}"
        )
    return 0 if written else 1


def _record(frames: Iterator[np.ndarray], model: ModelDefinition, out: str, seconds: float) -> int:
    fps = round(model.fps)
    with av.open(out, "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = model.width, model.height, "yuv420p"
        start = time.monotonic()
        last_pts = -1
        written = 0
        for frame in frames:
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            pts = max(last_pts + 1, round(elapsed * fps))
            video = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video.pts = last_pts = pts
            container.mux(stream.encode(video))
            written += 1
        container.mux(stream.encode(None))
    return written


if __name__ == "__main__":
    sys.exit(main())
