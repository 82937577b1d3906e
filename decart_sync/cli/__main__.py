"""``python -m decart_sync.cli``: the same as the ``decart-sync`` command."""

import sys

from . import main

sys.exit(main())
