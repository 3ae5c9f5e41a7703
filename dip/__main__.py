"""`python -m dip` runs the `dip` command."""

import sys

from dip.cli import main

sys.exit(main())
