"""``decart-sync stream``: restyle a source, record the result, report as it goes.

The run: open the source (av decodes files, lavfi patterns, cameras and
network streams: `decart_sync.sources.frames_of()`), connect, then one
loop on the main thread takes output frames, writes them, draws the preview
and the status line. Prompts, the avatar's audio and its returned audio
have threads of their own. The run ends at ``--seconds``, when a finite
source (or the avatar's ``--audio``) is done, at ``q`` in the preview, or at
Ctrl-C; every way out finishes a playable file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import av

from .. import models, options
from .._threads import Worker
from ..client.start import RealtimeClient, connect
from ..errors import DecartSDKError, TimeoutError_
from ..models import ModelDefinition
from ..sources import Timed, frames_of, is_media_spec, synthetic
from . import STREAM_OPTIONS
from .output import Recorder
from .preview import INSTALL, Preview, load_cv2
from .prompts import Prompts, stdin_is_interactive
from .status import Console, status_line, summary, write_json

POLL = 0.25  # seconds the loop waits for a frame before it looks around
TAIL = 1.0  # seconds of output still recorded after a finite source ended


class Refused(Exception):
    """The run cannot start; the message says why (exit code 1)."""


class Tap:
    """Passes a source's frames through and keeps the newest, for the preview."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items
        self.latest: Any = None

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            self.latest = item.frame if isinstance(item, Timed) else item
            yield item


def run(args: argparse.Namespace, console: Console) -> int:
    if args.model is None:
        from . import DEFAULT_MODEL

        args.model = DEFAULT_MODEL
        console.say(f"no --model given: streaming {DEFAULT_MODEL} (decart-sync models lists them)")
    model = models.parse(args.model)
    if os.path.exists(args.out) and not args.y:
        raise Refused(f"{args.out} already exists; pass -y to overwrite it")
    cv2 = load_cv2() if args.preview else None
    if args.preview and cv2 is None:
        raise Refused(INSTALL)
    if args.audio and not model.is_avatar:
        raise Refused(f"--audio drives live_avatar only, not {model.name}")
    tap = None if model.is_avatar else Tap(_source(args.source, model))
    prompts = list(args.prompts or [])
    first = prompts[0] if prompts else args.prompt
    start = options.with_prompt(
        {},
        first if first and first.lower() != "none" else None,
        image=args.image or None,
    )
    keywords = {**options.from_flags(args, STREAM_OPTIONS), **start}
    api_key = keywords.pop("api_key") or os.environ.get("DECART_API_KEY")
    with contextlib.ExitStack() as stack:
        base_url = keywords.pop("base_url")
        if not api_key:
            from ..emulator import Emulator

            emu = stack.enter_context(Emulator(models={model.name: model}))
            base_url, api_key = emu.url, "local-emulator"
            console.say(f"no API key set: streaming through the embedded emulator at {emu.url}")
        client = stack.enter_context(
            connect(tap, model=model, api_key=api_key, base_url=base_url, **keywords)
        )
        stats = client.stats
        console.say(
            f"connected to {model.name} in {stats['connect_seconds']:.2f} s, "
            f"session {client.session_id}; writing {args.out}"
        )
        try:
            recorder = Recorder(args.out, model, audio=model.is_avatar)
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise Refused(f"cannot write {args.out}: {exc}") from None
        preview = Preview(cv2, model) if cv2 is not None else None
        session = _Session(client, recorder, console, args, tap, preview)
        try:
            session.run(prompts)
        finally:
            recorder.close()
            if preview is not None:
                preview.close()
        report = session.report(model)
    console.say(summary(report))
    if args.stats_json:
        write_json(args.stats_json, report)
    if report["error"]:
        return 1
    if session.interrupted:
        return 130
    return 0 if report["frames_written"] else 1


def _source(spec: str, model: ModelDefinition) -> Iterator[Any]:
    if spec == "synthetic":
        return synthetic(model)
    return frames_of(spec)()


def _duration(spec: str) -> float | None:
    """A media file's length, when it knows it."""
    if spec == "synthetic" or is_media_spec(spec) or not os.path.isfile(spec):
        return None
    with contextlib.suppress(av.FFmpegError), av.open(spec) as container:
        return container.duration / 1_000_000 if container.duration else None
    return None


class _Session:
    """One recording run; its loop lives on the main thread."""

    def __init__(
        self,
        client: RealtimeClient,
        recorder: Recorder,
        console: Console,
        args: argparse.Namespace,
        tap: Tap | None,
        preview: Preview | None,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.console = console
        self.args = args
        self.tap = tap
        self.preview = preview
        self.stop = threading.Event()
        self.interrupted = False
        self.error: DecartSDKError | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.finished_at: float | None = None  # when a finite input ran out
        self.played = threading.Event()  # the avatar's --audio was played
        durations = [d for d in (args.seconds, _duration(args.source)) if d]
        self.total = min(durations) if durations and not client.model.is_avatar else args.seconds

    def run(self, prompts: list[str]) -> None:
        client = self.client
        driver = Prompts(
            lambda text: client.set_prompt(text),
            self.console.say,
            schedule=prompts,
            every=self.args.every,
            read_stdin=stdin_is_interactive(),
        )
        helpers = [self._helper(self._audio_out, "decart-sync-cli-audio")]
        if self.args.audio:
            helpers.append(self._helper(self._play, "decart-sync-cli-play"))
        main = threading.current_thread() is threading.main_thread()  # signals need it
        previous = signal.getsignal(signal.SIGINT)
        if main:
            signal.signal(signal.SIGINT, self._on_sigint)
        try:
            driver.start()
            for helper in helpers:
                helper.start()
            self._loop()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            self.ended = time.monotonic()
            self.stop.set()
            driver.stop()
            for helper in helpers:
                helper.stop(2.0)
            self.console.end_status()

    def _helper(self, target: Callable[[], None], name: str) -> Worker:
        # Not daemons, like the prompts' threads; all of them end on the run's stop.
        return Worker(target, name, stopping=self.stop, daemon=False)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        self.interrupted = True
        self.stop.set()

    def _loop(self) -> None:
        frames = self.client.frames(timeout=POLL)
        while not self.stop.is_set() and not self._over():
            try:
                frame = next(frames)
            except TimeoutError_:
                frame = None
            except StopIteration:
                return
            except DecartSDKError as exc:
                self.error = exc
                self.console.say(f"decart-sync: the session ended: {exc}")
                return
            elapsed = time.monotonic() - self.started
            if frame is not None:
                self.recorder.video(frame, elapsed)
                if self.preview is not None:
                    source = self.tap.latest if self.tap is not None else None
                    if not self.preview.show(source, frame):
                        return
            if self.console.due():  # client.stats asks the loop: not for every frame
                stats = self.client.stats
                self.console.status(status_line(elapsed, self.total, self.recorder.frames, stats))

    def _over(self) -> bool:
        now = time.monotonic()
        if self.args.seconds and now - self.started >= self.args.seconds:
            return True
        if self.finished_at is None and (self.client.source_finished or self._audio_done()):
            self.finished_at = now
        return self.finished_at is not None and now - self.finished_at >= TAIL

    def _audio_done(self) -> bool:
        return bool(self.args.audio) and self.played.is_set()

    def _play(self) -> None:
        try:
            self.client.play_audio(self.args.audio)
        except DecartSDKError as exc:
            self.console.say(f"decart-sync: the audio could not be played: {exc}")
        finally:
            self.played.set()

    def _audio_out(self) -> None:
        """The avatar's returned audio into the file, until the run stops."""
        if not self.client.model.is_avatar:
            return
        chunks = self.client.audio_frames(timeout=POLL)
        while not self.stop.is_set():
            try:
                chunk = next(chunks)
            except TimeoutError_:
                continue
            except (StopIteration, DecartSDKError):
                return
            self.recorder.audio(chunk, time.monotonic() - self.started)

    def report(self, model: ModelDefinition) -> dict[str, Any]:
        return {
            "output": self.args.out,
            "model": model.name,
            "size": f"{model.width}x{model.height}",
            "fps": round(model.fps),
            "frames_written": self.recorder.frames,
            "audio_seconds": round(self.recorder.audio_seconds, 2),
            "seconds": round((self.ended or time.monotonic()) - self.started, 2),
            "interrupted": self.interrupted,
            "error": None if self.error is None else str(self.error),
            "stats": self.client.stats,
        }
