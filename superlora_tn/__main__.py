"""``python -m superlora_tn``: the same command line as ``superlora-tn``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
