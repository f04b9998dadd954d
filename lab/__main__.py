"""``python -m lab ...`` is ``cchub lab ...`` (useful before the hub's CLI is installed)."""

import sys

from lab.cli import main

raise SystemExit(main(sys.argv[1:]))
