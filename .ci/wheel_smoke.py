"""What a user of the wheel does first, run from outside the repository in a fresh virtual environment.

Called by ``.ci/check_wheel``: imports the namespace, makes every task through ``gym.make`` and
``gym.make_vec``, fits one body with ArtEq, loads an ETH/UCY split from the shipped data, loads the shipped
weights, and checks that the install put no generic top-level names into site-packages.
"""

import sys
import sysconfig
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import trimesh

import geomanip
import geomanip.envs
from geomanip.motion import ArtEq
from geomanip.motion.body.data import generate
from geomanip.motion.data.eth_ucy import load_split

site = Path(sysconfig.get_paths()["purelib"])
assert Path(geomanip.__file__).resolve().is_relative_to(site.resolve()), f"geomanip imported from {geomanip.__file__}"
generic = ("envs", "kernels", "motion", "policies", "train")
clashes = [n for n in generic if (site / n).exists() or (site / f"{n}.py").exists()]
assert not clashes, f"generic top-level names in {site}: {clashes}"

for task in (*geomanip.envs.RIGID_TASKS, *geomanip.envs.DEFORMABLE_TASKS):
    env = gym.make(f"geomanip/{task}")
    obs, _ = env.reset(seed=0)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward), task
    env.close()
    mode = "vector_entry_point" if task in geomanip.envs.RIGID_TASKS else "sync"
    vec = gym.make_vec(f"geomanip/{task}", num_envs=2, vectorization_mode=mode)
    obs, _ = vec.reset(seed=0)
    obs, rewards, *_ = vec.step(vec.action_space.sample())
    assert rewards.shape == (2,) and np.isfinite(rewards).all(), task
    vec.close()
    print(f"made {task} with gym.make and gym.make_vec ({mode})")

model = ArtEq(num_points=256, channels=4, layers=1)
body = generate(model.body, 1, "test", seed=0, num_points=1000)
fitted = model.fit(body["points"])
assert fitted["vertices"].shape == body["vertices"].shape and torch.isfinite(fitted["vertices"]).all()
print("fitted one body with ArtEq")
# A scan for check_wheel's `geomanip body --action fit` with the shipped weight (README, "Use it without training").
trimesh.PointCloud(generate(model.body, 1, "test", seed=1)["points"][0].numpy()).export("scan.ply")

windows = load_split("hotel", "test")
assert len(windows) > 0
print(f"loaded ETH/UCY hotel test split: {len(windows)} samples")

# The README's "use it without training": the shipped weights load from the wheel and run.
from geomanip import weights  # noqa: E402
from geomanip.motion import EqMotion  # noqa: E402

assert {"arteq", "eqmotion-charged", "hepi-RigidSliding-v0"} <= set(weights.available()), weights.available()
predictor = EqMotion.pretrained("charged")
with torch.no_grad():
    future = predictor(torch.randn(1, 5, predictor.past_frames, 3))
assert future.shape == (1, 5, 1, predictor.future_frames, 3) and torch.isfinite(future).all()
print(f"shipped weights: {', '.join(weights.available())}; EqMotion.pretrained('charged') predicts")
sys.exit(0)
