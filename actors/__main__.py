"""`python -m actors` runs the `driver-telemetry` command."""

import sys

from actors.cli import main

sys.exit(main())
