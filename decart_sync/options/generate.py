"""What is written from the options table: the typed view and the docs' table.

``typed_source()`` is the text of ``typed.py`` (checked in, because type
checkers read files, not tables); ``markdown_table()`` is the table of the
usage guide, built when the docs are.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from .table import CONNECT_OPTIONS, Option

TYPED_PATH = Path(__file__).with_name("typed.py")

HEADER = '''\
"""connect()'s options as type checkers and IDEs see them.

Generated from ``CONNECT_OPTIONS`` in table.py by
``python -m decart_sync.options --write``: edit the table, then run that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from ..models import ModelDefinition
from .values import InitialState
'''

SESSION_DOC = (
    "The options of `connect()` besides the account's: what "
    "`DecartClient(...).realtime.connect` takes. Each field's default is the one "
    "`connect()` uses when the field is absent."
)
KEYWORDS_DOC = "Every keyword of `connect()` besides `source`: `ConnectOptions` and the account's."


def described(option: Option) -> str:
    """The option's meaning, the values it takes and its default, as one paragraph."""
    parts = [option.doc]
    if option.choices:
        parts.append(f"One of {', '.join(f'`{c}`' for c in option.choices)}.")
    if option.required:
        parts.append("Required.")
    elif option.default is not None:
        parts.append(f"Default `{option.default!r}`.")
    return " ".join(parts)


def _docstring(text: str, indent: str) -> list[str]:
    if '"""' in text or text.endswith('"') or "\\" in text:
        raise ValueError(f"cannot be a docstring as it is: {text!r}")
    width = 100 - len(indent) - 6
    lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    return [f'{indent}"""{lines[0]}', *(f"{indent}{line}" for line in lines[1:]), f'{indent}"""']


def _typed_dict(name: str, base: str, doc: str, options: list[Option]) -> list[str]:
    lines = ["", "", f"class {name}({base}, total=False):", *_docstring(doc, "    ")]
    for option in options:
        lines += ["", f"    {option.name}: {option.annotation}"]
        lines += _docstring(described(option), "    ")
    return lines


def typed_source() -> str:
    """The text ``typed.py`` has when it is current."""
    session = [o for o in CONNECT_OPTIONS if not o.account]
    account = [o for o in CONNECT_OPTIONS if o.account]
    lines = [HEADER.rstrip("\n")]
    lines += _typed_dict("ConnectOptions", "TypedDict", SESSION_DOC, session)
    lines += _typed_dict("ConnectKeywords", "ConnectOptions", KEYWORDS_DOC, account)
    return "\n".join(lines) + "\n"


def write_typed() -> bool:
    """Rewrites ``typed.py`` from the table; True when it changed."""
    text = typed_source()
    if TYPED_PATH.exists() and TYPED_PATH.read_text() == text:
        return False
    TYPED_PATH.write_text(text)
    return True


def table_cell(text: str) -> str:
    """``text`` in a table's cell: a pipe outside a code span would end the cell."""
    spans = text.split("`")
    return "`".join(s if i % 2 else s.replace("|", "\\|") for i, s in enumerate(spans))


def markdown_table() -> str:
    """Every option as a row of a Markdown table: name, type, default, meaning."""
    rows = ["| option | type | default | what |", "| --- | --- | --- | --- |"]
    for option in CONNECT_OPTIONS:
        default = "required" if option.required else f"`{option.default!r}`"
        what = option.doc
        if option.choices:
            what += f" One of {', '.join(f'`{c}`' for c in option.choices)}."
        if option.account:
            what += " The account's: `DecartClient` passes its own."
        cells = [f"`{option.name}`", f"`{option.annotation}`", default, what]
        rows.append("| " + " | ".join(table_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"
