"""``python -m superlora_tn.experiments NAME [--quick]``."""

import sys

from . import main

sys.exit(main())
