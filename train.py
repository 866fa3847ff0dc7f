"""Entry point: train and evaluate RL agents and motion models.

Not implemented yet: the policy issue adds PPO training of HEPi and its baselines on the benchmark tasks
(``python train.py`` will then train HEPi on rigid insertion with a modest default budget), and the motion
issues add ``python train.py motion ...`` for EqMotion and GeoTDM. Until then this script says so and exits
successfully, so that the Quickstart command stays valid.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    print(
        "train.py: no training is implemented yet.\n"
        "What exists: the shared message-passing kernels (package `kernels`): gather/scatter, EGNNConv,\n"
        "FiberConv/FiberBlock on position-orientation space, HeteroConv and rotation utilities.\n"
        "What this command will do once the policy issue lands: train the HEPi policy with PPO on\n"
        "RigidInsertion-v0 and write checkpoints, TensorBoard logs and a summary to --out.\n"
        "Nothing was trained; exiting."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
