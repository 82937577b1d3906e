"""Prompts while ``decart-sync stream`` runs: a timed list, and lines typed on standard input.

``--prompts a b c --every 5`` moves to the next prompt every 5 s (cycling);
each line read from standard input (a terminal, or a pipe) is a new prompt.
Both go to one worker thread, which waits for each acknowledgement, so the
recording loop never blocks on the service. Both threads stop and are
joined by `Prompts.stop()`.
"""

from __future__ import annotations

import os
import queue
import select
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence

from .._portal import Deadline
from .._threads import Worker
from ..errors import DecartSDKError

POLL = 0.2  # seconds between checks for stop


def stdin_is_interactive() -> bool:
    """A terminal or a pipe: someone (or something) may type prompts there."""
    try:
        fd = sys.stdin.fileno()
        return os.isatty(fd) or stat.S_ISFIFO(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):  # no stdin, or a test runner's stand-in
        return False


class Prompts:
    def __init__(
        self,
        set_prompt: Callable[[str], None],
        say: Callable[[str], None],
        *,
        schedule: Sequence[str] = (),
        every: float | None = None,
        read_stdin: bool = False,
    ) -> None:
        self._set_prompt = set_prompt
        self._say = say
        self._schedule = list(schedule)
        self._every = every
        self._stop = threading.Event()  # one for both threads
        self._queue: queue.Queue[str] = queue.Queue()
        self._workers = [self._worker(self._work, "decart-sync-cli-prompts")]
        if read_stdin and sys.platform != "win32":  # select() on pipes is POSIX only
            self._workers.append(self._worker(self._read, "decart-sync-cli-stdin"))

    def _worker(self, target: Callable[[], None], name: str) -> Worker:
        # Not daemons: the run's exit waits for a prompt in flight, as it always did.
        return Worker(target, name, stopping=self._stop, daemon=False)

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def stop(self, timeout: float = 2.0) -> None:
        deadline = Deadline(timeout)
        self._stop.set()
        for worker in self._workers:
            worker.join(deadline.remaining())

    def _work(self) -> None:
        index = 0
        due = time.monotonic() + self._every if self._every and len(self._schedule) > 1 else None
        while not self._stop.is_set():
            wait = POLL if due is None else max(0.0, min(POLL, due - time.monotonic()))
            try:
                text = self._queue.get(timeout=wait)
            except queue.Empty:
                if due is None or time.monotonic() < due:
                    continue
                assert self._every is not None
                index = (index + 1) % len(self._schedule)
                text, due = self._schedule[index], due + self._every
            self._apply(text)

    def _apply(self, text: str) -> None:
        started = time.monotonic()
        try:
            self._set_prompt(text)
        except DecartSDKError as exc:
            self._say(f"prompt {text!r} failed: {exc}")
            return
        self._say(f"prompt {text!r} acknowledged in {time.monotonic() - started:.2f} s")

    def _read(self) -> None:
        fd = sys.stdin.fileno()
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], POLL)
            if not ready:
                continue
            data = os.read(fd, 4096)
            if not data:
                return  # end of input: the run goes on with the prompts it has
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace").strip()
                if text:
                    self._queue.put(text)
