"""Behaviour cloning of a deformable task's scripted controller: how well each policy fits it, and how it then acts.

Run: ``python -m benchmarks.imitation [--task RopeShaping-v0] [--policies mlp,hepi] [--velocities on,off]
[--epochs 10] [--lr 1e-3] [--batch-size 64]`` (``--quick`` for a smoke run).

One set of scripted episodes (``--episodes``, seeds 50,000+, as pretraining's first round draws them) and a held-out
set (``--held-out``, seeds from 50,500 + ``--closed-loop`` on) are collected per velocity setting. Each policy is
fitted to the first set (the action mean to the controller's actions, the value to the returns discounted by the
task's settings, as :func:`geomanip.policies.demonstrations.fit` does in pretraining) and then acts on its own with
its mean action in ``--closed-loop`` held-out starts (seeds 50,500+) while the controller labels the states it
reaches. No DAgger round: this is the cloning alone, so it shows what the states a policy reaches by itself do to it.

Columns: the action error (mean squared, per component) on the training states, on the held-out scripted states
and on the policy's own states; the policy's success rate and mean return in its own episodes. The reference is
the MLP with velocities (the observation as the task defines it), in the same run. ``--velocities off`` makes the
environment zero every velocity (``observe_velocities=False``, :class:`~geomanip.envs.deformable.DeformableTaskEnv`):
the grippers are velocity servos, so a gripper's velocity is nearly the last action, which a cloned policy can copy
instead of reading the material's state.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from geomanip import envs
from geomanip.policies import POLICIES
from geomanip.policies import training as rl
from geomanip.policies.demonstrations import DEMO_SEED, collect, fit
from geomanip.policies.imitation_term import imitation_loss

HELD_OUT = DEMO_SEED + 500
"""First seed of the held-out starts: past the seeds pretraining draws for 4 rounds of 30 episodes (run seed 0)."""


def clone(task: str, policy: str, env_kwargs: dict, train, held, args) -> dict[str, float]:
    """Fit ``policy`` to ``train`` and let it act in ``args.closed_loop`` held-out starts; the table's columns."""
    # The task's settings (its discount for the value targets, its network options), as geomanip train applies them.
    cfg = rl.configure(task=task, policy=policy, seed=args.seed, env_kwargs=env_kwargs)
    venv = DummyVecEnv([lambda: gym.make(task, **env_kwargs)])
    spec, kwargs = rl.policy_spec(cfg, venv.envs[0])
    model = PPO(spec, venv, policy_kwargs=kwargs, seed=args.seed, device="cpu", n_steps=64, batch_size=64)
    net = model.policy
    started = time.perf_counter()
    fit(net, train, train.value_targets(cfg.gamma), args.epochs, args.batch_size, args.lr, args.seed)
    seconds = time.perf_counter() - started

    def error(data) -> float:
        with torch.no_grad():
            return float(imitation_loss(net, data, np.arange(len(data))))

    seeds = [HELD_OUT + i for i in range(args.closed_loop)]
    own = collect(task, env_kwargs, seeds, lambda obs: net.predict(obs, deterministic=True)[0])
    return {
        "train": error(train),
        "held_out": error(held),
        "own": error(own),
        "success": float(own.successes.mean()),
        "return": float(own.returns.mean()),
        "fit_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="RopeShaping-v0", help="a deformable task")
    parser.add_argument("--policies", default="mlp,hepi", help=f"comma-separated, of {', '.join(POLICIES)}")
    parser.add_argument("--velocities", default="on,off", help="on, off or both (on,off)")
    parser.add_argument("--episodes", type=int, default=30, help="scripted episodes to clone")
    parser.add_argument("--held-out", type=int, default=10, help="held-out scripted episodes")
    parser.add_argument("--closed-loop", type=int, default=20, help="held-out starts the cloned policy acts in")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the scripted episodes")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 episodes, 1 pass, 2 closed-loop starts")
    args = parser.parse_args()
    task = envs.bare_id(args.task)
    if task not in envs.DEFORMABLE_TASKS:
        parser.error(f"--task must be a deformable task ({', '.join(envs.DEFORMABLE_TASKS)}), got {args.task}")
    policies = [p for p in args.policies.split(",") if p]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies {unknown}; available: {', '.join(POLICIES)}")
    settings = [v for v in args.velocities.split(",") if v]
    if not settings or any(v not in ("on", "off") for v in settings):
        parser.error(f"--velocities takes on, off or on,off, got {args.velocities!r}")
    if args.quick:
        args.episodes, args.held_out, args.closed_loop, args.epochs = 2, 1, 2, 1
    if min(args.episodes, args.held_out, args.closed_loop, args.epochs, args.batch_size) < 1:
        parser.error("--episodes, --held-out, --closed-loop, --epochs and --batch-size must be positive")
    torch.set_num_threads(1)
    print(
        f"{task}: {args.episodes} scripted episodes cloned ({args.epochs} passes, lr {args.lr:g}, minibatch "
        f"{args.batch_size}), {args.held_out} held out, {args.closed_loop} closed-loop starts; torch "
        f"{torch.__version__}, one thread"
    )
    rows = []
    for setting in settings:
        env_kwargs = {} if setting == "on" else {"observe_velocities": False}
        train = collect(task, env_kwargs, [DEMO_SEED + i for i in range(args.episodes)])
        held = collect(task, env_kwargs, [HELD_OUT + args.closed_loop + i for i in range(args.held_out)])
        print(f"velocities {setting}: the controller succeeds in {train.successes.mean():.0%} of the cloned episodes")
        for policy in policies:
            rows.append((policy, setting, clone(task, policy, env_kwargs, train, held, args)))
            print(f"  {policy}: done in {rows[-1][2]['fit_seconds']:.0f} s of fitting", flush=True)
    reference = next((r for p, s, r in rows if p == "mlp" and s == "on"), None)
    header = f"{'policy':<12} | velocities | error: train | held-out | own states | success | return | fit s"
    if reference is not None:
        header += " | success vs reference"
    print(header)
    print("-" * len(header))
    for policy, setting, r in rows:
        line = (
            f"{policy:<12} | {setting:<10} | {r['train']:12.4f} | {r['held_out']:8.4f} | {r['own']:10.4f} | "
            f"{r['success']:7.0%} | {r['return']:6.1f} | {r['fit_seconds']:5.0f}"
        )
        if reference is not None:
            line += f" | {100 * (r['success'] - reference['success']):+.0f} points"
        print(line)
    if reference is not None:
        print("reference: the MLP with velocities (the task's own observation)")


if __name__ == "__main__":
    main()
