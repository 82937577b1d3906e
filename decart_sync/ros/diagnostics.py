"""The node's health as ``/diagnostics`` reports it: facts in, a level and key/values out."""

from __future__ import annotations

import time
from typing import Any

import attrs

from .settings import ERROR, OK, WARN, Status


class Rates:
    """Frames per second of two counters, between one sample and the next."""

    def __init__(self) -> None:
        self._mark = (time.monotonic(), 0, 0)

    def sample(self, frames_in: int, frames_out: int) -> tuple[float, float]:
        now = time.monotonic()
        then, seen_in, seen_out = self._mark
        span = max(now - then, 1e-6)
        self._mark = (now, frames_in, frames_out)
        return (frames_in - seen_in) / span, (frames_out - seen_out) / span


class SessionTotals:
    """The library's counters (``client.stats``) summed over the node's sessions."""

    def __init__(self) -> None:
        self.reconnects = 0  # of sessions already closed
        self.skipped = 0  # input frames the library skipped, all sessions
        self._skipped_base = 0  # of the sessions before the open one
        self._cache: dict[str, float] = {}

    def read(self, client: Any) -> dict[str, float]:
        """The open session's stats (the last ones read, while it closes)."""
        if client is None:
            return {}
        try:
            stats = dict(client.stats)
        except Exception:  # a closing client
            return self._cache
        self._cache = stats
        self.skipped = self._skipped_base + int(stats.get("frames_skipped", 0))
        return stats

    def started(self) -> None:
        self._skipped_base = self.skipped

    def ended(self, client: Any) -> None:
        """Before ``client`` closes: its counts join the totals."""
        self.reconnects += int(self.read(client).get("reconnects", 0))
        self._cache = {}


@attrs.frozen
class Facts:
    state: str
    backend: str
    model: str
    prompt: str
    fps_in: float
    fps_out: float
    frames_in: int
    frames_handed: int
    frames_out: int
    drops: int
    skipped_encoding: int
    rtt_ms: float | None
    reconnects: int
    subscribers: int
    last_error: str | None
    permanent: str | None
    closing: bool
    session_wanted: bool


def assess(facts: Facts) -> Status:
    values = {
        "state": facts.state,
        "backend": facts.backend,
        "model": facts.model,
        "prompt": facts.prompt,
        "fps in": f"{facts.fps_in:.1f}",
        "fps out": f"{facts.fps_out:.1f}",
        "frames in": str(facts.frames_in),
        "frames out": str(facts.frames_out),
        "drops": str(facts.drops),
        "skipped (encoding)": str(facts.skipped_encoding),
        "rtt ms": "unknown" if facts.rtt_ms is None else f"{facts.rtt_ms:.1f}",
        "reconnects": str(facts.reconnects),
        "subscribers": str(facts.subscribers),
        "last error": facts.last_error or "",
    }
    if facts.permanent is not None:
        return Status(ERROR, f"permanent error: {facts.permanent}", values)
    if facts.closing:
        return Status(WARN, "shutting down", values)
    if not facts.session_wanted:
        return Status(OK, "idle: image_out has no subscribers", values)
    if facts.state in ("connected", "generating"):
        if facts.frames_handed == 0 or facts.fps_in == 0:
            return Status(WARN, f"{facts.state}, but no frames on image_in", values)
        return Status(OK, facts.state, values)
    if facts.last_error:
        return Status(ERROR, f"{facts.state}: {facts.last_error}", values)
    return Status(WARN, facts.state, values)
