"""Trajectory data: N-body simulators (:mod:`.nbody`), ETH/UCY pedestrians (:mod:`.eth_ucy`), torch
datasets with agent padding (:mod:`.datasets`)."""
