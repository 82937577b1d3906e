"""mkdocs hook: the tables made from decart_sync.options' one table, written at build time.

A page asks for one with its marker on a line of its own; a marker no page uses fails the
build, so a table cannot silently drop out of the site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mkdocs.exceptions import PluginError

from decart_sync.cli import STREAM_OPTIONS
from decart_sync.options import BY_NAME
from decart_sync.options.generate import described, markdown_table, table_cell


def stream_flags() -> str:
    rows = ["| option | what |", "| --- | --- |"]
    for name in STREAM_OPTIONS:
        option = BY_NAME[name]
        flag = "--" + name.replace("_", "-")
        if option.annotation == "bool":
            flag = f"{flag}`, `--no-{flag[2:]}"
        rows.append(f"| `{flag}` | {table_cell(described(option))} |")
    return "\n".join(rows) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "<!-- options: connect -->": markdown_table,
    "<!-- options: stream flags -->": stream_flags,
}
used: set[str] = set()


def on_pre_build(config: Any) -> None:
    used.clear()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, make in TABLES.items():
        if marker in markdown:
            used.add(marker)
            markdown = markdown.replace(marker, make())
    return markdown


def on_post_build(config: Any) -> None:
    missing = sorted(set(TABLES) - used)
    if missing:
        raise PluginError(f"no page has the marker of {', '.join(missing)}")
