"""``python -m decart_sync.emulator``: see `cli`."""

import sys

from .cli import main

sys.exit(main())
