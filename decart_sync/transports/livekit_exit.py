"""Moved: :func:`decart_sync._process.settle_livekit_at_exit` (this name kept for old imports)."""

from .._process import settle_livekit_at_exit as install

__all__ = ["install"]
