"""Success rate of the training episodes (sampled actions) against environment steps, from the runs' logs.

Run: ``python -m benchmarks.rl_rollout_success GROUP [GROUP ...] [--out docs/images/rollout_success.png]``, where
a GROUP is a folder of seed folders (``<out>/<task>/<policy>`` of ``benchmarks.rl``) or one run's folder. Each
run's TensorBoard log (``tb/``) holds SB3's ``rollout/success_rate``: the share of the last 100 finished training
episodes that ended in success, acting with sampled actions (the stochastic policy PPO trains) on the training
variants. It costs no evaluation, and exists for runs made before the evaluations sampled actions too; it trails
the policy by up to 100 episodes and its episodes straddle updates, so the seeded evaluations (``benchmarks.rl
--final-episodes``) are the numbers to report, this is the curve between them. Prints, per group, the first step
at which the mean over runs reaches 50% and 80%, and the last value, mean ± std over runs; plots mean ± std.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TAG = "rollout/success_rate"


def rollout_success(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """Steps and ``rollout/success_rate`` of one run, over all its TensorBoard segments (a resumed run has several)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for log in sorted((run / "tb").iterdir()):
        events = EventAccumulator(str(log), size_guidance={"scalars": 0})
        events.Reload()
        if TAG in events.Tags()["scalars"]:
            points |= {e.step: e.value for e in events.Scalars(TAG)}
    if not points:
        raise ValueError(f"{run / 'tb'} has no {TAG} (a task whose episodes report no is_success?)")
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def on_grid(runs: list[tuple[np.ndarray, np.ndarray]], points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Every run's curve interpolated onto one grid of steps, up to the shortest run's last step."""
    end = min(steps[-1] for steps, _ in runs)
    grid = np.linspace(0, end, points)
    return grid, np.array([np.interp(grid, steps, values) for steps, values in runs])


def first_reaching(grid: np.ndarray, mean: np.ndarray, level: float) -> str:
    hits = np.flatnonzero(mean >= level)
    return f"{grid[hits[0]] / 1000:.0f}k" if len(hits) else "never"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "groups", nargs="+", help="folders of seed folders (runs/bench_rl/RigidInsertion-v0/hepi) or runs"
    )
    parser.add_argument("--out", default=None, help="write the plot here (PNG)")
    args = parser.parse_args()
    missing = [g for g in args.groups if not Path(g).is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(missing)}")

    curves = {}
    print(f"{'group':<50} |  runs | mean reaches 50% | mean reaches 80% | last (mean ± std)")
    for group in map(Path, args.groups):
        single = (group / "tb").is_dir()
        seeds = [group] if single else sorted(p for p in group.iterdir() if (p / "tb").is_dir())
        if not seeds:
            raise SystemExit(f"{group}: no run folders with a tb/ log")
        try:
            grid, values = on_grid([rollout_success(seed) for seed in seeds])
        except ValueError as exc:
            raise SystemExit(f"benchmarks.rl_rollout_success: {exc}") from None
        mean = values.mean(0)
        last = values[:, -1]
        print(
            f"{str(group)[-50:]:<50} | {len(seeds):>5} | {first_reaching(grid, mean, 0.5):>16} | "
            f"{first_reaching(grid, mean, 0.8):>16} | {last.mean():.0%} ± {last.std():.0%}"
        )
        name = " / ".join(group.parts[-3:] if single else group.parts[-2:])  # task / policy, and seed
        curves[name] = (grid, values)

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from geomanip.policies.training import label_steps_axis

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, (grid, values) in curves.items():
            mean, std = values.mean(0), values.std(0)
            runs = f"{len(values)} run{'s' * (len(values) > 1)}"
            ax.plot(grid, mean, label=f"{name} ({runs})")
            ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
        label_steps_axis(ax)
        ax.set_ylabel("success of the last 100 training episodes")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title("training episodes (sampled actions), mean ± std over runs")
        fig.tight_layout()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main()
