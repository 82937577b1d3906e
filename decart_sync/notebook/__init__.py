"""live_view() for Jupyter: a session shown in the notebook, stopped with the cell.

``view`` is the live view, ``kernel`` what it asks of the IPython kernel (the
running cell, display), ``jpeg`` the frames' encoder for the widget.
"""

from __future__ import annotations

from .view import LiveView, live_view

__all__ = ["LiveView", "live_view"]
