"""The emulator's command line: serve the emulator, or tell a running one to drop or misbehave.

``python -m decart_sync.emulator`` and ``decart-sync emulator`` both run `main()`.

    python -m decart_sync.emulator [--host 127.0.0.1] [--port 8765] [--rest-port 8766]
        [--api-key KEY ...] [--no-livekit-v1]
        [--model NAME:FPS:WIDTHxHEIGHT[:TRANSPORT] ...] [--fault FIELD=VALUE ...]
        (e.g. --fault loss=0.05 --fault jitter_ms=30 --fault blackout=5,3)
    python -m decart_sync.emulator drop --url ws://127.0.0.1:8765 [--how both]
    python -m decart_sync.emulator faults --url ws://127.0.0.1:8765 [--reset] [FIELD=VALUE ...]

The first line printed when serving is the URL, then the REST API's URL
(scripts read them, e.g. with ``--port 0``). ``faults`` changes a running
emulator's faults (over the ones it has, or over none with ``--reset``) and
prints them as JSON with its live sessions and their ages in seconds, which
is what a blackout's ``at_s`` counts from: a test that drives an emulator in
another process can black out its session now (``blackout=AGE,3``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from types import FrameType
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs

from .. import models
from ..errors import DecartSDKError
from ..models import ModelDefinition
from .connection import DROP_MODES
from .embedded import Emulator
from .faults import Faults
from .http_routes import ADMIN_PREFIX

DEFAULT_PORT = 8765
PROG = "python -m decart_sync.emulator"


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); ``prog`` names the command
    in help and errors (``decart-sync emulator`` hands its arguments here)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "drop":
        return _drop(args[1:], f"{prog} drop")
    if args and args[0] == "faults":
        return _set_faults(args[1:], f"{prog} faults")
    if args and args[0] == "serve":
        args = args[1:]
    return _serve(args, prog)


def _serve(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a local emulator of Decart's realtime service until Ctrl-C. "
        f"(Subcommands: '{prog} drop --url URL [--how both]' drops a running emulator's "
        f"sessions; '{prog} faults --url URL [--reset] [FIELD=VALUE ...]' changes its faults.)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (0: any free one; default %(default)s)"
    )
    parser.add_argument(
        "--rest-port",
        type=int,
        default=None,
        help="the REST API's port (files, client tokens); default --port + 1, or any free one",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this key (repeatable); default: any non-empty key",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        default=[],
        type=_model,
        metavar="NAME:FPS:WxH[:TRANSPORT]",
        help="serve an extra model, e.g. bench-small:25:640x352 or lk:30:1280x720:livekit "
        "(repeatable)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        dest="faults",
        default=[],
        metavar="FIELD=VALUE",
        help=f"misbehave on purpose (repeatable); fields: {', '.join(_FAULT_FIELDS)}",
    )
    parser.add_argument(
        "--livekit-v1",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve LiveKit's /rtc/v1 (one peer connection, what LiveKit clients try first); "
        "--no-livekit-v1 serves only the classic /rtc (two), as a LiveKit server before v1 "
        "did, and clients fall back to it (default: serve it)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        faults = Faults.parse(args.faults)
    except ValueError as exc:
        parser.error(str(exc))

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. from a test harness) closes as cleanly as Ctrl-C does.
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        rest_port = args.rest_port
        if rest_port is None:
            rest_port = args.port + 1 if args.port else 0
        with Emulator(
            args.host,
            args.port,
            api_keys=args.api_keys,
            models=args.models,
            faults=faults,
            rest_port=rest_port,
            livekit_v1=args.livekit_v1,
        ) as emu:
            print(
                f"decart-sync emulator serving at {emu.url}, REST API at {emu.rest_url} "
                f"(Ctrl-C stops); STUN at {emu.stun_url}",
                flush=True,
            )
            while not stop.wait(0.5):  # sliced: Ctrl-C lands at once
                pass
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: could not serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _drop(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Make a running emulator drop its live sessions (a simulated outage).",
    )
    parser.add_argument("--url", default=f"ws://127.0.0.1:{DEFAULT_PORT}", help="emulator URL")
    parser.add_argument("--how", choices=DROP_MODES, default="both", help="what to drop")
    args = parser.parse_args(argv)
    try:
        with urllib.request.urlopen(admin_url(args.url, "drop", how=args.how), timeout=10) as r:
            print(r.read().decode("utf-8", "replace").strip())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"error: could not reach the emulator at {args.url}: {exc}", file=sys.stderr)
        return 1
    return 0


def _set_faults(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Change a running emulator's faults, then print them and its live sessions "
        "(with their ages, which blackout's at_s counts from) as JSON.",
    )
    parser.add_argument("--url", default=f"ws://127.0.0.1:{DEFAULT_PORT}", help="emulator URL")
    parser.add_argument("--reset", action="store_true", help="start from no faults")
    parser.add_argument(
        "settings",
        nargs="*",
        metavar="FIELD=VALUE",
        help=f"fields: {', '.join(_FAULT_FIELDS)}",
    )
    args = parser.parse_args(argv)
    try:
        report = set_faults(args.url, args.settings, reset=args.reset)
    except ValueError as exc:  # refused here, before anything is sent
        parser.error(str(exc))
    except urllib.error.HTTPError as exc:
        print(f"error: the emulator refused: {exc.read().decode(errors='replace').strip()}",
              file=sys.stderr)  # fmt: skip
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: could not reach the emulator at {args.url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


def set_faults(url: str, settings: Sequence[str] = (), *, reset: bool = False) -> dict[str, Any]:
    """Change the faults of the emulator at ``url`` (in another process) by ``FIELD=VALUE``
    settings, over the ones it has or, with ``reset``, over none; its answer: the faults, and
    its live sessions with their ages. ValueError for a setting
    [`Faults.parse()`][decart_sync.emulator.Faults.parse] refuses."""
    Faults.parse(settings)
    params = dict(setting.split("=", 1) for setting in settings)
    if reset:
        params["reset"] = "1"
    with urllib.request.urlopen(admin_url(url, "faults", **params), timeout=10) as response:
        report: dict[str, Any] = json.loads(response.read())
    return report


def admin_url(url: str, command: str, **params: str) -> str:
    """The HTTP admin URL on the same port as a ``ws://`` / ``http://`` emulator URL."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme or "http")
    return urlunsplit((scheme, parts.netloc, ADMIN_PREFIX + command, urlencode(params), ""))


_FAULT_FIELDS = [field.name for field in attrs.fields(Faults)]


def _model(text: str) -> ModelDefinition:
    try:
        return models.parse(text, names=False)
    except DecartSDKError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
