"""The node's settings, from ROS parameters, and how it describes errors; no ROS here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from decart_sync import ModelDefinition, models

from . import images

#: parameter -> default; ``model`` is read once at start
DEFAULTS: dict[str, Any] = {
    "model": "lucy-restyle",
    "prompt": "",
    "enhance": True,
    "image": "",
    "transport": "",
    "lazy": False,
    "stats_interval": 1.0,
    "encoding": "rgb8",
    "emulator_url": "",
}
RUNTIME = ("prompt", "enhance", "image")

# Diagnostic levels, as in diagnostic_msgs/DiagnosticStatus.
OK, WARN, ERROR = 0, 1, 2


class Log(Protocol):
    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...
    def error(self, msg: str) -> Any: ...


def parse_model(text: str) -> ModelDefinition:
    """A registry name (``lucy-restyle``) or ``NAME:FPS:WxH`` like the emulator's ``--model``."""
    return models.parse(str(text))


@attrs.frozen
class Settings:
    model: ModelDefinition
    prompt: str = ""
    enhance: bool = True
    image: str = ""
    transport: str = ""
    lazy: bool = False
    stats_interval: float = 1.0
    encoding: str = "rgb8"
    emulator_url: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        values = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
        encoding = str(values["encoding"])
        if encoding not in images.OUTPUT_ENCODINGS:
            raise ValueError(f"encoding must be one of {images.OUTPUT_ENCODINGS}, got {encoding!r}")
        interval = float(values["stats_interval"])
        if not interval > 0:
            raise ValueError(f"stats_interval must be positive, got {interval}")
        return cls(
            model=parse_model(values["model"]),
            prompt=str(values["prompt"] or ""),
            enhance=as_bool(values["enhance"]),
            image=str(values["image"] or ""),
            transport=str(values["transport"] or ""),
            lazy=as_bool(values["lazy"]),
            stats_interval=interval,
            encoding=encoding,
            emulator_url=str(values["emulator_url"] or ""),
        )


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def describe(error: BaseException) -> str:
    """``CODE: message``; the library keeps the API key out of its messages."""
    code = getattr(error, "code", None) or type(error).__name__
    return f"{code}: {getattr(error, 'message', None) or error}"


@attrs.frozen
class Status:
    """One diagnostics report: a level, a summary and key/value pairs."""

    level: int
    message: str
    values: dict[str, str]


def backend(
    settings: Settings, env: Mapping[str, str], log: Log
) -> tuple[str | None, str | None, str, Any]:
    """(api_key, base_url, description, embedded emulator or None).

    The key comes from the environment only: ROS parameters are readable by
    anyone on the graph. With neither a key nor ``emulator_url``, an embedded
    emulator serves the node (it needs the emulator extra).
    """
    url = settings.emulator_url
    if url == "embedded" or (not url and not env.get("DECART_API_KEY", "").strip()):
        from decart_sync.emulator import Emulator

        model = settings.model
        embedded = Emulator(models={model.name: model}).start()
        log.warning(
            "no DECART_API_KEY in the environment and no emulator_url: "
            f"using an embedded emulator at {embedded.url}"
        )
        return "emulator", embedded.url, f"the embedded emulator at {embedded.url}", embedded
    if url:
        return "emulator", url, f"the emulator at {url}", None
    base = env.get("DECART_REALTIME_BASE_URL")
    where = f"Decart's service at {base}" if base else "Decart's service"
    return None, None, f"{where} (API key from DECART_API_KEY)", None
