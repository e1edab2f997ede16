"""Child interpreters run as strictly as the suite: its `-X dev` and `-W` options, passed on."""

from __future__ import annotations

import sys


def interpreter_flags() -> list[str]:
    """This interpreter's `-X dev` and `-W` options, for a child's command line."""
    flags = ["-X", "dev"] if sys.flags.dev_mode else []
    for option in sys.warnoptions:
        flags += ["-W", option]
    return flags
