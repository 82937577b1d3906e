"""Command-line flags made from the options table, for commands that open a session."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .table import BY_NAME, Option


def _help(option: Option) -> str:
    text = option.doc.replace("`", "").replace("%", "%%")
    if option.annotation == "bool":
        # Python 3.10's BooleanOptionalAction writes the default itself; later ones do not.
        return text if sys.version_info < (3, 11) else f"{text} (default: {option.default})"
    if option.default is not None:
        text += " (default: %(default)s)"
    return text


def _form(option: Option) -> dict[str, Any]:
    """What argparse needs for the option, read from its type."""
    kind = option.annotation.split(" | ")[0]
    if kind == "bool":
        return {"action": argparse.BooleanOptionalAction}
    if kind == "float":
        return {"type": float}
    if kind == "str":
        return {"choices": option.choices} if option.choices else {}
    if kind == "Sequence[str]":
        return {"nargs": "+"}
    raise ValueError(f"{option.name} ({option.annotation}) has no command-line form")


def add_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """``--name-with-dashes`` for each option named, with the table's default and meaning."""
    group = parser.add_argument_group("session options (as connect() takes them)")
    for name in names:
        option = BY_NAME[name]
        flag = "--" + name.replace("_", "-")
        group.add_argument(flag, default=option.default, help=_help(option), **_form(option))


def from_flags(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The keywords for connect() that ``add_flags`` put in ``args``."""
    return {name: getattr(args, name) for name in names}
