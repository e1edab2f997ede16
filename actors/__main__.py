"""`python -m actors` runs the `driver-telemetry` command."""

import sys

from actors.tools.cli import main

sys.exit(main())
