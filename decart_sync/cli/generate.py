"""``decart-sync generate``: a picture or a video file through an image or video model.

    decart-sync generate --model lucy-image-2 --prompt "oil painting" photo.jpg --out oil.png
    decart-sync generate --model lucy-2.1 --prompt "anime style" clip.mp4 --out anime.mp4 -y

An image model edits at once (``DecartClient.process``); a video model runs as
a job in the service's queue (``DecartClient.queue``), the better way for a
file than streaming it through a realtime model at 1x. One status line says
where it stands: the job's status, the time, the bytes up and down. With no
API key the embedded emulator serves it, and says so. The output is written
only once it is whole (a file beside it, renamed), converted when its
extension names another format than the service's (a PNG to ``.jpg``, an MP4
remuxed to ``.mkv``); a refused run, a failed job or Ctrl-C leaves nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from typing import Any

from .status import Console

IMAGE_OUT = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".webp": "libwebp", ".bmp": "bmp"}
VIDEO_OUT = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


class Refused(Exception):
    """The run cannot go on; the message says why (exit code 1)."""


def add_parser(sub: Any) -> None:
    """The ``generate`` subcommand's arguments, on the CLI's subparsers."""
    parser = sub.add_parser(
        "generate",
        help="a picture or a video file through an image or video model",
        description="An image model edits the picture at once; a video model runs the file "
        "as a job in the service's queue. The output is written only once it is whole.",
    )
    add = parser.add_argument
    add("input", help="the picture (image models) or video (video models) to edit")
    add("--model", required=True, help="an image model (lucy-image-2) or video model (lucy-2.1)")
    add("--prompt", default=None, help="what to do to it (restyle models: or --reference-image)")
    add("--out", required=True, help="the output file (.png/.jpg/.webp, or .mp4/.mov/.mkv)")
    add("-y", action="store_true", help="overwrite the output file if it exists")
    add("--reference-image", default=None, metavar="FILE", help="a picture to guide the edit")
    add("--seed", type=int, default=None)
    add("--resolution", default=None, help="e.g. 720p (default: the service's)")
    add("--enhance-prompt", action=argparse.BooleanOptionalAction, default=None)
    add("--api-key", default=None, help="default: $DECART_API_KEY, else the local emulator")
    add("--base-url", default=None, help="the REST API; default: $DECART_BASE_URL")
    add("--timeout", type=float, default=None, help="seconds in all (default 300 / 900 for video)")
    add("--poll-interval", type=float, default=1.5, help="seconds between a job's status checks")


def run(args: argparse.Namespace, console: Console) -> int:
    try:
        return _run(args, console)
    except Refused as exc:
        console.say(f"decart-sync: {exc}")
        return 1


def _run(args: argparse.Namespace, console: Console) -> int:
    from .. import models
    from ..errors import ModelNotFoundError

    if args.model in models.IMAGE_MODELS:
        model, table = models.image(args.model), IMAGE_OUT
    elif args.model in models.VIDEO_MODELS:
        model, table = models.video(args.model), VIDEO_OUT
    else:
        raise ModelNotFoundError(
            f"unknown model {args.model!r}; image models: {', '.join(models.image.names())}; "
            f"video models: {', '.join(models.video.names())}"
        )
    video = model.inputs != "image"
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in table:
        raise Refused(f"--out {args.out}: a {model.name} result is written as {', '.join(table)}")
    if os.path.exists(args.out) and not args.y:
        raise Refused(f"{args.out} already exists; pass -y to overwrite it")
    if not os.path.isfile(args.input):
        raise Refused(f"{args.input}: no such file")
    fields = {
        "prompt": args.prompt,
        "data": args.input,
        "reference_image": args.reference_image,
        "seed": args.seed,
        "resolution": args.resolution,
        "enhance_prompt": args.enhance_prompt,
    }
    timeout = args.timeout or (900.0 if video else 300.0)
    line = _Line(console, model.name)
    with _client(args, model.name, console) as client:
        try:
            if video:
                result = client.queue.submit_and_poll(
                    model,
                    timeout=timeout,
                    poll_interval=args.poll_interval,
                    progress=line.show,
                    **fields,
                )
                line.end()
                if not result.ok or result.data is None:
                    raise Refused(f"job {result.job_id} {result.status}: {result.error}")
                data = result.data
            else:
                data = client.process(model=model, timeout=timeout, progress=line.show, **fields)
                line.end()
        except KeyboardInterrupt:
            line.end()
            if line.job_id:
                console.say(f"stopped; job {line.job_id} goes on at the service")
            raise
    what = write(args.out, data, table[ext], video=video)
    console.say(f"wrote {args.out}: {what} in {line.elapsed:.1f} s")
    return 0


@contextlib.contextmanager
def _client(args: argparse.Namespace, name: str, console: Console) -> Any:
    from ..client.account import DecartClient

    api_key = args.api_key or os.environ.get("DECART_API_KEY")
    if api_key:
        yield DecartClient(api_key=api_key, base_url=args.base_url)
        return
    from ..emulator import Emulator

    with Emulator() as emu:
        console.say(f"no API key set: {name} runs on the embedded emulator at {emu.rest_url}")
        yield DecartClient(api_key="local-emulator", base_url=emu.rest_url)


class _Line:
    """The live status line: the stage or the job's status, time, bytes up and down."""

    def __init__(self, console: Console, model: str) -> None:
        self._console = console
        self._model = model
        self._last = ""
        self.job_id: str | None = None
        self.elapsed = 0.0

    def show(self, progress: Any) -> None:
        self.job_id = progress.job_id or self.job_id
        self.elapsed = progress.elapsed
        stage = progress.status if progress.stage == "wait" else progress.stage
        job = f"  job {progress.job_id[:12]}" if progress.job_id else ""
        text = (
            f"{self._model}{job}  {stage:<10}  {progress.elapsed:6.1f} s  "
            f"up {_size(progress.sent)}/{_size(progress.to_send)}  "
            f"down {_size(progress.received)}"
            + (f"/{_size(progress.to_receive)}" if progress.to_receive else "")
        )
        if stage != self._last or self._console.due():
            self._last = stage
            self._console.status(text)

    def end(self) -> None:
        self._console.end_status()


def _size(count: int | None) -> str:
    if count is None:
        return "?"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} kB"
    return f"{count / 1024 / 1024:.1f} MB"


def write(path: str, data: bytes, target: str, *, video: bool) -> str:
    """Write ``data`` to ``path`` whole or not at all; a description of what it holds."""
    folder = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1]
    fd, part = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=ext, dir=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            found = _format_of(data)
            if found == target or (target == "mov" and found == "mp4"):  # the same family
                file.write(data)
                data = b""
        if data:
            _convert(data, part, target, video=video)
        what = _describe(part, video=video)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(part, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
        os.replace(part, path)
        return what
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


def _format_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "mjpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "libwebp"
    if data[4:8] == b"ftyp":
        return "mov" if data[8:10] == b"qt" else "mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    return None


def _convert(data: bytes, path: str, target: str, *, video: bool) -> None:
    """The result in another format: a picture re-encoded, a video remuxed (no re-encode)."""
    import io

    import av

    from ..errors import ProcessingError

    try:
        with av.open(io.BytesIO(data)) as source:
            if video:
                with av.open(path, "w", format=target) as sink:
                    inp = source.streams.video[0]
                    out = sink.add_stream_from_template(inp)
                    for packet in source.demux(inp):
                        if packet.dts is not None:
                            packet.stream = out
                            sink.mux(packet)
                return
            frame = next(source.decode(video=0))
            codec: Any = av.CodecContext.create(target, "w")
            codec.width, codec.height = frame.width, frame.height
            codec.pix_fmt = {"mjpeg": "yuvj420p", "bmp": "bgr24", "png": "rgb24"}.get(
                target, "yuv420p"
            )
            picture = frame.reformat(format=codec.pix_fmt)
            packets = [*codec.encode(picture), *codec.encode(None)]
            with open(path, "wb") as file:
                file.write(b"".join(bytes(p) for p in packets))
    except (av.FFmpegError, ValueError, StopIteration, IndexError) as exc:
        raise ProcessingError(f"the result could not be written as {path}: {exc}") from None


def _describe(path: str, *, video: bool) -> str:
    """What the written file holds, read back with FFmpeg (a check that it plays)."""
    import av

    from ..errors import ProcessingError

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            frame = next(container.decode(stream))
            if not video:
                return f"{frame.width}x{frame.height} picture"
            container.seek(0)
            frames = sum(1 for p in container.demux(stream) if p.size)
            rate = float(stream.average_rate or 0)
            return f"{frames} frames, {frame.width}x{frame.height} at {rate:g} fps"
    except (av.FFmpegError, ValueError, StopIteration, IndexError) as exc:
        raise ProcessingError(f"the result does not play ({exc}); nothing written") from None
