"""What a live view asks of the IPython kernel: the running cell, display.

Kept apart from `notebook.view` because it is about the kernel, not the view.
What the view changes in the kernel's process (a chained SIGINT handler,
routed stdout/stderr) is in `_process`.
"""

from __future__ import annotations

from typing import Any

from .._process import ipython_shell as shell

__all__ = ["cell_id", "display"]


def cell_id() -> str | None:
    """The running cell's id, when the front end sends one (JupyterLab, Notebook 7, VS Code)."""
    ip = shell()
    parent = ip.get_parent() if ip is not None and hasattr(ip, "get_parent") else None
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    cell = metadata.get("cellId") if isinstance(metadata, dict) else None
    return cell if isinstance(cell, str) else None


def display(widget: Any) -> None:
    if shell() is not None:
        from IPython.display import display

        display(widget)
