"""The project layout: packages import with their documentation, and the entry point runs."""

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name", ["geomanip", "geomanip.envs", "geomanip.policies", "geomanip.motion", "geomanip.kernels", "benchmarks"]
)
def test_packages_import_and_say_what_they_are(name):
    module = importlib.import_module(name)
    assert module.__doc__ and len(module.__doc__.split()) > 20


def imports_of(path: Path, package: str) -> bool:
    """Whether the module at ``path`` has an import statement of ``geomanip.<package>``."""
    pattern = rf"^\s*(from geomanip\.{package}\b|from geomanip import {package}\b|import geomanip\.{package}\b)"
    return re.search(pattern, path.read_text(), flags=re.MULTILINE) is not None


def test_envs_and_motion_never_import_each_other():
    for package, forbidden in (("envs", "motion"), ("motion", "envs")):
        for path in (ROOT / package).rglob("*.py"):
            assert not imports_of(path, forbidden), path


def test_trajectory_models_and_body_fitting_never_import_each_other():
    # motion/ holds two parts: trajectory prediction (its modules and data/) and body fitting (body/). Only the
    # package's __init__ re-exports ArtEq from body/.
    motion, body = ROOT / "motion", ROOT / "motion" / "body"
    trajectory = [p for p in motion.rglob("*.py") if body not in p.parents and p != motion / "__init__.py"]
    for path in trajectory:
        assert not imports_of(path, "motion.body"), path
    names = sorted({p.relative_to(motion).parts[0].removesuffix(".py") for p in trajectory})
    for path in body.rglob("*.py"):
        assert not any(imports_of(path, f"motion.{name}") for name in names), path
        assert not re.search(r"^\s*from geomanip\.motion import", path.read_text(), flags=re.MULTILINE), path


def test_kernels_import_no_other_project_package():
    for path in (ROOT / "kernels").rglob("*.py"):
        for other in ("envs", "policies", "motion"):
            assert not imports_of(path, other), path


def test_train_entry_point_runs_a_tiny_rl_job(tmp_path):
    # With the progress bar on, as the Quickstart runs it (SB3's bar needs tqdm and rich installed).
    args = [
        "--total-steps",
        "64",
        "--n-envs",
        "1",
        "--n-steps",
        "64",
        "--batch-size",
        "64",
        "--eval-every",
        "64",
        "--eval-episodes",
        "1",
        "--hidden",
        "8",
        "--out",
        str(tmp_path / "rl"),
    ]
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "hepi on RigidSliding-v0: 64 steps" in result.stdout
    assert (tmp_path / "rl" / "summary.json").is_file()


def test_geomanip_command_trains_with_the_train_subcommand(tmp_path):
    # The console script installed with this interpreter (else the same entry point through python -m).
    script = shutil.which("geomanip", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "geomanip.cli"]
    args = ["train", "--total-steps", "64", "--n-envs", "1", "--n-steps", "64", "--batch-size", "64"]
    args += ["--eval-every", "64", "--eval-episodes", "1", "--hidden", "8", "--policy", "mlp", "--no-progress"]
    args += ["--out", str(tmp_path / "rl")]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mlp on RigidSliding-v0: 64 steps" in result.stdout
    assert (tmp_path / "rl" / "summary.json").is_file()
    again = subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("geomanip: error: ") and "--overwrite" in again.stderr


def test_kernel_benchmark_quick_run_prints_its_table():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.kernels", "--quick"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "|" in line and "200/2000" in line]
    assert {r.split("|")[1].strip().split()[0] for r in rows} == {"gather+scatter_sum", "EGNNConv", "FiberBlock"}


def test_env_benchmark_quick_run_prints_its_table():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.envs", "--quick", "--procs", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("Rigid")]
    assert len(rows) == 4 and all(len(r.split("|")) == 6 for r in rows)


def test_reference_policies_benchmark_shows_that_discounting_ranks_holding_still_above_shaping_the_rope():
    cmd = [sys.executable, "-m", "benchmarks.reference_policies", "--quick", "--tasks", "RopeShaping-v0"]
    result = subprocess.run(cmd + ["--gamma", "0.99"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [[c.strip() for c in line.split("|")] for line in result.stdout.splitlines() if line.startswith("Rope")]
    ret = {row[1]: (float(row[2]), float(row[4])) for row in rows}
    # Undiscounted the scripted controller is ahead of holding still (on these two starts; 20 in BENCHMARKS.md);
    # discounted by 0.99 from the start, far behind.
    assert ret["scripted"][0] > ret["hold still"][0] + 5
    assert ret["scripted"][1] < ret["hold still"][1] - 5
    bad = subprocess.run(cmd + ["--gamma", "0"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode != 0 and "--gamma must be in (0, 1], got 0.0" in bad.stderr


def test_reference_policies_benchmark_ranks_the_scripted_push_above_holding_still():
    cmd = [sys.executable, "-m", "benchmarks.reference_policies", "--quick", "--tasks", "RigidPushing-v0"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [[c.strip() for c in line.split("|")] for line in result.stdout.splitlines() if line.startswith("Rigid")]
    returns = {row[1]: float(row[2]) for row in rows}
    assert list(returns) == ["hold still", "random", "scripted", "scripted + N(0, 0.3)", "scripted + N(0, 1)"] + [
        "approach the object",
        "head for the goal",
    ]
    # The scripted push moves the object most of the way to the goal; holding still leaves it about 1 m away.
    assert returns["scripted"] > returns["hold still"] + 40
    bad = subprocess.run(cmd + ["--noise", "-1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 2 and "--noise takes positive standard deviations" in bad.stderr


def test_imitation_benchmark_quick_run_prints_its_table():
    cmd = [sys.executable, "-m", "benchmarks.imitation", "--quick", "--task", "RopeClosing-v0", "--policies", "mlp"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [[c.strip() for c in line.split("|")] for line in result.stdout.splitlines() if line.startswith("mlp ")]
    assert [row[1] for row in rows] == ["on", "off"] and all(len(row) == 9 for row in rows)
    assert all(0 < float(row[2]) < 1 and row[8] for row in rows)  # a fitted error, and the reference column
    bad = subprocess.run(cmd + ["--velocities", "sometimes"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 2 and "--velocities takes on, off or on,off" in bad.stderr
    rigid_cmd = cmd[:3] + ["--task", "RigidSliding-v0"]
    rigid = subprocess.run(rigid_cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert rigid.returncode == 2 and "--task must be a deformable task" in rigid.stderr


def test_throughput_benchmark_runs_each_policy_with_its_task_settings_and_own_options():
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.rl_throughput",
        "--quick",
        "--policies",
        "hepi,hepi:same/n_epochs=2/lr=1e-3,mlp",
    ]
    result = subprocess.run(cmd + ["--settings"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    # Insertion's settings file gives HEPi one network for actor and critic; a critic or option in the spec overrides.
    assert "  hepi: critic shared, 2 envs x 64 steps, minibatch 64, 4 epochs, learning rate 0.0003" in result.stdout
    own = "  hepi:same/n_epochs=2/lr=1e-3: critic same, 2 envs x 64 steps, minibatch 64, 2 epochs, learning rate 0.001"
    assert own in result.stdout
    rows = [[c.strip() for c in line.split("|")] for line in result.stdout.splitlines() if line.count("|") == 5]
    assert [row[0] for row in rows[1:]] == ["hepi", "hepi:same/n_epochs=2/lr=1e-3", "mlp"]
    assert all(float(row[1]) > 0 for row in rows[1:])
    assert "hepi/mlp steps/s: " in result.stdout
    for spec, message in [
        ("hepi:cheap", "unknown critic 'cheap'"),
        ("mlp:shared", "the MLP has no critic choice"),
        ("hepi/epochs=2", "'epochs' is not a training option"),
        ("hepi/n_epochs=0", "n_epochs must be positive, got 0"),  # checked before the first run starts
    ]:
        bad = subprocess.run(cmd[:3] + ["--policies", spec], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert bad.returncode == 2 and message in bad.stderr


def test_rl_benchmark_quick_run_prints_its_table(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.rl", "--quick", "--tasks", "RigidSliding-v0", "--policies", "hepi,mlp"]
    cmd += ["--seeds", "1", "--out", str(tmp_path / "runs"), "--plots", str(tmp_path / "plots")]
    cmd += ["--final-episodes", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("RigidSliding")]
    # The runs' last evaluations, then the final test, each of the mean and of the sampled actions.
    assert rows == ["hepi", "mlp", "random"] * 4
    assert "sampled actions, tested on 2 fresh episodes per set" in result.stdout
    assert "n/a" not in result.stdout
    assert (tmp_path / "plots" / "rl_rigidsliding.png").stat().st_size > 1000
    test = json.loads((tmp_path / "runs" / "RigidSliding-v0" / "mlp" / "seed0" / "final_test_2.json").read_text())
    assert test["steps"] == 256 and 0 <= test["metrics"]["stochastic_unseen_success"] <= 1
    # Other training options go to new runs under a tag of their own, beside the runs of the task's settings.
    cmd[cmd.index("hepi,mlp")] = "mlp"
    run_options = dict(capture_output=True, text=True, timeout=600, cwd=ROOT)
    tagged = subprocess.run(cmd + ["--set", "mean_bounds_coef=0.5", "--tag", "bounds", "--test-best"], **run_options)
    assert tagged.returncode == 0, tagged.stderr
    rows = [line.split("|")[1].strip() for line in tagged.stdout.splitlines() if line.startswith("RigidSliding")]
    assert rows == ["mlp_bounds", "random"] * 6  # --test-best adds best.zip's two tables
    tagged_run = tmp_path / "runs" / "RigidSliding-v0" / "mlp_bounds" / "seed0"
    config = json.loads((tagged_run / "run.json").read_text())
    assert config["mean_bounds_coef"] == 0.5
    best = json.loads((tagged_run / "summary.json").read_text())["best"]
    assert json.loads((tagged_run / "best_test_2.json").read_text())["steps"] == [best["steps"], 256]
    assert f"best.zip of RigidSliding-v0 mlp_bounds: from step {best['steps']} (by seed)" in tagged.stdout
    assert (tmp_path / "plots" / "rl_rigidsliding_bounds.png").is_file()
    untagged = subprocess.run(cmd + ["--set", "mean_bounds_coef=0.5"], **run_options)
    assert untagged.returncode == 2 and "--set needs --tag" in untagged.stderr

    # The training episodes' success, read back from the runs' TensorBoard logs.
    groups = [str(tmp_path / "runs" / "RigidSliding-v0" / p) for p in ("hepi", "mlp")]
    cmd = [sys.executable, "-m", "benchmarks.rl_rollout_success", *groups, "--out", str(tmp_path / "rollout.png")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|") for line in result.stdout.splitlines() if "RigidSliding-v0" in line]
    assert [r[0].strip().rsplit("/", 1)[-1] for r in rows] == ["hepi", "mlp"] and all(r[1].strip() == "1" for r in rows)
    assert (tmp_path / "rollout.png").stat().st_size > 1000
    missing = subprocess.run(cmd[:3] + [str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and f"no such folder: {tmp_path / 'nowhere'}" in missing.stderr


def test_rl_benchmark_plots_seeds_whose_histories_differ_in_length(tmp_path):
    # A run from before 749a2c1 evaluated twice at the budget, so its history has one entry more.
    from benchmarks.rl import plot

    def summary(evals):
        history = [{"steps": 100 * (i + 1), "train_return": -float(i), "unseen_return": -2.0 * i} for i in range(evals)]
        return {"history": history, "random": {"train_return": -50.0, "unseen_return": -60.0}}

    path = tmp_path / "rl.png"
    plot("RigidInsertion-v0", {"hepi": [summary(5), summary(4), summary(4)]}, path)
    assert path.stat().st_size > 1000


def test_rl_benchmark_plots_one_panel_for_a_task_with_one_variant_set(tmp_path):
    # The ropes have no held-out variants: their figure is the training panel alone, not one beside a blank.
    from matplotlib.image import imread

    from benchmarks.rl import plot

    history = [{"steps": 100 * (i + 1), "train_return": -float(i)} for i in range(3)]
    plot("RopeShaping-v0", {"hepi": [{"history": history, "random": {"train_return": -50.0}}]}, tmp_path / "one.png")
    both = [{**h, "unseen_return": -2.0} for h in history]
    random = {"train_return": -50.0, "unseen_return": -60.0}
    plot("RigidInsertion-v0", {"hepi": [{"history": both, "random": random}]}, tmp_path / "two.png")
    one, two = imread(tmp_path / "one.png"), imread(tmp_path / "two.png")
    assert one.shape[0] == two.shape[0] and 2 * one.shape[1] == two.shape[1]


def test_rendering_then_training_in_one_process_does_not_crash():
    # Mesa's EGL driver and Triton both bring an LLVM; Triton loaded after a GL context segfaulted.
    script = (
        "import gymnasium as gym, geomanip.envs, torch\n"
        "env = gym.make('RigidSliding-v0', render_mode='rgb_array', width=64, height=64)\n"
        "env.reset(seed=0)\n"
        "assert env.render().shape == (64, 64, 3)\n"
        "torch.optim.Adam([torch.zeros(1, requires_grad=True)])\n"
        "print('trained after rendering')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "trained after rendering" in result.stdout
