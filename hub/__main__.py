"""``python -m hub`` is the ``cchub`` command."""

import sys

from hub.cli import main

sys.exit(main())
