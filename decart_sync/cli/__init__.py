"""``decart-sync``: restyle a video and record the result, check the way to the service,
or run the emulator. ``decart-sync --help`` shows `EXAMPLES`.

With no API key (``--api-key`` or ``$DECART_API_KEY``), ``stream`` starts the
embedded emulator and says so. While it runs, type a prompt and Enter to
change it; Ctrl-C stops and still finishes the output file. ``emulator``
hands the rest of its command line to the emulator's own (``python -m
decart_sync.emulator``), so it takes the same options and subcommands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import DecartSDKError
from ..options import add_flags
from . import generate
from .status import Console

PROG = "decart-sync"
# Help is read in a terminal: plain text only, no markup.
DESCRIPTION = (
    "Restyle a video and record the result, check the way to the service, or run the emulator."
)
EXAMPLES = f"""examples:
  {PROG} stream --source input.mp4 --prompt sepia --out out.mp4    # lucy-2.1 unless --model
  {PROG} stream --source lavfi:testsrc2=size=1280x720:rate=30 --prompts sepia invert
  {PROG} stream --source 0 --preview --out camera.mp4          # the first camera
  {PROG} stream --source rtsp://camera.local/stream --seconds 60 --out clip.mp4 -y
  {PROG} stream --model live_avatar --image face.png --audio speech.wav --out avatar.mp4
  {PROG} generate --model lucy-2.1 --prompt "anime style" clip.mp4 --out anime.mp4
  {PROG} emulator --port 8765
  {PROG} doctor [--deep --model lucy-2.1]    # can this machine reach the service?
  {PROG} models                              # the model table

With no API key (--api-key or $DECART_API_KEY), stream starts the embedded emulator.
"""
SOURCES = (
    "what to restyle: a media file, a camera (0, /dev/video0), a stream URL (rtsp://, "
    "http://...), an FFmpeg pattern (lavfi:testsrc2=size=1280x720:rate=30), or 'synthetic'"
)
EMULATOR = "emulator"
DEFAULT_MODEL = "lucy-2.1"  # today's service: what stream restyles when no --model is given

# connect()'s options that ``stream`` takes as flags, with the table's defaults and meanings
# (the model, prompt and image have forms of their own; callables have none).
STREAM_OPTIONS = (
    "api_key",
    "base_url",
    "timeout",
    "transport",
    "video_codec",
    "resolution",
    "speed",
    "queue_timeout",
    "ice_servers",
    "origin",
    "reconnect",
    "verify_tls",
    "mirror",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    stream = sub.add_parser(
        "stream",
        help="restyle a video source and write the result",
        epilog="For a video file, 'decart-sync generate' runs it as a job in the service's "
        "queue instead of streaming it at 1x.",
    )
    add = stream.add_argument
    add("--source", default="synthetic", help=SOURCES)
    add(
        "--model",
        default=None,
        help=f"a model name ({PROG} models lists them), or NAME:FPS:WxH for a custom one "
        f"(default: {DEFAULT_MODEL})",
    )
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
    add("--preview", action="store_true", help="show input and output (needs OpenCV)")
    add("--stats-json", default=None, metavar="FILE", help="write the final figures here")
    add_flags(stream, STREAM_OPTIONS)
    doctor = sub.add_parser("doctor", help="check the way to the service (a preflight)")
    add = doctor.add_argument
    add("--deep", action="store_true", help="also run a short synthetic session (needs --model)")
    add("--model", default=None, help="the --deep session's: a model name, or NAME:FPS:WxH")
    add(
        "--stun",
        nargs="+",
        default=None,
        metavar="URL",
        help="STUN servers to gather from (default: the public one the client uses, or "
        "the one a service on this machine announces, as the emulator does)",
    )
    add("--api-key", default=None, help="for --deep; default: $DECART_API_KEY")
    add("--base-url", default=None, help="default: $DECART_REALTIME_BASE_URL, else the service")
    add("--timeout", type=float, default=10.0, help="seconds for each step")
    add("--json", action="store_true", help="print the report as JSON")
    generate.add_parser(sub)
    listing = sub.add_parser("models", help="list the models: size, fps, media path, speeds")
    listing.add_argument("--json", action="store_true", help="print the table as JSON")
    # Listed here for --help only: main() hands "emulator ..." to the emulator's own parser.
    sub.add_parser(
        EMULATOR,
        help=f"serve the local emulator of the service; {EMULATOR} --help lists its options",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        if arguments[:1] == [EMULATOR]:  # its options are the emulator's own
            from ..emulator.cli import main as emulator_main

            return emulator_main(arguments[1:], prog=f"{PROG} {EMULATOR}")
        args = _parser().parse_args(arguments)
        if args.command == "generate":
            return generate.run(args, console)
        if args.command == "models":
            from .models import run as list_models

            return list_models(args)
        if args.command == "doctor":
            from .doctor import run as doctor

            return doctor(args, console)
        from .stream import Refused, run

        try:
            return run(args, console)
        except Refused as exc:
            console.say(f"{PROG}: {exc}")
            return 1
    except (DecartSDKError, ImportError) as exc:  # ImportError: the emulator extra is missing
        console.say(f"{PROG}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
