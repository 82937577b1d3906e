"""``python -m decart_sync.options``: print the options table; ``--write``: regenerate typed.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .generate import TYPED_PATH, markdown_table, write_typed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m decart_sync.options", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {TYPED_PATH.name}")
    args = parser.parse_args(argv)
    if not args.write:
        sys.stdout.write(markdown_table())
        return 0
    changed = write_typed()
    print(f"{TYPED_PATH}: {'rewritten' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
