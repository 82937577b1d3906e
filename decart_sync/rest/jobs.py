"""``DecartClient(...).queue``: video jobs, submitted, watched and fetched, blocking.

As decart 0.2.4's queue client: ``POST {base}/v1/jobs/<model>`` (multipart, as
`generate`) answers ``{"job_id", "status"}``; ``GET /v1/jobs/<id>`` the
same; ``GET /v1/jobs/<id>/content`` the finished video's bytes. A status is
``"pending"``, ``"processing"``, ``"completed"`` or ``"failed"``.
``submit_and_poll`` waits 0.5 s, then asks every 1.5 s (the official pace);
a failed job is a `JobResult` with ``status == "failed"``, not an
exception. Every call has a ``timeout``; Ctrl-C stops a wait at once (the job
goes on at the service, and ``job_id`` finds it later).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import attrs

from .. import models
from ..errors import (
    InvalidInputError,
    QueueResultError,
    QueueStatusError,
    QueueSubmitError,
    QueueTimeoutError,
)
from ..models import ModelDefinition
from ..options import check_timeout
from . import inputs, transfer
from .generate import error_of
from .http import DEFAULT_TIMEOUT, Account, ErrorFactory, json_object
from .transfer import TICK, ProgressCallback, Tracker

STATUSES = ("pending", "processing", "completed", "failed")
UPLOAD_TIMEOUT = 300.0
JOB_TIMEOUT = 900.0  # the service fails a job that runs 10 minutes; a margin for the queue
INITIAL_DELAY = 0.5
POLL_INTERVAL = 1.5


@attrs.frozen
class Job:
    """A job as the service describes it (``JobSubmitResponse`` / ``JobStatusResponse``)."""

    job_id: str
    status: str

    @classmethod
    def from_json(cls, body: dict[str, Any], error: ErrorFactory, what: str) -> Job:
        job_id, status = body.get("job_id"), body.get("status")
        if not isinstance(job_id, str) or not job_id or status not in STATUSES:
            raise error(
                f"could not {what}: the answer is not a job ({{job_id, status}}): "
                f"{str(body)[:200]}",
                data={"status": 200},
            )
        return cls(job_id, str(status))


@attrs.frozen
class JobResult:
    """How a job ended: ``status`` ``"completed"`` with ``data`` (the video's bytes),
    or ``"failed"`` with ``error``."""

    status: str
    job_id: str
    data: bytes | None = attrs.field(
        default=None, repr=lambda d: "None" if d is None else f"<{len(d)} bytes>"
    )
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"


class QueueClient:
    """``DecartClient(...).queue``: blocking calls, each bounded by its ``timeout``."""

    def __init__(self, account: Account) -> None:
        self._account = account

    def submit(
        self,
        model: ModelDefinition | str,
        *,
        timeout: float = UPLOAD_TIMEOUT,
        progress: ProgressCallback | None = None,
        **fields: Any,
    ) -> Job:
        """Upload the inputs and queue a job: ``Job(job_id, status)``, at once.

        ``fields``: ``prompt``, ``data`` (the video: a path, bytes or a binary
        file), ``reference_image``, ``seed``, ``resolution``, ``enhance_prompt``,
        checked against the model before anything is sent (``INVALID_INPUT``).
        """
        return self._submit(model, fields, Tracker(_seconds(timeout), progress))

    def status(self, job_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Job:
        """The job's current status (``QUEUE_STATUS_ERROR``, HTTP 404: an unknown id)."""
        what = f"get the status of job {job_id!r}"
        response = self._account.request(
            "GET", _path(job_id), error=QueueStatusError, what=what, timeout=timeout
        )
        return Job.from_json(json_object(response, QueueStatusError, what), QueueStatusError, what)

    def result(
        self,
        job_id: str,
        *,
        timeout: float = UPLOAD_TIMEOUT,
        progress: ProgressCallback | None = None,
    ) -> bytes:
        """A completed job's video (``QUEUE_RESULT_ERROR`` while it is not completed)."""
        return self._result(job_id, Tracker(_seconds(timeout), progress))

    def submit_and_poll(
        self,
        model: ModelDefinition | str,
        *,
        on_status_change: Callable[[Job], object] | None = None,
        timeout: float = JOB_TIMEOUT,
        poll_interval: float = POLL_INTERVAL,
        progress: ProgressCallback | None = None,
        **fields: Any,
    ) -> JobResult:
        """Submit, wait for the job to end, fetch its video: a `JobResult`.

        ``on_status_change(job)`` is called with the submitted job and then each
        time its status changes. ``timeout`` bounds it all (upload, queue,
        download): past it, ``QUEUE_TIMEOUT_ERROR`` with the ``job_id`` in its
        ``data``. ``progress`` receives a `Progress` as bytes
        move and every ~0.25 s while the job waits.
        """
        check_timeout(poll_interval)
        tracker = Tracker(_seconds(timeout), progress)
        job = self._submit(model, fields, tracker)
        last = job.status
        if on_status_change is not None:
            on_status_change(job)
        tracker.update(stage="wait", job_id=job.job_id, status=job.status)
        self._sleep(INITIAL_DELAY, tracker, job)
        while True:
            remaining = tracker.remaining()
            if remaining <= 0:
                raise _timeout(job.job_id, last, tracker)
            try:
                job = self.status(job.job_id, timeout=min(DEFAULT_TIMEOUT, remaining))
            except QueueStatusError:
                if tracker.remaining() <= 0:  # no answer before the deadline
                    raise _timeout(job.job_id, last, tracker) from None
                raise
            if job.status != last:
                last = job.status
                if on_status_change is not None:
                    on_status_change(job)
            tracker.update(status=job.status)
            if job.status == "completed":
                data = self._result(job.job_id, tracker)
                return JobResult("completed", job.job_id, data=data)
            if job.status == "failed":
                tracker.update(stage="done")
                return JobResult("failed", job.job_id, error="Job failed")
            self._sleep(poll_interval, tracker, job)

    # -- the steps ----------------------------------------------------------------

    def _submit(
        self, model: ModelDefinition | str, fields: dict[str, Any], tracker: Tracker
    ) -> Job:
        definition = models.video(model) if isinstance(model, str) else model
        inputs.kind_of(definition, ("video", "restyle"), "queue")
        form = inputs.build(definition, fields)
        what = f"submit a job to {definition.name}"
        error = error_of(QueueSubmitError, definition.name)
        response = transfer.post_form(
            self._account, definition.url_path, form, tracker, error=error, what=what
        )
        body = transfer.read_body(response, tracker, error=error, what=what, media=False)
        job = Job.from_json(_json(body, error, what), error, what)
        tracker.update(stage="wait", job_id=job.job_id, status=job.status)
        return job

    def _result(self, job_id: str, tracker: Tracker) -> bytes:
        what = f"get the result of job {job_id!r}"
        response = transfer.get(
            self._account, _path(job_id) + "/content", tracker, error=QueueResultError, what=what
        )
        data = transfer.read_body(response, tracker, error=QueueResultError, what=what)
        tracker.update(stage="done")
        return data

    @staticmethod
    def _sleep(seconds: float, tracker: Tracker, job: Job) -> None:
        """``seconds`` (cut short by the deadline), in steps that report progress."""
        end = time.monotonic() + min(seconds, tracker.remaining())
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(TICK, left))
            tracker.update()

    def __repr__(self) -> str:
        return f"<QueueClient {self._account.base_url}>"


def _path(job_id: Any) -> str:
    if not isinstance(job_id, str) or not job_id.strip():
        raise InvalidInputError(f"a job id must be a non-empty string, got {job_id!r}")
    return f"/v1/jobs/{quote(job_id, safe='')}"


def _seconds(timeout: Any) -> float:
    check_timeout(timeout)
    return float(timeout)


def _json(body: bytes, error: ErrorFactory, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise error(f"could not {what}: the answer is not a JSON object", data={"status": 200})
    return value


def _timeout(job_id: str, status: str, tracker: Tracker) -> QueueTimeoutError:
    return QueueTimeoutError(
        f"job {job_id} was still {status} after {tracker.timeout:g} s; it may still finish: "
        f"queue.status({job_id!r}) and queue.result({job_id!r}) find it",
        data={"job_id": job_id, "status": status},
    )
