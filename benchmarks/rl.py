"""Learning curves of the graph policies and baselines at equal environment steps.

Run: ``python -m benchmarks.rl [--steps N] [--seeds 3] [--tasks RigidInsertion-v0,RigidPushing-v0] [--policies
hepi,empn,transformer,mlp] [--algo ppo|trpl] [--set OPTION=VALUE --tag NAME]`` (``--quick`` for a smoke run).
Each (task, policy, seed) is one ``geomanip train`` run in its own folder under ``--out``, with the task's settings
file (:func:`geomanip.policies.training.configure`), whose budget ``--steps`` replaces when given, and ``--evals``
points on the curve; finished runs (with a ``summary.json`` of at least the budget) are reused and interrupted ones
resume from their checkpoint, so an interrupted benchmark continues where it stopped. Prints final success and
return on training and held-out variants (shapes; cloth holes), mean ± std over seeds, of the deterministic policy
(its mean action) and of the stochastic one (sampled actions, the policy PPO trains; n/a for runs from before both
were evaluated), the random policy's, and wall-clock minutes per million environment steps; plots the mean curves
per task to ``--plots``. ``--final-episodes N`` also tests each run's final checkpoint on N fresh episodes per
variant set (seeds 20,000+, disjoint from the training-time evaluations at 10,000+; kept in the run's folder) and
prints those tables too: an evaluation of 10 episodes moves by tens of points from one checkpoint to the next.
``--test-best`` (with ``--final-episodes``) tests each run's ``best.zip`` the same way, the checkpoint of its best
training-time evaluation (:func:`~geomanip.policies.training.keep_if_best`), for tasks where RL wears a policy down.
``--set`` gives new runs any other training option (a :class:`~geomanip.policies.training.RLConfig` field, ``--set
mean_bounds_coef=1``); such runs need a ``--tag``, which names their folders and table rows (``hepi_bounds``), so
they are never mixed up with runs of the task's settings in the same ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geomanip.policies import POLICIES
from geomanip.policies.training import (
    BEST,
    CHECKPOINT,
    TEST_SEED,
    RLConfig,
    configure,
    evaluate_checkpoint,
    label_steps_axis,
    run,
)
from geomanip.runs import write_json


def final_test(out: Path, summary: dict, episodes: int, checkpoint: str = CHECKPOINT) -> dict[str, float]:
    """Metrics of a run's checkpoint (the final one, or ``best.zip``) on ``episodes`` fresh episodes per variant
    set, deterministic and stochastic policy (:func:`~geomanip.policies.training.evaluate_modes`), computed once per
    checkpoint (cached in ``out / final_test_{episodes}.json``, ``best_test_{episodes}.json``, with the steps the
    checkpoint and the run had)."""
    best = checkpoint == BEST
    path = out / f"{'best' if best else 'final'}_test_{episodes}.json"
    steps = [summary["best"]["steps"], summary["steps"]] if best else summary["steps"]
    if path.is_file() and (cached := json.loads(path.read_text()))["steps"] == steps:
        return cached["metrics"]
    metrics = evaluate_checkpoint(str(out / checkpoint), episodes, task=summary["config"]["task"])
    write_json(path, {"steps": steps, "episodes": episodes, "metrics": metrics})
    return metrics


# Options the benchmark itself sets per run; --set may not override them.
OWN_OPTIONS = (
    "task",
    "policy",
    "algo",
    "seed",
    "total_steps",
    "out",
    "resume",
    "overwrite",
    "eval_every",
    "eval_episodes",
)


def parse_options(pairs: list[str], flag: str = "--set") -> dict[str, Any]:
    """``["mean_bounds_coef=1", ...]`` as training options; values are read as JSON (numbers, ``true``), else text.

    Raises ``ValueError`` naming a pair that is not ``OPTION=VALUE``, an unknown option or one the benchmark sets
    (the message names the pair as given with ``flag``).
    """
    known = {f.name for f in fields(RLConfig)}
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r}: expected OPTION=VALUE, e.g. mean_bounds_coef=1")
        if key not in known or key in OWN_OPTIONS:
            raise ValueError(f"{flag} {pair!r}: {key!r} is not a training option the benchmark leaves free")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def plot(task: str, runs: dict[str, list[dict]], path: Path) -> None:
    """Mean return (training and held-out variants: shapes, cloth holes) against environment steps, one line per
    policy (grey: random)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = next(iter(runs.values()))  # every run records the random policy's metrics
    # The ropes have one variant set; a second, empty panel would read as a missing result.
    sets = [v for v in ("train", "unseen") if f"{v}_return" in baseline[0]["random"]]
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4), sharey=True, squeeze=False)
    for ax, shapes in zip(axes[0], sets, strict=True):
        for policy, summaries in runs.items():
            # Seeds can differ by an evaluation (runs before 749a2c1 evaluated twice at the budget): plot the
            # points every seed has, at their mean step count.
            n = min(len(s["history"]) for s in summaries)
            steps = np.mean([[h["steps"] for h in s["history"][:n]] for s in summaries], 0)
            curves = np.array([[h[f"{shapes}_return"] for h in s["history"][:n]] for s in summaries])
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(steps, mean, marker=".", label=policy)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        ax.axhline(np.mean([s["random"][f"{shapes}_return"] for s in baseline]), color="0.5", lw=1)
        ax.set_title("training variants" if shapes == "train" else "held-out variants")
        label_steps_axis(ax)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean return (deterministic policy; grey: random)")
    axes[0, 0].legend()
    fig.suptitle(f"{task}, mean ± std over seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="RigidInsertion-v0,RigidPushing-v0")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, default=None, help="environment steps per run (default: each task's settings budget)"
    )
    parser.add_argument("--evals", type=int, default=5, help="evaluations per run (the curve's points)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation and shape set")
    parser.add_argument(
        "--final-episodes", type=int, default=0, help="also test each final policy on this many fresh episodes per set"
    )
    parser.add_argument(
        "--test-best", action="store_true", help="with --final-episodes, also test each run's best.zip on them"
    )
    parser.add_argument("--out", default="runs/bench_rl")
    parser.add_argument("--plots", default="docs/images")
    parser.add_argument("--algo", choices=("ppo", "trpl"), default="ppo", help="on-policy algorithm")
    parser.add_argument(
        "--set", action="append", default=[], metavar="OPTION=VALUE", help="a training option of new runs (repeatable)"
    )
    parser.add_argument("--tag", default="", help="suffix of the runs' folders and rows (needed with --set)")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test of the script)")
    args = parser.parse_args()
    try:
        extra = parse_options(args.set)
    except ValueError as e:
        parser.error(str(e))
    if extra and not args.tag:
        parser.error("--set needs --tag, which keeps these runs apart from those with the task's settings")
    if args.tag and not args.tag.replace("_", "").replace("-", "").isalnum():
        parser.error(f"--tag {args.tag!r}: use letters, digits, '_' and '-' (it names folders and files)")
    if args.test_best and not args.final_episodes:
        parser.error("--test-best tests on the --final-episodes episodes: give both")
    if args.quick:
        args.steps, args.evals, args.eval_episodes = 256, 2, 1
    tasks, policies = args.tasks.split(","), args.policies.split(",")
    budget = f"{args.steps} steps" if args.steps else "each task's budget"
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {budget} x {args.seeds} seeds per policy")

    rows = []
    for task in tasks:
        by_policy: dict[str, list[dict]] = {}
        for policy in policies:
            steps = args.steps or configure(task=task, policy=policy).total_steps
            for seed in range(args.seeds):
                name = "_".join([policy] + [args.algo] * (args.algo != "ppo") + [args.tag] * bool(args.tag))
                out = Path(args.out) / task / name / f"seed{seed}"
                summary_path = out / "summary.json"
                if summary_path.is_file() and json.loads(summary_path.read_text())["steps"] >= steps:
                    summary = json.loads(summary_path.read_text())
                else:
                    resume = (out / CHECKPOINT).is_file()
                    options = dict(total_steps=steps, out=str(out), resume=resume, progress=False)
                    if not resume:
                        options |= dict(task=task, policy=policy, algo=args.algo, seed=seed)
                        options |= dict(eval_every=max(1, steps // args.evals), eval_episodes=args.eval_episodes)
                        options |= extra
                        if args.quick:
                            options |= dict(n_envs=2, n_steps=64, batch_size=64, n_epochs=1, hidden=8)
                    summary = run(configure(**options))
                if args.final_episodes:
                    summary["final_test"] = final_test(out, summary, args.final_episodes)
                if args.test_best and "best" in summary:  # runs from before best.zip have none
                    summary["best_test"] = final_test(out, summary, args.final_episodes, BEST)
                by_policy.setdefault(name, []).append(summary)
            rows.append((task, name, by_policy[name]))
        tag = f"_{args.tag}" if args.tag else ""
        plot(task, by_policy, Path(args.plots) / f"rl_{task.split('-')[0].lower()}{tag}.png")

    def stat(summaries: list[dict], key: str, part: str = "final") -> str:
        if any(key not in s.get(part, {}) for s in summaries):
            return "n/a"  # a task without held-out variants (the ropes), or runs from before sampled evaluations
        v = np.array([s[part][key] for s in summaries])
        return f"{v.mean():7.1f} ± {v.std():5.1f}" if "return" in key else f"{v.mean():5.0%} ± {v.std():4.0%}"

    columns = {"train_success": 13, "unseen_success": 14, "train_return": 15, "unseen_return": 15}

    name_width = max(11, *(len(policy) for _, policy, _ in rows))  # tagged names are longer

    def table(title: str, part: str, prefix: str = "") -> None:
        print(f"\n{title}, mean ± std over {args.seeds} seeds")
        header = f"{'task':<26} | {'policy':<{name_width}} | {'steps':>9} | {'success train':>13} | "
        header += f"{'success unseen':>14} | {'return train':>15} | {'return unseen':>15} | {'min / 1M steps':>14}"
        print(header)
        print("-" * len(header))
        for i, (task, policy, summaries) in enumerate(rows):
            minutes = np.mean([s["train_seconds"] / s["steps"] * 1e6 / 60 for s in summaries])
            cells = " | ".join(f"{stat(summaries, prefix + key, part):>{width}}" for key, width in columns.items())
            print(f"{task:<26} | {policy:<{name_width}} | {summaries[0]['steps']:>9} | {cells} | {minutes:14.0f}")
            if i == len(rows) - 1 or rows[i + 1][0] != task:
                cells = " | ".join(f"{stat(summaries, key, 'random'):>{width}}" for key, width in columns.items())
                print(f"{task:<26} | {'random':<{name_width}} | {'':>9} | {cells} |")

    parts = {"the runs' last evaluation": "final"}
    if args.final_episodes:
        parts[f"tested on {args.final_episodes} fresh episodes per set (seeds {TEST_SEED:,}+)"] = "final_test"
    for what, part in parts.items():
        table(f"Final policy, mean action, {what}", part)
        table(f"Final policy, sampled actions, {what}", part, "stochastic_")
    if args.test_best:
        what = f"tested on {args.final_episodes} fresh episodes per set"
        table(f"Best checkpoint (best.zip), mean action, {what}", "best_test")
        table(f"Best checkpoint (best.zip), sampled actions, {what}", "best_test", "stochastic_")
        for task, policy, summaries in rows:
            steps = ", ".join(str(s["best"]["steps"]) if "best" in s else "none" for s in summaries)
            print(f"best.zip of {task} {policy}: from step {steps} (by seed)")


if __name__ == "__main__":
    main()
