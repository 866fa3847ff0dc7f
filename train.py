"""Train and evaluate from a checkout: ``python train.py [train|evaluate|motion|body] [options]``.

The same command is installed as ``geomanip``; see :mod:`geomanip.cli` (``python train.py -h``).
"""

import sys

from geomanip.cli import main

if __name__ == "__main__":
    sys.exit(main())
