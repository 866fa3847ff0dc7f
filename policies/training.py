"""PPO or TRPL training and evaluation of the graph policies on the benchmark tasks (``geomanip train``).

Read top to bottom: configuration (:class:`RLConfig`, and :func:`configure`, which applies the task's settings
file, ``policies/settings/<task>.toml``), environments, evaluation, the callback that evaluates and
checkpoints, then :func:`run` (train) and :func:`evaluate_checkpoint` (load and roll out). Outputs in ``out``:
``run.json`` (the configuration), ``last.zip`` (atomic checkpoint, written at every evaluation and at the
end; with ``reward_norm.pkl``, the reward scaler's statistics, when rewards are normalised), TensorBoard
logs (``tb/``: SB3's ``rollout/`` and ``train/`` scalars plus ``eval/``), ``summary.json`` and
``learning_curve.png``. A folder that already holds a run is refused unless resumed or overwritten
(:func:`geomanip.runs.prepare_output`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure as configure_logger
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor, VecNormalize

from geomanip import envs, runs
from geomanip.envs.vector import make_vector_env
from geomanip.envs.warp_batch import warp_available
from geomanip.policies import POLICIES, make_policy
from geomanip.policies.demonstrations import MAX_EPISODES as MAX_DEMO_EPISODES
from geomanip.policies.demonstrations import Demonstrations, pretrain
from geomanip.policies.imitation_term import add_imitation_term
from geomanip.policies.mean_bounds import penalize_mean_beyond_bounds
from geomanip.policies.sb3 import CRITICS
from geomanip.policies.trpl import TRPL

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "RLConfig",
    "configure",
    "evaluate_checkpoint",
    "evaluate_modes",
    "evaluate_policy",
    "make_training_envs",
    "run",
    "task_settings",
]

ALGORITHMS = {"ppo": PPO, "trpl": TRPL}
SETTINGS = Path(__file__).resolve().parent / "settings"
# Episode seeds: evaluations during training (and the random baseline) start at EVAL_SEED, tests of a finished
# policy at TEST_SEED, so that a test never replays the episodes a checkpoint was chosen or judged on.
EVAL_SEED = 10_000
TEST_SEED = 20_000


@dataclass
class RLConfig:
    """Settings of a training run (each field is a ``geomanip train`` option).

    These are the defaults shared by every task; :func:`configure` applies the task's settings file over them.
    """

    task: str = "RigidSliding-v0"
    """Environment id: RigidSliding-v0, RigidPushing-v0, RigidInsertion-v0, RigidInsertionTwoAgents-v0,
    RopeClosing-v0, RopeShaping-v0 or ClothHanging-v0 (with or without the geomanip/ prefix)."""
    policy: Literal["hepi", "empn", "transformer", "mlp"] = "hepi"
    """Policy network."""
    algo: Literal["ppo", "trpl"] = "ppo"
    """On-policy algorithm: ppo (clipped surrogate) or trpl (trust-region projection layers, Otto et al. 2021)."""
    total_steps: int = 50_000
    """Environment steps to train for (all environments together; 0 with --demo-episodes: pretraining alone, no
    RL). Every task's settings file
    (policies/settings/<task>.toml) sets its own budget, and may set any other option: its values replace the
    defaults shown here."""
    n_envs: int = 8
    """Parallel environments."""
    subproc: bool = False
    """Run the environments in subprocesses (SubprocVecEnv) instead of in this process (where the rigid tasks
    are stepped as one batch, :class:`geomanip.envs.vector.RigidVectorEnv`, and the others by a DummyVecEnv)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the task's environment, in training, pretraining and every evaluation (the RL Zoo's
    env_kwargs), as JSON: --env-kwargs '{"final_weight": 0}'. A settings file gives them as a table. The variant
    sets' own arguments (shape, holes) are not allowed."""
    sim: Literal["mujoco", "warp"] = "mujoco"
    """Simulator of the training environments (rigid tasks): mujoco (C MuJoCo on the CPU) or warp (MuJoCo Warp,
    on the policy's device: thousands of environments on a GPU; needs pip install "geomanip[warp]"). With warp
    each environment keeps one shape (the training shapes dealt out in blocks); evaluation always runs on C
    MuJoCo, so results are comparable whichever simulator trained."""
    seed: int = 0
    """Random seed."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (cuda when available): the policy's device, and the simulator's with --sim warp."""
    threads: int = 1
    """CPU threads of PyTorch (0: its default, one per core). One is the default because PPO's minibatches
    are small, and with any other load on the machine more threads made HEPi's update much slower
    (BENCHMARKS.md, Threads)."""
    out: str = "runs/rl"
    """Output folder (refused if it already holds a run, unless --resume or --overwrite)."""
    resume: bool = False
    """Continue the run in out from last.zip; options not given are the saved run's (task, policy, sizes)."""
    overwrite: bool = False
    """Replace the run in out: its checkpoint, logs and summary are deleted first."""
    eval_every: int = 10_000
    """Environment steps between evaluations (and checkpoints)."""
    eval_episodes: int = 10
    """Episodes per evaluation, on the training variants and again on the held-out ones (see variant_sets)."""
    hidden: int | None = None
    """Width of the graph networks (not given: the network's own default, as geomanip.policies builds it)."""
    longitudes: int | None = None
    """HEPi/EMPN: directions per ring of the orientation grid (two rings; the policy is exactly equivariant to
    rotations about the vertical by multiples of 360/longitudes degrees); not given: HEPiNetwork's default."""
    basis_dim: int | None = None
    """HEPi/EMPN: size of the convolution kernel bases (not given: HEPiNetwork's default)."""
    critic: Literal["same", "deepsets", "shared"] | None = None
    """Graph policies: where the value comes from (same: a second network of the actor's architecture;
    deepsets: a small invariant DeepSets network, much cheaper; shared: the actor's network with a value head);
    not given: the policy's default (geomanip.policies.GraphActorCriticPolicy)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (SB3's default, 0: std 1, as the original HEPi)."""
    mean_bounds_coef: float = 0.0
    """Weight of a penalty on the action mean's components beyond +-1.1 (rl_games' bounds loss,
    geomanip.policies.mean_bounds; 0: none, the default). It keeps the mean where sampled actions still differ after
    clipping, so a run cannot get stuck with its mean far outside the bounds; but sampled policies also use such a
    mean to act at full speed whatever the noise, and on insertion the penalty made learning slower (BENCHMARKS.md)."""
    demo_episodes: int = 0
    """Before RL, pretrain the policy on the task's scripted controller, this many episodes per round (0: no
    pretraining, the default): behaviour cloning, then DAgger rounds (geomanip.policies.demonstrations). A run
    pretrained this way is not RL alone; BENCHMARKS.md lists its results apart."""
    demo_rounds: int = 3
    """Pretraining rounds: the first clones the scripted controller, each further one is a DAgger round."""
    demo_epochs: int = 10
    """Passes over the demonstrations collected so far after each pretraining round."""
    demo_coef: float = 0.0
    """Weight of an imitation term kept in the loss during RL: every gradient step also fits the action mean to a
    minibatch of the pretraining's demonstrations (DAPG's augmented loss, geomanip.policies.imitation_term; 0: none,
    the default). Needs demo_episodes; the demonstrations are kept in the run's folder (demonstrations.npz) for
    --resume."""
    n_steps: int = 64
    """Rollout length per environment between updates."""
    batch_size: int = 64
    """PPO minibatch size. Small, so that an update of n_envs x n_steps samples takes many gradient steps: with
    few, larger minibatches the policy hardly moved, at about the same compute (BENCHMARKS.md, PPO minibatch
    64)."""
    n_epochs: int = 4
    """PPO epochs per update."""
    lr: float = 3e-4
    """Adam learning rate."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """constant: lr throughout; linear: from lr down to 0 at total_steps, by the steps done (the RL Zoo's lin_
    schedules; a run resumed with a larger budget follows the new budget's line)."""
    gamma: float = 0.99
    """Discount factor (of the returns the critic learns and the reward scaler tracks)."""
    ent_coef: float = 0.005
    """Entropy bonus."""
    normalize_reward: bool = True
    """Scale rewards by a running estimate of the return's standard deviation (VecNormalize, rewards only;
    observations stay raw so equivariance holds): value targets of about -100 otherwise dominate the loss."""
    projection: Literal["kl", "w2", "frobenius"] = "kl"
    """TRPL: the trust-region measure of the projection."""
    mean_bound: float = 0.03
    """TRPL: per-state bound on the mean part of the measure to the rollout's policy."""
    cov_bound: float = 1e-3
    """TRPL: per-state bound on its covariance part."""
    trust_region_coef: float = 1.0
    """TRPL: weight of the trust-region regression loss."""
    progress: bool = True
    """Show a progress bar (without it, one line per evaluation)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first option that is not valid."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; available: {', '.join(TASKS)}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; available: {', '.join(POLICIES)}")
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algo {self.algo!r}; available: {', '.join(ALGORITHMS)}")
        if self.total_steps < 0 or self.n_envs < 1 or self.eval_every < 1:
            raise ValueError("total_steps, n_envs and eval_every must be positive")
        for name in ("n_steps", "batch_size", "n_epochs", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.total_steps == 0 and self.demo_episodes == 0:
            raise ValueError("total_steps must be positive (0 only with demo_episodes: pretraining alone)")
        for name in ("hidden", "longitudes", "basis_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)} (leave it out for the default)")
        if self.critic is not None and (self.policy == "mlp" or self.critic not in CRITICS):
            raise ValueError(f"critic {self.critic!r} is not one of {', '.join(CRITICS)} for a graph policy")
        self._validate_env_kwargs()
        if self.sim == "warp":
            if self.task not in envs.RIGID_TASKS or self.subproc:
                raise ValueError(f"sim 'warp' runs the rigid tasks in this process, not {self.task!r} or with subproc")
            reason = warp_available()
            if reason is not None:
                raise ValueError(f"sim 'warp': {reason}")
        if self.mean_bounds_coef < 0:
            raise ValueError(f"mean_bounds_coef must be 0 (no penalty) or positive, got {self.mean_bounds_coef}")
        if self.demo_episodes < 0 or self.demo_rounds < 1 or self.demo_epochs < 1:
            raise ValueError(
                f"demo_episodes must be 0 (no pretraining) or positive and demo_rounds, demo_epochs positive, got "
                f"{self.demo_episodes}, {self.demo_rounds}, {self.demo_epochs}"
            )
        if self.demo_coef < 0 or (self.demo_coef > 0 and self.demo_episodes == 0):
            raise ValueError(
                f"demo_coef must be 0 (no imitation term) or positive with demo_episodes (the demonstrations it "
                f"imitates), got demo_coef {self.demo_coef} with demo_episodes {self.demo_episodes}"
            )
        if self.demo_episodes * self.demo_rounds > MAX_DEMO_EPISODES:
            raise ValueError(
                f"pretraining uses at most {MAX_DEMO_EPISODES} episodes, got demo_episodes {self.demo_episodes} x "
                f"demo_rounds {self.demo_rounds}"
            )
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 (PyTorch's default) or positive, got {self.threads}")

    def _validate_env_kwargs(self) -> None:
        if not isinstance(self.env_kwargs, dict) or not all(isinstance(k, str) for k in self.env_kwargs):
            raise ValueError(f"env_kwargs must map argument names to values, got {self.env_kwargs!r}")
        reserved = sorted(set(self.env_kwargs) & {k for kw in variant_sets(self.task).values() for k in kw})
        if reserved:
            raise ValueError(f"env_kwargs may not set {reserved}: the training and held-out variant sets set them")
        if self.env_kwargs:
            try:  # the environment checks its own arguments' names and values
                gym.make(self.task, **self.env_kwargs).close()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"env_kwargs {self.env_kwargs}: {self.task} refuses them ({exc})") from exc


def task_settings(task: str, policy: str) -> dict[str, Any]:
    """The tuned settings of ``task`` for ``policy``: the ``[all]`` table of ``policies/settings/<task>.toml``,
    then its ``[<policy>]`` table; ``{}`` for a task without a file. Raises ``ValueError`` for unknown keys."""
    path = SETTINGS / f"{task}.toml"
    if not path.is_file():
        return {}
    tables = tomllib.loads(path.read_text())
    unknown_tables = set(tables) - {"all", *POLICIES}
    if unknown_tables:
        raise ValueError(f"{path}: unknown tables {sorted(unknown_tables)}; expected [all] or a policy name")
    settings = {**tables.get("all", {}), **tables.get(policy, {})}
    unknown = set(settings) - {f.name for f in fields(RLConfig)} or set(settings) & {"task", "policy", "out"}
    if unknown:
        raise ValueError(f"{path}: {sorted(unknown)} are not settings a task file may set")
    return settings


def configure(**given: Any) -> RLConfig:
    """The configuration of a run from the options ``given`` (by field name; only those the user gave).

    Precedence, lowest first: :class:`RLConfig`'s defaults, the task's settings file (:func:`task_settings`),
    with ``resume`` the saved run's values (which already include its settings), then ``given``.
    """
    if "task" in given:
        given = {**given, "task": envs.bare_id(given["task"])}
    cfg = runs.options_config(RLConfig, given)
    if cfg.resume:
        return cfg
    return RLConfig(**{**asdict(cfg), **task_settings(cfg.task, cfg.policy), **given})


TASKS = (*envs.RIGID_TASKS, *envs.DEFORMABLE_TASKS)


def variant_sets(task: str) -> dict[str, dict]:
    """Environment keyword arguments of the training variants and, where the task has them, the held-out ones.

    Rigid tasks: training and unseen shapes; cloth hanging: training and held-out hole positions; the rope
    tasks have a single variant (``{"train": {}}``), so their metrics have no ``unseen_`` entries.
    """
    if task in envs.RIGID_TASKS:
        return {"train": {"shape": "train"}, "unseen": {"shape": "unseen"}}
    if task == "ClothHanging-v0":
        return {"train": {"holes": "train"}, "unseen": {"holes": "held_out"}}
    return {"train": {}}


def variant_kwargs(cfg: RLConfig) -> dict[str, dict]:
    """:func:`variant_sets` of ``cfg.task`` with ``cfg.env_kwargs`` added to each: the environments a run trains and
    evaluates on."""
    return {name: {**kwargs, **cfg.env_kwargs} for name, kwargs in variant_sets(cfg.task).items()}


def network_kwargs(cfg: RLConfig) -> dict[str, int]:
    """The network options of ``cfg`` that apply to its policy and were given (the others are the network's
    defaults, defined once in its class, so ``make_policy(name, env)`` builds what ``geomanip train`` trains)."""
    names = {"hepi": ("hidden", "longitudes", "basis_dim"), "empn": ("hidden", "longitudes", "basis_dim")}
    names["transformer"] = ("hidden",)
    return {k: getattr(cfg, k) for k in names.get(cfg.policy, ()) if getattr(cfg, k) is not None}


def policy_spec(cfg: RLConfig, env: gym.Env) -> tuple[Any, dict[str, Any]]:
    """``(policy, policy_kwargs)`` of ``cfg``'s policy for ``env``, as training and loading build it."""
    policy, policy_kwargs = make_policy(cfg.policy, env, **network_kwargs(cfg))
    if cfg.critic is not None:
        policy_kwargs["critic"] = cfg.critic
    policy_kwargs["log_std_init"] = cfg.log_std_init
    return policy, policy_kwargs


def make_training_envs(cfg: RLConfig) -> VecEnv:
    """The ``cfg.n_envs`` training environments (training variants; environment ``i`` seeded ``cfg.seed + i``).

    In this process, rigid tasks run as one batched :class:`~geomanip.envs.vector.RigidVectorEnv` (the same episodes as
    SB3's ``DummyVecEnv`` of single environments, in fewer Python calls), the others in a ``DummyVecEnv``;
    with ``cfg.subproc``, each environment in its own process (``SubprocVecEnv``).
    """
    train_kwargs = variant_kwargs(cfg)["train"]
    if cfg.sim == "warp":
        device = str(runs.resolve_device(cfg.device))
        return VecMonitor(
            make_vector_env(
                cfg.task, cfg.n_envs, seed=cfg.seed, backend="warp", device=device, infos="episode_end", **train_kwargs
            )
        )
    if cfg.task in envs.RIGID_TASKS and not cfg.subproc:
        return VecMonitor(make_vector_env(cfg.task, cfg.n_envs, seed=cfg.seed, **train_kwargs))
    vec_cls = SubprocVecEnv if cfg.subproc else DummyVecEnv
    return make_vec_env(cfg.task, cfg.n_envs, seed=cfg.seed, vec_env_cls=vec_cls, env_kwargs=train_kwargs)


def evaluation_envs(task: str, env_kwargs: dict, episodes: int, seed: int) -> VecEnv:
    """One environment per evaluation episode, environment ``i`` seeded ``seed + i``: a batched
    :class:`~geomanip.envs.vector.RigidVectorEnv` for the rigid tasks, a ``DummyVecEnv`` for the others."""
    if task in envs.RIGID_TASKS:
        return make_vector_env(task, episodes, seed=seed, **env_kwargs)
    venv = DummyVecEnv([lambda: gym.make(task, **env_kwargs)] * episodes)
    venv.seed(seed)
    return venv


def evaluate_policy(predict, task: str, env_kwargs: dict, episodes: int, seed: int) -> dict[str, float]:
    """Mean return and success rate of ``predict(obs) -> actions`` over seeded episodes of one variant set.

    The episodes run side by side, one environment each, so ``predict`` sees a batch of ``episodes``
    observations per step (one forward pass of the policy); each episode counts until its first end.
    """
    venv = evaluation_envs(task, env_kwargs, episodes, seed)
    obs = venv.reset()
    returns, successes = np.zeros(episodes), np.full(episodes, np.nan)
    while np.isnan(successes).any():
        obs, rewards, dones, infos = venv.step(predict(obs))
        running = np.isnan(successes)
        returns[running] += rewards[running]
        for i in np.flatnonzero(dones & running):
            successes[i] = float(infos[i]["is_success"])
    venv.close()
    return {"return": float(returns.mean()), "success": float(successes.mean())}


def evaluate_both(predict, cfg: RLConfig, seed: int) -> dict[str, float]:
    out = {}
    for name, env_kwargs in variant_kwargs(cfg).items():
        for k, v in evaluate_policy(predict, cfg.task, env_kwargs, cfg.eval_episodes, seed).items():
            out[f"{name}_{k}"] = v
    return out


def evaluate_modes(model: BaseAlgorithm | BasePolicy, cfg: RLConfig, seed: int) -> dict[str, float]:
    """:func:`evaluate_both` of ``model``'s deterministic policy (the mean action), then of the stochastic policy
    that PPO and TRPL train (its keys prefixed ``stochastic_``); ``model`` is an SB3 algorithm or policy.

    The two can differ widely, either way: on sliding the mean action is the better policy, on insertion the
    sampled one (BENCHMARKS.md). The samples are seeded by ``seed`` on a forked random stream, so an evaluation
    is reproducible and leaves the training's random numbers as they were.
    """
    metrics = evaluate_both(lambda obs: model.predict(obs, deterministic=True)[0], cfg, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        sampled = evaluate_both(lambda obs: model.predict(obs, deterministic=False)[0], cfg, seed)
    return metrics | {f"stochastic_{k}": v for k, v in sampled.items()}


# What a run writes in its output folder: the checkpoint, then the rest (deleted first by --overwrite).
CHECKPOINT = "last.zip"
PRETRAINED = "pretrained.zip"  # the policy at the end of pretraining (--demo-episodes), as a checkpoint
BEST = "best.zip"  # the policy of the best evaluation so far (evaluation_score)
DEMONSTRATIONS = "demonstrations.npz"  # pretraining's demonstrations, kept for the imitation term (demo_coef)
OUTPUTS = (
    "reward_norm.pkl",
    BEST,
    "run.json",
    "history.json",
    "demonstrations.json",
    DEMONSTRATIONS,
    PRETRAINED,
    "learning_curve.png",
    "tb",
)
# What a resumed run must share with the saved one.
RESUME_KEYS = ("task", "policy", "algo")


def save_model(model: PPO | TRPL, path: Path) -> None:
    """Save a model (and its reward scaler, ``reward_norm.pkl``) so that a crash never leaves a half-written
    checkpoint (SB3's own zip format)."""
    venv = model.get_env()
    if isinstance(venv, VecNormalize):
        runs.save_atomic(path.with_name("reward_norm.pkl"), venv.save)
    runs.save_atomic(path, model.save)


def evaluation_score(entry: dict) -> tuple[float, float]:
    """How an evaluation (a history entry) ranks for ``best.zip``: the success on the training variants of the
    better of its two policies (mean action, sampled actions), then that policy's return there.

    The held-out variants take no part, so that a best checkpoint's results on them stay a test.
    """
    modes = [m for m in ("", "stochastic_") if f"{m}train_success" in entry]  # runs from before sampled ones: ""
    return max((entry[f"{m}train_success"], entry[f"{m}train_return"]) for m in modes)


def keep_if_best(model: PPO | TRPL, out: Path, history: list[dict]) -> None:
    """Save ``model`` as ``out / best.zip`` when the newest evaluation, ``history[-1]``, scores above every earlier
    one (:func:`evaluation_score`; on a tie the earlier checkpoint stays).

    RL can wear a good policy down again (a pretrained one on rope shaping: BENCHMARKS.md), and the last
    checkpoint is then not the one to keep. The choice rests on evaluations of ``eval_episodes`` episodes, so
    it favours a lucky one: test the best checkpoint on fresh episodes (``geomanip evaluate --checkpoint
    OUT/best.zip``, seeded apart from the evaluations) before reporting it.
    """
    if all(evaluation_score(history[-1]) > evaluation_score(h) for h in history[:-1]):
        runs.save_atomic(out / BEST, model.save)


class EvaluateAndCheckpoint(BaseCallback):
    """Every ``cfg.eval_every`` steps: evaluate on training and unseen shapes (deterministic and stochastic
    policy, :func:`evaluate_modes`), log, checkpoint.

    An evaluation falls at the first rollout boundary at or after each multiple of ``cfg.eval_every``, after
    that rollout's update: the evaluated policy and the checkpoint then hold every step collected so far, and a
    run resumed from the checkpoint continues on the same rollout grid (a checkpoint written mid-rollout
    dropped the steps collected since the rollout began and shifted every later rollout).

    Each history entry records ``train_seconds``, the wall-clock since the run began, summed over resumed
    segments (a resumed run continues from its last entry's), so a run's minutes per step do not depend on
    how often it was interrupted. The evaluation at the budget itself is left to :func:`run`, which evaluates
    once the last rollout has finished (otherwise a run would end with two evaluations a rollout apart).

    Each entry also records ``mean_action_outside_bounds`` (:func:`mean_action_outside_bounds` over the last
    rollout's observations): near 1, the policy has stopped exploring.
    """

    def __init__(self, cfg: RLConfig, out: Path, history: list[dict]) -> None:
        super().__init__()
        self.cfg, self.out, self.history = cfg, out, history
        self.next_eval = (history[-1]["steps"] if history else 0) + cfg.eval_every
        self.seconds_before = history[-1].get("train_seconds", 0.0) if history else 0.0
        self.started = time.perf_counter()
        self.rollout_observations: dict[str, np.ndarray] | np.ndarray | None = None

    def train_seconds(self) -> float:
        """Training wall-clock so far, earlier segments of a resumed run included."""
        return self.seconds_before + time.perf_counter() - self.started

    def evaluate(self) -> None:
        metrics = evaluate_modes(self.model, self.cfg, seed=EVAL_SEED)
        if self.rollout_observations is not None:
            outside = mean_action_outside_bounds(self.model.policy, self.rollout_observations)
            metrics["mean_action_outside_bounds"] = outside
        for k, v in metrics.items():
            self.logger.record(f"eval/{k}", v)
        self.logger.dump(self.num_timesteps)
        self.history.append({"steps": self.num_timesteps, **metrics, "train_seconds": self.train_seconds()})
        save_model(self.model, self.out / CHECKPOINT)
        keep_if_best(self.model, self.out, self.history)
        runs.write_json(self.out / "history.json", self.history)
        if not self.cfg.progress:  # a log's only sign of life between the start and the summary
            print(evaluation_line(self.history[-1], self.cfg.total_steps), flush=True)

    def _on_rollout_start(self) -> None:
        self.num_timesteps = self.model.num_timesteps  # SB3 updates it in on_step only
        if self.next_eval <= self.num_timesteps < self.cfg.total_steps:
            self.evaluate()
            while self.next_eval <= self.num_timesteps:
                self.next_eval += self.cfg.eval_every

    def _on_rollout_end(self) -> None:
        # The last rollout's observations, [steps x envs, ...], kept for the next evaluation, which runs after the
        # update (the buffer is cleared before the next rollout begins).
        obs = self.model.rollout_buffer.observations
        if isinstance(obs, dict):
            self.rollout_observations = {k: v.reshape(-1, *v.shape[2:]) for k, v in obs.items()}
        else:
            self.rollout_observations = obs.reshape(-1, *obs.shape[2:])

    def _on_step(self) -> bool:
        return True


def mean_action_outside_bounds(
    policy: BasePolicy, observations: dict[str, np.ndarray] | np.ndarray, chunk: int = 256
) -> float:
    """Share of ``policy``'s mean-action components outside its action space's bounds over a batch of observations
    (each ``[N, ...]``), evaluated ``chunk`` observations at a time.

    The environments clip each sampled action to the bounds, so a mean far outside them turns every sample into the
    same clipped action: the policy stops exploring and PPO stops receiving a signal that could bring the mean back.
    A share near 1 over the policy's own rollout marks such a run; runs that learn sit well below it, though often
    far above 0, since full speed is often the right action (BENCHMARKS.md, "Tenth session").
    """
    n = len(next(iter(observations.values()))) if isinstance(observations, dict) else len(observations)
    low = torch.as_tensor(policy.action_space.low, device=policy.device)
    high = torch.as_tensor(policy.action_space.high, device=policy.device)
    outside = []
    for start in range(0, n, chunk):  # in chunks: a rope rollout is 1,600 graphs of 80 links
        part = slice(start, start + chunk)
        batch = {k: v[part] for k, v in observations.items()} if isinstance(observations, dict) else observations[part]
        with torch.no_grad():
            mean = policy.get_distribution(policy.obs_to_tensor(batch)[0]).distribution.mean
        outside.append(((mean < low) | (mean > high)).flatten().cpu())
    return float(torch.cat(outside).float().mean())


def evaluation_line(entry: dict, total_steps: int) -> str:
    """One line for a history entry: steps, minutes, success and return per variant set (the mean action, and
    the sampled actions' success in brackets)."""
    line = f"{entry['steps']:,} / {total_steps:,} steps, {entry['train_seconds'] / 60:.1f} min:"
    for name in ("train", "unseen"):
        if f"{name}_success" in entry:
            sampled = entry.get(f"stochastic_{name}_success")
            sampled = "" if sampled is None else f" (sampled {sampled:.0%})"
            line += f" {name} success {entry[f'{name}_success']:.0%}{sampled}, return {entry[f'{name}_return']:.1f};"
    if "mean_action_outside_bounds" in entry:
        line += f" mean action outside bounds {entry['mean_action_outside_bounds']:.0%};"
    return line.rstrip(";")


def label_steps_axis(ax) -> None:
    """Label a Matplotlib axis of environment steps in thousands: plain labels of 1M-step runs (1000000,
    1200000, ...) run into each other."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k"))


def plot_learning_curve(history: list[dict], random_metrics: dict[str, float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["steps"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("return", "success"), strict=True):
        for shapes, style in (("train", "-"), ("unseen", "--")):
            if f"{shapes}_{metric}" not in random_metrics:
                continue
            ax.plot(steps, [h[f"{shapes}_{metric}"] for h in history], style, marker=".", label=f"{shapes} variants")
            if all(f"stochastic_{shapes}_{metric}" in h for h in history):
                sampled = [h[f"stochastic_{shapes}_{metric}"] for h in history]
                ax.plot(steps, sampled, style, marker="x", label=f"{shapes}, sampled actions")
            ax.axhline(random_metrics[f"{shapes}_{metric}"], color="0.6", ls=style, lw=1)
        label_steps_axis(ax)
        ax.set_ylabel(f"mean {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(title="policy: mean action unless sampled (grey: random)", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(cfg: RLConfig) -> dict:
    """Train with PPO or TRPL, evaluating and checkpointing periodically; returns the summary."""
    cfg.validate()
    device = runs.resolve_device(cfg.device)
    out = runs.prepare_output(cfg.out, cfg.resume, cfg.overwrite, (CHECKPOINT,), OUTPUTS)
    if cfg.resume:
        runs.check_resume(out / CHECKPOINT, runs.saved_config(out) or {}, asdict(cfg), RESUME_KEYS)
        if cfg.demo_coef > 0 and not (out / DEMONSTRATIONS).is_file():
            raise ValueError(
                f"demo_coef {cfg.demo_coef}: {out} keeps no demonstrations ({DEMONSTRATIONS}); only a run pretrained "
                "with demo_coef keeps them"
            )
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    model, history = build_or_resume_model(cfg, out, device)
    runs.write_json(out / "run.json", asdict(cfg))
    demonstrations = None
    if cfg.demo_episodes > 0 and not cfg.resume:
        history, demonstrations = pretrain_on_demonstrations(model, cfg, out)
    if cfg.demo_coef > 0:  # a hook, not saved with the checkpoint: installed again on every resume
        if demonstrations is None:
            demonstrations = Demonstrations.load(out / DEMONSTRATIONS)
        # Seeded by the step too, so that a resumed run draws new minibatches rather than the first ones again.
        add_imitation_term(model, demonstrations, cfg.demo_coef, cfg.batch_size, [cfg.seed, model.num_timesteps])
    random_metrics = evaluate_random_policy(cfg, model.action_space.shape[0])

    callback = EvaluateAndCheckpoint(cfg, out, history)
    remaining = cfg.total_steps - model.num_timesteps
    if remaining > 0:
        model.learn(
            remaining,
            callback=callback,
            progress_bar=cfg.progress,
            reset_num_timesteps=not cfg.resume,
            tb_log_name=cfg.algo,
        )
    if not history or history[-1]["steps"] != model.num_timesteps:
        callback.init_callback(model)
        callback.evaluate()
    model.get_env().close()
    seconds = history[-1].get("train_seconds", callback.train_seconds())
    return write_summary(cfg, out, model.num_timesteps, seconds, history, random_metrics)


def build_or_resume_model(cfg: RLConfig, out: Path, device: torch.device) -> tuple[PPO | TRPL, list[dict]]:
    """The algorithm on its training environments (rewards scaled when ``cfg.normalize_reward``): new, or with
    ``cfg.resume`` loaded from ``out`` with its reward scaler and evaluation history."""
    venv = make_training_envs(cfg)
    first_env = venv.envs[0] if hasattr(venv, "envs") else None
    scaler = out / "reward_norm.pkl"
    if cfg.normalize_reward and cfg.resume and scaler.is_file():
        venv = VecNormalize.load(str(scaler), venv)
    elif cfg.normalize_reward:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=cfg.gamma)
    # The training options, for a new model and a resumed one alike: a resumed run's are cfg's (the saved run's
    # unless given again), not its checkpoint's. SB3's load sets them before it builds the rollout buffer and the
    # learning-rate schedule, so an option given with --resume is used, as run.json records, never silently dropped.
    options = dict(
        learning_rate=cfg.lr if cfg.lr_schedule == "constant" else LinearSchedule(cfg.lr, 0.0, 1.0),
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        gamma=cfg.gamma,
        gae_lambda=0.95,
        ent_coef=cfg.ent_coef,
    )
    if cfg.algo == "trpl":
        options |= dict(
            projection=cfg.projection,
            mean_bound=cfg.mean_bound,
            cov_bound=cfg.cov_bound,
            trust_region_coef=cfg.trust_region_coef,
        )
    if cfg.resume:
        # The checkpoint stores the absolute log folder it was trained with: a run copied or moved to ``out`` would
        # append its TensorBoard log to the original folder's, so the log goes where the run now is.
        model = ALGORITHMS[cfg.algo].load(
            out / CHECKPOINT, env=venv, device=device, tensorboard_log=str(out / "tb"), **options
        )
        if isinstance(venv, VecNormalize):
            venv.gamma = cfg.gamma
        history = json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else []
    else:
        policy, policy_kwargs = policy_spec(cfg, first_env or gym.make(cfg.task))
        model = ALGORITHMS[cfg.algo](
            policy,
            venv,
            policy_kwargs=policy_kwargs,
            tensorboard_log=str(out / "tb"),
            seed=cfg.seed,
            device=device,
            **options,
        )
        history = []
    if cfg.mean_bounds_coef > 0:  # a hook, not saved with the checkpoint: installed again on every resume
        penalize_mean_beyond_bounds(model.policy, cfg.mean_bounds_coef)
    return model, history


def pretrain_on_demonstrations(model: PPO | TRPL, cfg: RLConfig, out: Path) -> tuple[list[dict], Demonstrations]:
    """Pretrain a new model on the scripted controller (:func:`geomanip.policies.demonstrations.pretrain`), write
    its rounds to ``demonstrations.json``, evaluate it and checkpoint it (also as ``pretrained.zip``, which
    ``geomanip evaluate --checkpoint`` reads like ``last.zip``); returns the run's history, whose first
    entry (step 0) is that evaluation, its ``train_seconds`` the pretraining's, and the demonstrations (also
    written to ``demonstrations.npz`` when ``cfg.demo_coef`` keeps imitating them).

    A run interrupted during pretraining has no checkpoint yet: the same command starts it again from the
    beginning (the folder holds no run to refuse, :func:`geomanip.runs.prepare_output`).
    """
    started = time.perf_counter()
    # Its own TensorBoard log beside RL's (SB3 sets up the run's logger only inside learn()): each round at its
    # number, then the step-0 evaluation.
    tensorboard = configure_logger(str(out / "tb" / "pretraining"), ["tensorboard"])

    def log(record: dict) -> None:
        for key in ("success", "return", "samples", "action_error", "value_error"):
            tensorboard.record(f"pretraining/{key}", record[key])
        tensorboard.dump(record["round"])
        print(
            f"pretraining round {record['round']}/{cfg.demo_rounds} ({record['acting']} acting): success "
            f"{record['success']:.0%}, return {record['return']:.1f}; fitted on {record['samples']} samples, "
            f"action error {record['action_error']:.4f}, value error {record['value_error']:.4f}",
            flush=True,
        )

    rounds, demonstrations = pretrain(
        model,
        cfg.task,
        variant_kwargs(cfg)["train"],
        cfg.demo_episodes,
        cfg.demo_rounds,
        cfg.demo_epochs,
        cfg.batch_size,
        cfg.lr,
        cfg.seed,
        log,
    )
    runs.write_json(out / "demonstrations.json", rounds)
    if cfg.demo_coef > 0:
        demonstrations.save(out / DEMONSTRATIONS)
    metrics = evaluate_modes(model, cfg, seed=EVAL_SEED)
    for k, v in metrics.items():
        tensorboard.record(f"eval/{k}", v)
    tensorboard.dump(0)
    tensorboard.close()
    # demo_steps: the environment steps that pretraining took (every round's episodes), apart from RL's.
    history = [
        {"steps": 0, **metrics, "demo_steps": rounds[-1]["samples"], "train_seconds": time.perf_counter() - started}
    ]
    save_model(model, out / CHECKPOINT)
    runs.save_atomic(out / PRETRAINED, model.save)  # kept: RL may move the policy away from it (BENCHMARKS.md)
    keep_if_best(model, out, history)
    runs.write_json(out / "history.json", history)
    print(evaluation_line(history[-1], cfg.total_steps), flush=True)
    return history, demonstrations


def evaluate_random_policy(cfg: RLConfig, action_dim: int) -> dict[str, float]:
    """The uniformly random policy's metrics on the evaluation episodes (the baseline of every curve)."""
    rng = np.random.default_rng(cfg.seed)
    return evaluate_both(lambda obs: rng.uniform(-1, 1, (len(next(iter(obs.values()))), action_dim)), cfg, EVAL_SEED)


def write_summary(
    cfg: RLConfig, out: Path, steps: int, seconds: float, history: list[dict], random_metrics: dict[str, float]
) -> dict:
    """Write ``summary.json`` and ``learning_curve.png``; returns the summary.

    ``best`` is the evaluation that ``best.zip`` holds (:func:`keep_if_best`), where the run has one: runs begun
    before best checkpoints were kept have none until an evaluation beats all of their earlier ones.
    """
    summary = {
        "config": asdict(cfg),
        "steps": steps,
        "train_seconds": seconds,
        "final": history[-1],
        "random": random_metrics,
        "history": history,
    }
    if (out / BEST).is_file():
        summary["best"] = max(history, key=evaluation_score)  # the first of equal scores, as keep_if_best keeps
    runs.write_json(out / "summary.json", summary)
    plot_learning_curve(history, random_metrics, out / "learning_curve.png", f"{cfg.policy} on {cfg.task}")
    return summary


def evaluate_checkpoint(
    checkpoint: str, episodes: int = 20, task: str | None = None, video: str | None = None, seed: int = TEST_SEED
) -> dict[str, float]:
    """Load ``checkpoint`` (a ``last.zip`` with its ``run.json``), roll out, report return and success on
    training and unseen shapes, of the deterministic and of the stochastic policy (:func:`evaluate_modes`);
    optionally write a GIF of one deterministic episode to ``video``."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    meta = path.with_name("run.json")
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} (the run's configuration) is missing next to the checkpoint")
    known = {f.name for f in fields(RLConfig)}
    cfg = RLConfig(**{k: v for k, v in json.loads(meta.read_text()).items() if k in known})
    if task is not None and task != cfg.task:
        raise ValueError(f"checkpoint {path} was trained on {cfg.task}, not {task}")
    model = ALGORITHMS[cfg.algo].load(path, device="cpu")
    return evaluate_and_film(model, cfg, episodes, video, seed)


def evaluate_and_film(
    model: BaseAlgorithm | BasePolicy, cfg: RLConfig, episodes: int, video: str | None, seed: int
) -> dict[str, float]:
    """Metrics of ``model`` (an SB3 algorithm or policy) on ``episodes`` episodes per variant set of ``cfg.task``,
    mean action and sampled actions (:func:`evaluate_modes`), and a GIF of one mean-action episode to ``video``
    when given; what ``geomanip evaluate`` runs for a checkpoint or a shipped policy."""
    cfg.eval_episodes = episodes
    metrics = evaluate_modes(model, cfg, seed)
    if video:
        kwargs = variant_kwargs(cfg)["train"]
        write_video(lambda obs: model.predict(obs, deterministic=True)[0], cfg.task, Path(video), seed, kwargs)
    return metrics


def write_video(predict, task: str, path: Path, seed: int, env_kwargs: dict, fps: int = 25) -> None:
    """A GIF of one episode of ``task`` made with ``env_kwargs`` (a run's: :func:`variant_kwargs`)."""
    from PIL import Image

    env = gym.make(task, render_mode="rgb_array", width=320, height=320, **env_kwargs)
    obs, _ = env.reset(seed=seed)
    frames, done = [env.render()], False
    while not done:
        obs, _, terminated, truncated, _ = env.step(predict(obs))
        frames.append(env.render())
        done = terminated or truncated
    env.close()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
