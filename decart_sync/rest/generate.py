"""``DecartClient(...).process()``: one picture edited by an image model, blocking.

As decart 0.2.4's ``process``: ``POST {base}/v1/generate/<model>`` (the
definition's ``url_path``), a multipart form of the model's inputs (files in
``data`` and ``reference_image``, the rest as text), answered by the picture's
bytes. A failure is ``PROCESSING_ERROR`` with the HTTP status in
``data["status"]``; a refused key ``INVALID_API_KEY``; a model the service does
not know (404) ``MODEL_NOT_FOUND``. Inputs are checked first
(`inputs`): a bad one is ``INVALID_INPUT`` and nothing is uploaded.
"""

from __future__ import annotations

from typing import Any

from .. import models
from ..errors import DecartSDKError, ModelNotFoundError, ProcessingError
from ..models import ModelDefinition
from ..options import check_timeout
from . import inputs, transfer
from .http import Account, ErrorFactory
from .transfer import ProgressCallback, Tracker

PROCESS_TIMEOUT = 300.0  # as the official client's session-wide limit


def error_of(cls: type[DecartSDKError], model: str) -> ErrorFactory:
    """``cls`` for a failure, but ``MODEL_NOT_FOUND`` for a 404 on the model's own URL."""

    def make(message: str, *, data: Any = None) -> DecartSDKError:
        if isinstance(data, dict) and data.get("status") == 404:
            return ModelNotFoundError(f"the service has no model {model!r}: {message}", data=data)
        return cls(message, data=data)

    return make


def image_model(model: ModelDefinition | str) -> ModelDefinition:
    definition = models.image(model) if isinstance(model, str) else model
    inputs.kind_of(definition, ("image",), "process()")
    return definition


def process(
    account: Account,
    model: ModelDefinition | str,
    fields: dict[str, Any],
    *,
    timeout: float = PROCESS_TIMEOUT,
    progress: ProgressCallback | None = None,
) -> bytes:
    """The edited picture's bytes (the service's format: PNG from the emulator)."""
    check_timeout(timeout)
    tracker = Tracker(float(timeout), progress)  # from here: reading and encoding count too
    definition = image_model(model)
    form = inputs.build(definition, fields)
    what = f"process an image with {definition.name}"
    error = error_of(ProcessingError, definition.name)
    response = transfer.post_form(
        account, definition.url_path, form, tracker, error=error, what=what
    )
    data = transfer.read_body(response, tracker, error=error, what=what)
    tracker.update(stage="done")
    return data
