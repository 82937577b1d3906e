"""``python -m decart_sync.emulator``: see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
