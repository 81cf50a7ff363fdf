"""A module whose import exits: the conformance CLI must report it, not exit 0."""

import sys

sys.exit(0)
