"""End-to-end PPO throughput of each policy: environment steps per second, training and evaluation included.

Run: ``python -m benchmarks.rl_throughput [--task RigidInsertion-v0] [--steps 16384] [--policies hepi,mlp]
[--settings] [--repeats 1]`` (``--quick`` for a smoke run). A policy is ``NAME[:CRITIC][/OPTION=VALUE...]``: a
graph policy may name its critic, ``hepi:same``, ``hepi:deepsets`` or ``hepi:shared`` (see
:class:`~geomanip.policies.sb3.GraphActorCriticPolicy`; plain ``hepi`` has the configuration's), and any policy
may change training options of its own run, ``hepi:shared/n_epochs=2`` (an
:class:`~geomanip.policies.training.RLConfig` field, as ``benchmarks.rl --set`` takes them).

Each policy trains through :func:`geomanip.policies.training.run` on one PyTorch thread, one policy after the other
in this process, so that the policies are compared under the same load. By default each run has the shared
defaults of :class:`~geomanip.policies.training.RLConfig`; with ``--settings`` it has its task's settings file
for its policy (:func:`~geomanip.policies.training.configure`, as ``geomanip train`` runs it: critic, epochs,
minibatch), while the budget and the evaluation schedule stay this benchmark's, so that every policy evaluates
alike. Steps/s is ``steps / train_seconds`` (the run's own clock: learning plus evaluations, not the environment
set-up or the random policy's baseline). The split into rollouts (collecting samples), updates (PPO's gradient
steps) and evaluation comes from timers wrapped around SB3's ``collect_rollouts`` and ``train`` and the run's
evaluation callback. With ``--repeats`` above one the policies are interleaved and each cell is the median over
repeats.

Timings on a shared machine are noisy: compare policies within one table, not across tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO

from benchmarks.rl import parse_options
from geomanip.policies import POLICIES, sb3
from geomanip.policies import training as rl

ROOT = Path(__file__).resolve().parents[1]


class Split:
    """Seconds spent in rollouts, updates and evaluations; evaluations inside a rollout count as evaluation."""

    def __init__(self) -> None:
        self.rollout = self.update = self.evaluation = 0.0
        self._eval_in_rollout = 0.0
        self._in_rollout = False


def _timed(fn: Callable, before: Callable[[], None], after: Callable[[float], None]) -> Callable:
    def wrapper(*args, **kwargs):
        before()
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            after(time.perf_counter() - start)

    return wrapper


@contextmanager
def timing(split: Split) -> Iterator[Split]:
    """Wraps SB3's rollout and update methods and the run's evaluation callback with timers, for this block."""
    collect, train, evaluate = PPO.collect_rollouts, PPO.train, rl.EvaluateAndCheckpoint.evaluate

    def start_rollout() -> None:
        split._in_rollout, split._eval_in_rollout = True, 0.0

    def end_rollout(dt: float) -> None:
        split._in_rollout = False
        split.rollout += dt - split._eval_in_rollout

    def end_update(dt: float) -> None:
        split.update += dt

    def end_eval(dt: float) -> None:
        split.evaluation += dt
        if split._in_rollout:
            split._eval_in_rollout += dt

    PPO.collect_rollouts = _timed(collect, lambda: start_rollout(), end_rollout)
    PPO.train = _timed(train, lambda: None, end_update)
    rl.EvaluateAndCheckpoint.evaluate = _timed(evaluate, lambda: None, end_eval)
    try:
        yield split
    finally:
        PPO.collect_rollouts, PPO.train, rl.EvaluateAndCheckpoint.evaluate = collect, train, evaluate


def measure(cfg: rl.RLConfig) -> dict[str, float]:
    """One training run of ``cfg``: steps/s and each part's seconds."""
    with timing(Split()) as split:
        summary = rl.run(cfg)
    seconds = summary["train_seconds"]
    return {
        "steps_per_s": summary["steps"] / seconds,
        "seconds": seconds,
        "rollout": split.rollout,
        "update": split.update,
        "evaluation": split.evaluation,
        "train_success": summary["final"]["train_success"],
    }


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"hepi:shared/n_epochs=2"`` -> ``("hepi", {"critic": "shared", "n_epochs": 2})``.

    Raises ``ValueError`` naming an unknown policy or critic, a critic for the MLP, or an option that is unknown or
    one the benchmark sets itself (:func:`benchmarks.rl.parse_options`)."""
    name, *pairs = spec.split("/")
    policy, _, critic = name.partition(":")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} in {spec!r}; available: {', '.join(POLICIES)}")
    if critic and critic not in sb3.CRITICS:
        raise ValueError(f"unknown critic {critic!r} in {spec!r}; critics: {', '.join(sb3.CRITICS)}")
    if critic and policy == "mlp":
        raise ValueError(f"{spec!r}: the MLP has no critic choice (critics are for the graph policies)")
    options = parse_options(pairs, flag=f"in {spec!r},")
    return policy, options | ({"critic": critic} if critic else {})


def run_config(task: str, policy: str, options: dict[str, Any], steps: int, out: str, settings: bool) -> rl.RLConfig:
    """A run of ``steps`` on one thread: RLConfig's defaults, or with ``settings`` the task's settings file for
    ``policy``; the evaluation schedule is RLConfig's default either way. ``options`` override both."""
    given = dict(task=task, policy=policy, total_steps=steps, out=out, progress=False, threads=1) | options
    if not settings:
        return rl.RLConfig(**given)
    defaults = rl.RLConfig()
    return rl.configure(**given, eval_every=defaults.eval_every, eval_episodes=defaults.eval_episodes)


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="RigidInsertion-v0")
    parser.add_argument(
        "--policies",
        default="hepi,mlp",
        help=f"comma-separated NAME[:CRITIC][/OPTION=VALUE...], NAME from {','.join(POLICIES)}",
    )
    parser.add_argument("--steps", type=int, default=16_384, help="environment steps per run")
    parser.add_argument(
        "--settings", action="store_true", help="each policy with its task's settings file, not RLConfig's defaults"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per policy, interleaved; the median is shown")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test of the script)")
    args = parser.parse_args()
    policies = args.policies.split(",")
    try:
        specs = {spec: parse_spec(spec) for spec in policies}
        for policy, options in specs.values():  # every run's options checked before the first one starts
            run_config(args.task, policy, options, args.steps, "unused", args.settings).validate()
    except ValueError as exc:
        parser.error(f"--policies: {exc}")

    torch.set_num_threads(1)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"torch {torch.__version__}, 1 thread; commit {commit()}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load:
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    results: dict[str, list[dict[str, float]]] = {p: [] for p in policies}
    used: dict[str, rl.RLConfig] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, spec in enumerate(policies):
                policy, options = specs[spec]
                cfg = run_config(args.task, policy, options, args.steps, f"{tmp}/{i}_{r}", args.settings)
                if args.quick:
                    cfg.total_steps, cfg.n_envs, cfg.n_steps, cfg.eval_every, cfg.eval_episodes = 256, 2, 64, 128, 1
                used[spec] = cfg
                results[spec].append(measure(cfg))
    steps = 256 if args.quick else args.steps

    def median(policy: str, key: str) -> float:
        return statistics.median(m[key] for m in results[policy])

    configs = "each policy's task settings" if args.settings else "default RLConfig"
    print(f"\n{args.task}, {steps} steps per run, {configs}, median of {args.repeats} run(s)")
    for p, cfg in used.items():
        critic_part = f"critic {cfg.critic or 'default'}, " if cfg.policy != "mlp" else ""
        print(
            f"  {p}: {critic_part}{cfg.n_envs} envs x {cfg.n_steps} steps, minibatch {cfg.batch_size}, "
            f"{cfg.n_epochs} epochs, learning rate {cfg.lr:g}"
        )
    w = max(14, *map(len, policies))
    header = f"{'policy':<{w}} | {'steps/s':>8} | {'total s':>8} | {'rollout s':>9} | {'update s':>8} | {'eval s':>7}"
    print(header)
    print("-" * len(header))
    for p in policies:
        print(
            f"{p:<{w}} | {median(p, 'steps_per_s'):8.0f} | {median(p, 'seconds'):8.1f} | {median(p, 'rollout'):9.1f} | "
            f"{median(p, 'update'):8.1f} | {median(p, 'evaluation'):7.1f}"
        )
    if "mlp" in policies:
        for p in policies:
            if p != "mlp":
                print(f"{p}/mlp steps/s: {median(p, 'steps_per_s') / median('mlp', 'steps_per_s'):.2f}")
    if load:
        after = os.getloadavg()
        print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")


if __name__ == "__main__":
    main()
