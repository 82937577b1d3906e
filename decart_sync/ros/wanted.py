"""What the node wants of its session (prompt, enhance, image) and how it gets there.

Parameters and the ``prompt`` topic change what is wanted; the core's worker
hands it to [`decart_sync.connect()`][decart_sync.connect] as the initial state, or applies it to
an open session with the acknowledged ``set_image``/``set_prompt``. No threads
and no ROS here: the core holds the lock around these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

import decart_sync
from decart_sync.options import with_prompt

from . import images
from .settings import DEFAULTS, Log, Settings, as_bool, describe

CONNECT_TIMEOUT = 30.0
ACK_TIMEOUT = 15.0


@attrs.define
class Wanted:
    prompt: str
    enhance: bool
    image: str
    generation: int = 0  # bumped on each change; the worker applies up to it


def merge(
    wanted: Wanted, params: Mapping[str, Any], settings: Settings
) -> tuple[Wanted | None, list[str]]:
    """The wanted state after changed parameters (None: unchanged), and complaints about
    parameters that are read at start only."""
    problems: list[str] = []
    new = attrs.evolve(wanted)
    for name, value in params.items():
        if name == "prompt":
            new.prompt = str(value or "")
        elif name == "enhance":
            new.enhance = as_bool(value)
        elif name == "image":
            new.image = str(value or "")
        elif name in DEFAULTS and value != getattr(settings, name, value):
            current = settings.model.name if name == "model" else None
            if value != current:
                problems.append(f"{name} is read at start only; restart the node")
    if (new.prompt, new.enhance, new.image) == (wanted.prompt, wanted.enhance, wanted.image):
        return None, problems
    new.generation = wanted.generation + 1
    return new, problems


def connect_options(
    settings: Settings, wanted: Wanted, api_key: str | None, base_url: str | None
) -> dict[str, Any]:
    """connect()'s keywords for a session that starts in the ``wanted`` state."""
    options: dict[str, Any] = {
        "model": settings.model,
        "api_key": api_key,
        "base_url": base_url,
        "pixel_format": images.PIXEL_FORMATS[settings.encoding],
        "timeout": CONNECT_TIMEOUT,
        "integration": "decart-sync-ros",
    }
    if settings.transport:  # only when set: the model's transport otherwise
        options["transport"] = settings.transport
    return with_prompt(
        options, wanted.prompt or None, enhance=wanted.enhance, image=wanted.image or None
    )


def apply(
    client: decart_sync.RealtimeClient, wanted: Wanted, previous_image: str, log: Log
) -> tuple[bool, str]:
    """Send the wanted prompt (and image, when it changed) and wait for the acks."""
    try:
        if wanted.image != previous_image:
            client.set_image(
                wanted.image or None,
                prompt=wanted.prompt or None,
                enhance=wanted.enhance,
                timeout=ACK_TIMEOUT * 2,
            )
        elif wanted.prompt:
            client.set_prompt(wanted.prompt, enhance=wanted.enhance, timeout=ACK_TIMEOUT)
        else:
            log.warning("an empty prompt cannot be sent; the previous prompt stays")
    except decart_sync.DecartSDKError as exc:
        log.error(f"could not apply prompt {wanted.prompt!r}: {describe(exc)}")
        return False, describe(exc)
    log.info(
        f"prompt {wanted.prompt!r}"
        + (f", image {wanted.image!r}" if wanted.image else "")
        + " acknowledged"
    )
    return True, "acknowledged"
