"""The emulator's image and video models: a picture edited at once, videos as queued jobs.

Served by the REST port (`rest`), with decart 0.2.4's wire shapes:

- ``POST /v1/generate/<image model>`` (multipart: ``data``, ``prompt``,
  ``reference_image``, ``seed``, ``resolution``, ``enhance_prompt``): the
  edited picture, PNG;
- ``POST /v1/jobs/<video model>`` (the same form, ``data`` a video):
  ``{"job_id", "status": "pending"}``; ``GET /v1/jobs/<id>``: ``{"job_id",
  "status"}``; ``GET /v1/jobs/<id>/content``: the video, MP4, once completed
  (409 before, and for a failed job).

The inputs are checked as the official input models do (HTTP 422 with a
``detail``); an unknown model is 404, an unknown job 404. Jobs run one at a
time, in order, on one thread (``decart-sync-emulator-jobs``): each stays
``pending`` for `Faults.job_pace` seconds (and while an earlier one
runs), then ``processing`` for at least as long, then ``completed`` or, when
`Faults.fail_jobs` marked it at submission, ``failed``.
`Faults.refuse_jobs` turns submissions away as a full queue does (429).
The pictures and frames get the realtime models' prompt arithmetic
(`batch_media`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from .._threads import Worker
from ..models import IMAGE_MODELS, VIDEO_MODELS, ModelDefinition
from . import batch_media
from .accounts import StoreError
from .faults import Faults

THREAD_NAME = "decart-sync-emulator-jobs"
MAX_PROMPT = 1000
RESOLUTIONS = ("480p", "720p")
MAX_WAITING = 16  # jobs pending or processing; more is a full queue (429)
MAX_KEPT = 64  # finished jobs remembered for their status and content
BUSY = "The queue is full; try again shortly"


@attrs.frozen
class Request:
    """A checked form of an image or video model."""

    model: ModelDefinition
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    prompt: str | None
    reference: bytes | None = attrs.field(repr=lambda d: "None" if d is None else "<bytes>")
    seed: int | None = None
    resolution: str | None = None
    enhance_prompt: bool | None = None


@attrs.define
class Job:
    job_id: str
    request: Request
    fail: bool
    submitted: float
    status: str = "pending"
    started: float | None = None
    finished: float | None = None
    content: bytes | None = attrs.field(default=None, repr=False)
    error: str | None = None
    polls: int = 0  # status requests answered: the client knows the job's id

    def describe(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status}


def parse(model: ModelDefinition, fields: dict[str, bytes]) -> Request:
    """The form's fields by name, checked for ``model`` (StoreError 422)."""
    if not fields.get("data"):
        raise StoreError(422, "data is required: the picture or video to edit")
    text = {k: v.decode("utf-8", "replace") for k, v in fields.items() if k not in _FILES}
    prompt = text.get("prompt")
    reference = fields.get("reference_image") or None
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise StoreError(422, f"Prompt is too long: {len(prompt)} characters, at most {MAX_PROMPT}")
    if model.inputs == "restyle":
        if (prompt is None) == (reference is None):
            raise StoreError(422, "Must provide either 'prompt' or 'reference_image', not both")
        if reference is not None and "enhance_prompt" in text:
            raise StoreError(422, "'enhance_prompt' is only valid with 'prompt'")
    elif prompt is None:
        raise StoreError(422, "prompt is required")
    if prompt == "" and model.inputs != "video":
        raise StoreError(422, "prompt must not be empty")
    seed = text.get("seed")
    try:
        seed_value = None if seed is None else int(seed)
    except ValueError:
        raise StoreError(422, f"seed must be an integer, not {str(seed)[:40]!r}") from None
    resolution = text.get("resolution")
    if resolution is not None and resolution not in RESOLUTIONS:
        raise StoreError(422, f"resolution must be one of {', '.join(RESOLUTIONS)}")
    enhance = text.get("enhance_prompt")
    if enhance is not None and enhance.lower() not in ("true", "false"):
        raise StoreError(422, f"enhance_prompt must be true or false, not {enhance[:40]!r}")
    return Request(
        model,
        fields["data"],
        prompt or None,  # an empty prompt (video models): no text, the frames as they are
        reference,
        seed_value,
        resolution,
        None if enhance is None else enhance.lower() == "true",
    )


_FILES = ("data", "reference_image")


class Batch:
    """Generation and the job queue; `close` stops the job thread."""

    def __init__(self, faults: Callable[[], Faults], clock: Callable[[], float] = time.monotonic):
        self._faults = faults
        self._clock = clock
        self._changed = threading.Condition()
        self._jobs: dict[str, Job] = {}  # in submission order
        self.requests = 0  # generation and job requests received, refused ones included
        self._worker = Worker(self._run, THREAD_NAME, wake=self._wake)
        self._started = False  # the job thread starts with the first job
        self._closed = False

    def close(self, timeout: float = 1.0) -> None:
        with self._changed:
            self._closed = True
        self._worker.stop(timeout)

    # -- requests (on the REST server's threads) -----------------------------------

    def received(self) -> None:
        """Count a request to a batch model, before anything of it is read."""
        with self._changed:
            self.requests += 1

    def generate(self, name: str, fields: dict[str, bytes]) -> bytes:
        request = parse(_model(IMAGE_MODELS, name), fields)
        return batch_media.edit_picture(request.data, request.prompt, request.reference)

    def submit(self, name: str, fields: dict[str, bytes]) -> Job:
        request = parse(_model(VIDEO_MODELS, name), fields)
        batch_media.probe_video(request.data)
        faults = self._faults()
        with self._changed:
            waiting = sum(j.finished is None for j in self._jobs.values())
            if faults.refuse_jobs > 0 or waiting >= MAX_WAITING:
                faults.refuse_jobs = max(0, faults.refuse_jobs - 1)
                raise StoreError(429, BUSY)
            fail = faults.fail_jobs > 0
            faults.fail_jobs = max(0, faults.fail_jobs - 1)
            if self._closed:
                raise StoreError(503, "the emulator is closing")
            job = Job(secrets.token_hex(16), request, fail, self._clock())
            self._jobs[job.job_id] = job
            self._forget_old()
            self._changed.notify_all()
            if not self._started:
                self._started = True
                self._worker.start()
            return job

    def job(self, job_id: str) -> Job:
        with self._changed:
            job = self._jobs.get(job_id)
        if job is None:
            raise StoreError(404, f"Job not found: {job_id}")
        return job

    def content(self, job_id: str) -> bytes:
        job = self.job(job_id)
        if job.status != "completed" or job.content is None:
            raise StoreError(409, f"Job {job_id} is {job.status}, not completed")
        return job.content

    @property
    def jobs(self) -> list[Job]:
        """Every job remembered, oldest first (a snapshot)."""
        with self._changed:
            return list(self._jobs.values())

    # -- the job thread -------------------------------------------------------------

    def _run(self) -> None:
        while not self._worker.stopping.is_set():
            job = self._next()
            if job is not None and not self._work(job):
                return

    def _work(self, job: Job) -> bool:
        """Run one job to its end; False when the emulator closed first."""
        started = self._clock()
        self._set(job, "processing", started=started)
        content, error = None, None
        if not job.fail:
            try:
                r = job.request
                content = batch_media.edit_video(
                    r.data, r.prompt, r.reference, r.model.fps, self._worker.stopping.is_set
                )
            except StoreError as exc:
                error = str(exc)
        job.request = attrs.evolve(job.request, data=b"", reference=None)  # done with them
        if not self._pause_until(lambda: started + self._faults().job_pace):
            return False
        failed = job.fail or content is None
        self._set(job, "failed" if failed else "completed", content=content, error=error)
        return True

    def _next(self) -> Job | None:
        """The oldest pending job once its pending time is over; None to look again."""
        with self._changed:
            job = next((j for j in self._jobs.values() if j.status == "pending"), None)
            if job is None:
                self._changed.wait(0.5)
                return None
        if self._pause_until(lambda: job.submitted + self._faults().job_pace):
            return job
        return None

    def _pause_until(self, when: Callable[[], float]) -> bool:
        """Wait until the clock reaches ``when()`` (read again as the pace changes);
        False when the emulator closes first."""
        while not self._worker.stopping.is_set():
            left = when() - self._clock()
            if left <= 0:
                return True
            with self._changed:
                self._changed.wait(min(left, 0.1))
        return False

    def _set(self, job: Job, status: str, **changes: Any) -> None:
        with self._changed:
            job.status = status
            for name, value in changes.items():
                setattr(job, name, value)
            if status in ("completed", "failed"):
                job.finished = self._clock()
            self._changed.notify_all()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished is not None]
        for job in finished[: max(0, len(finished) - MAX_KEPT)]:
            del self._jobs[job.job_id]

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


def _model(table: dict[str, ModelDefinition], name: str) -> ModelDefinition:
    model = table.get(name)
    if model is None:
        raise StoreError(404, f"Unknown model: {name}")
    return model
