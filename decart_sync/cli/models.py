"""``decart-sync models``: the model table, as the library knows it.

One row per name: its size and fps, the media path it takes, the speeds it
offers, and what the official SDKs call it now where the name is deprecated.
Printed to standard output (it is the command's result), as a table or JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from .. import models


def rows() -> list[dict[str, Any]]:
    """Today's models (LiveKit) first, then the classic ones (plain WebRTC), by name."""
    table = [
        {
            "name": model.name,
            "size": f"{model.width}x{model.height}",
            "fps": model.fps,
            "transport": model.transport,
            "speeds": list(model.speeds),
            "deprecated_for": models.DEPRECATED.get(model.name),
            "classic": _classic(model.name),
        }
        for model in models.REGISTRY.values()
    ]
    return sorted(table, key=lambda row: (row["transport"] != "livekit", row["name"]))


def _classic(name: str) -> dict[str, Any] | None:
    """How plain WebRTC serves a name that LiveKit serves otherwise, or None."""
    model = models.CLASSIC_GENERATION.get(name)
    if model is None:
        return None
    return {"size": f"{model.width}x{model.height}", "fps": model.fps}


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if row["deprecated_for"]:
        notes.append(f"deprecated: use {row['deprecated_for']}")
    if row["classic"]:
        notes.append(f"plain WebRTC: {row['classic']['size']} at {row['classic']['fps']:g} fps")
    return "; ".join(notes)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    try:
        _print(args.json, out if out is not None else sys.stdout)
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written
    return 0


def _print(as_json: bool, out: TextIO) -> None:
    table = rows()
    if as_json:
        out.write(json.dumps(table, indent=2) + "\n")
        return
    header = ("name", "size", "fps", "transport", "speeds", "notes")
    lines = [
        (
            row["name"],
            row["size"],
            f"{row['fps']:g}",
            row["transport"],
            ",".join(row["speeds"]) or "-",
            _notes(row),
        )
        for row in table
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    for line in (header, *lines):
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")
