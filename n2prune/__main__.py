"""``python -m n2prune NET.ini ...`` is ``n2prune-train``."""

import sys

from n2prune.cli import train_main

sys.exit(train_main())
