import os
import sys

# Offscreen rendering on headless Linux, the rule of geomanip.envs (MuJoCo reads this when it is first imported,
# which may be before geomanip.envs is); MuJoCo accepts "egl" only on Linux.
if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("MUJOCO_GL", "egl")

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, so failures reproduce."""
    torch.manual_seed(0)
