"""``decart-sync``: restyle a video and record the result, or run the emulator.

    decart-sync stream --source input.mp4 --model mirage --prompt sepia --out out.mp4
    decart-sync stream --source lavfi:testsrc2=size=1280x720:rate=30 --prompts sepia invert
    decart-sync stream --source 0 --preview --out camera.mp4          # the first camera
    decart-sync stream --source rtsp://camera.local/stream --seconds 60 --out clip.mp4 -y
    decart-sync stream --model live_avatar --image face.png --audio speech.wav --out avatar.mp4
    decart-sync generate --model lucy-2.1 --prompt "anime style" clip.mp4 --out anime.mp4
    decart-sync emulator --port 8765
    decart-sync doctor [--deep --model lucy-2.1]    # can this machine reach the service?

With no API key (``--api-key`` or ``$DECART_API_KEY``), ``stream`` starts the
embedded emulator and says so. While it runs, type a prompt and Enter to
change it; Ctrl-C stops and still finishes the output file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import DecartSDKError
from ..realtime.transports import TRANSPORTS
from . import generate
from .status import Console

SOURCES = (
    "what to restyle: a media file, a camera (0, /dev/video0), a stream URL (rtsp://, "
    "http://...), an FFmpeg pattern (lavfi:testsrc2=size=1280x720:rate=30), or 'synthetic'"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="decart-sync", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    stream = sub.add_parser(
        "stream",
        help="restyle a video source and write the result",
        epilog="For a video file, 'decart-sync generate' runs it as a job in the service's "
        "queue instead of streaming it at 1x.",
    )
    add = stream.add_argument
    add("--source", default="synthetic", help=SOURCES)
    add("--model", default="mirage", help="a model name, or NAME:FPS:WxH for a custom one")
    add("--prompt", default="sepia", help="the starting prompt ('none' = passthrough)")
    add("--prompts", nargs="+", metavar="PROMPT", help="prompts to cycle through, see --every")
    add("--every", type=float, default=5.0, metavar="SECONDS", help="seconds between --prompts")
    add("--image", default=None, help="reference image (file, URL, file_... id); avatar: the face")
    add("--audio", default=None, help="live_avatar: an audio file that drives the avatar")
    add(
        "--seconds",
        type=float,
        default=None,
        help="stop after this long (default: when the source ends, or Ctrl-C)",
    )
    add("--out", default="restyled.mp4", help="the output video file")
    add("-y", action="store_true", help="overwrite the output file if it exists")
    add("--transport", choices=TRANSPORTS, default=None, help="default: the model's")
    add("--preview", action="store_true", help="show input and output (needs OpenCV)")
    add("--stats-json", default=None, metavar="FILE", help="write the final figures here")
    add("--api-key", default=None, help="default: $DECART_API_KEY")
    add("--base-url", default=None, help="default: $DECART_REALTIME_BASE_URL")
    add("--timeout", type=float, default=30.0, help="connect timeout, seconds")
    doctor = sub.add_parser("doctor", help="check the way to the service (a preflight)")
    add = doctor.add_argument
    add("--deep", action="store_true", help="also run a short synthetic session (needs --model)")
    add("--model", default=None, help="the model of the --deep session")
    add("--stun", nargs="+", default=None, metavar="URL", help="STUN servers to gather from")
    add("--api-key", default=None, help="for --deep; default: $DECART_API_KEY")
    add("--base-url", default=None, help="default: $DECART_REALTIME_BASE_URL, else the service")
    add("--timeout", type=float, default=10.0, help="seconds for each step")
    add("--json", action="store_true", help="print the report as JSON")
    generate.add_parser(sub)
    emulator = sub.add_parser("emulator", help="serve the local emulator of the service")
    emulator.add_argument(
        "args", nargs=argparse.REMAINDER, help="see python -m decart_sync.emulator -h"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "emulator":
            from ..emulator.cli import main as emulator_main

            return emulator_main(args.args)
        if args.command == "generate":
            return generate.run(args, console)
        if args.command == "doctor":
            from .doctor import run as doctor

            return doctor(args, console)
        from .stream import Refused, run

        try:
            return run(args, console)
        except Refused as exc:
            console.say(f"decart-sync: {exc}")
            return 1
    except (DecartSDKError, ImportError) as exc:  # ImportError: the emulator extra is missing
        console.say(f"decart-sync: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
