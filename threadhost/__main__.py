"""`python -m threadhost` is the `threadhost` command."""

import sys

from threadhost.cli import main

sys.exit(main())
