"""Uploads and downloads of media, counted as they go and bounded by one deadline.

``requests`` bounds each socket operation, not a whole transfer; here the
upload's body is read by the HTTP library chunk by chunk through
`_Upload`, and the download is read in chunks, so both check the
deadline between chunks and report their bytes to a ``progress`` callback
(the CLI's live line). A `Progress` is what the callback receives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import requests
import urllib3

from ..errors import DecartSDKError
from .http import Account, ErrorFactory
from .inputs import Form

CHUNK = 64 * 1024
TICK = 0.25  # seconds between progress calls while nothing else happens


@attrs.frozen
class Progress:
    """Where a generation stands. ``stage``: ``"upload"``, ``"wait"`` (the job is
    queued or running; ``status`` says which), ``"download"`` or ``"done"``."""

    stage: str
    elapsed: float
    sent: int = 0
    to_send: int = 0
    received: int = 0
    to_receive: int | None = None
    job_id: str | None = None
    status: str | None = None


ProgressCallback = Callable[[Progress], object]


class Tracker:
    """One operation's clock and byte counts; tells ``progress`` when they change."""

    def __init__(self, timeout: float, progress: ProgressCallback | None) -> None:
        self.start = time.monotonic()
        self.end = self.start + timeout
        self.timeout = timeout
        self._progress = progress
        self.state = Progress("upload", 0.0)

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def update(self, **changes: Any) -> None:
        elapsed = time.monotonic() - self.start
        self.state = attrs.evolve(self.state, elapsed=elapsed, **changes)
        if self._progress is not None:
            self._progress(self.state)


class Expired(Exception):
    """The deadline passed in the middle of a transfer."""


class _Upload:
    """A request body read in chunks; counts them and stops at the deadline."""

    def __init__(self, body: bytes, tracker: Tracker) -> None:
        self._body = memoryview(body)
        self._at = 0
        self._tracker = tracker
        self._told = 0.0

    def __len__(self) -> int:
        return len(self._body)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def read(self, size: int = -1) -> bytes:
        if self._tracker.remaining() <= 0:
            raise Expired
        end = len(self._body) if size is None or size < 0 else self._at + min(size, CHUNK)
        chunk = bytes(self._body[self._at : end])
        self._at += len(chunk)
        now = time.monotonic()
        if now - self._told >= TICK or self._at == len(self._body):
            self._told = now
            self._tracker.update(sent=self._at)
        return chunk


def post_form(
    account: Account,
    path: str,
    form: Form,
    tracker: Tracker,
    *,
    error: ErrorFactory,
    what: str,
) -> requests.Response:
    """``POST`` the form as multipart; the answer's body is left to `read_body`."""
    body, content_type = urllib3.encode_multipart_formdata(form.multipart())
    tracker.update(stage="upload", sent=0, to_send=len(body))
    return call(
        tracker,
        error,
        what,
        lambda timeout: account.request(
            "POST",
            path,
            error=error,
            what=what,
            timeout=timeout,
            headers={"Content-Type": content_type},
            data=_Upload(body, tracker),
            stream=True,
        ),
    )


def get(
    account: Account, path: str, tracker: Tracker, *, error: ErrorFactory, what: str
) -> requests.Response:
    return call(
        tracker,
        error,
        what,
        lambda timeout: account.request(
            "GET", path, error=error, what=what, timeout=timeout, stream=True
        ),
    )


def call(
    tracker: Tracker,
    error: ErrorFactory,
    what: str,
    request: Callable[[float], requests.Response],
) -> requests.Response:
    remaining = tracker.remaining()
    if remaining <= 0:
        raise _timed_out(error, what, tracker)
    try:
        return request(remaining)
    except Expired:
        raise _timed_out(error, what, tracker) from None


def read_body(
    response: requests.Response,
    tracker: Tracker,
    *,
    error: ErrorFactory,
    what: str,
    media: bool = True,
) -> bytes:
    """The whole body of a streamed answer; ``media``: counted into ``tracker`` as
    ``received`` (a short JSON answer is not)."""
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    report = tracker.update if media else lambda **_: None
    report(stage="download", received=0, to_receive=total)
    chunks: list[bytes] = []
    received, told = 0, 0.0
    try:
        with response:
            for chunk in response.iter_content(CHUNK):
                chunks.append(chunk)
                received += len(chunk)
                now = time.monotonic()
                if now - told >= TICK:
                    told = now
                    report(received=received)
                if tracker.remaining() <= 0:
                    raise _timed_out(error, what, tracker)
    except requests.RequestException as exc:
        raise error(
            f"could not {what}: the answer broke off after {received} bytes ({type(exc).__name__})",
            data={"status": response.status_code},
        ) from None
    if total is not None and received != total:
        raise error(
            f"could not {what}: the answer ended after {received} of {total} bytes",
            data={"status": response.status_code},
        )
    report(received=received, to_receive=received)
    return b"".join(chunks)


def _timed_out(error: ErrorFactory, what: str, tracker: Tracker) -> DecartSDKError:
    return error(
        f"could not {what}: not done within {tracker.timeout:g} s",
        data={"status": None},
    )
