"""Pretraining a policy on the task's scripted controller: behaviour cloning, then DAgger rounds.

Why: on some tasks PPO from a random policy never finds the behaviour that scores (rope shaping: no run has beaten
holding still, BENCHMARKS.md), while every task ships a scripted controller that succeeds on part of its episodes.
Starting RL from a policy that imitates it is the usual remedy (as in DAPG and the demonstration-augmented
methods of robot learning). A run pretrained this way is a different category of result from RL alone, and the
tables say so.

The rounds (:func:`pretrain`):

1. **Behaviour cloning**: the scripted controller acts in ``episodes`` episodes; each visited observation is
   labelled with its action.
2. **DAgger** (Ross et al. 2011), each further round: the policy being trained acts (its mean action), the
   scripted controller only labels each observation the policy visits, so the policy learns to recover from its
   own mistakes, which plain cloning never shows it. The controller keeps its own phase along the policy's
   trajectory (it reads the scene, not a clock).

After each round the policy is fitted on everything collected so far: its action mean by squared error to the
labels, and its value, so that RL's first advantages are not a random critic's, by squared error to the
discounted return that followed each observation in its round. The returns are scaled as training scales
rewards: the run's reward scaler (``VecNormalize``) first sees the rounds' rewards, as it would during
training. The policy's standard deviation is left as configured (``--log-std-init``).

The episodes are seeded from ``DEMO_SEED`` on, apart from training's, evaluation's and tests' seeds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecNormalize
from torch.nn import functional as F

from geomanip.envs.scripted import scripted_controller
from geomanip.runs import save_atomic

__all__ = ["DEMO_SEED", "Demonstrations", "collect", "fit", "pretrain"]

DEMO_SEED = 50_000
"""First episode seed of the pretraining rounds (run seed ``s`` uses ``DEMO_SEED + 1000 s`` onwards)."""
MAX_EPISODES = 1_000
"""Most episodes a run's rounds may use together, so that two run seeds never share an episode."""

Observation = dict[str, np.ndarray]
OBSERVATION_PREFIX = "observations."  # of the observation arrays' names in a saved file


@dataclass
class Demonstrations:
    """Observations, the scripted controller's action at each, and the episodes they came from.

    Shapes (``N`` samples): ``observations`` ``{key: [N, ...]}``, ``actions`` ``[N, A]``, ``rewards`` and ``episode``
    ``[N]`` (the reward that followed each observation, and its episode's index), ``returns`` and ``successes``
    ``[episodes]``.
    """

    observations: Observation
    actions: np.ndarray
    rewards: np.ndarray
    episode: np.ndarray
    returns: np.ndarray
    successes: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)

    def value_targets(self, gamma: float) -> np.ndarray:
        """The discounted return from each observation to its episode's end."""
        rewards = self.rewards
        targets = np.zeros_like(rewards)
        for e in np.unique(self.episode):
            idx = np.flatnonzero(self.episode == e)  # in time order: samples are appended step by step
            running = 0.0
            for i in idx[::-1]:
                running = rewards[i] + gamma * running
                targets[i] = running
        return targets

    def save(self, path: str | os.PathLike) -> None:
        """Write every array to ``path`` (a compressed ``.npz``), atomically."""
        arrays = {f"{OBSERVATION_PREFIX}{k}": v for k, v in self.observations.items()}
        arrays |= {f.name: getattr(self, f.name) for f in fields(self) if f.name != "observations"}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as file:  # a file object: np.savez would otherwise add its own suffix
                np.savez_compressed(file, **arrays)

        save_atomic(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Demonstrations:
        """The demonstrations :meth:`save` wrote to ``path``."""
        with np.load(path) as saved:
            prefix = OBSERVATION_PREFIX
            observations = {k.removeprefix(prefix): saved[k] for k in saved.files if k.startswith(prefix)}
            return cls(observations, **{k: saved[k] for k in saved.files if not k.startswith(prefix)})

    @staticmethod
    def concatenate(parts: list[Demonstrations]) -> Demonstrations:
        offsets = np.cumsum([0] + [len(p.returns) for p in parts[:-1]])
        return Demonstrations(
            observations={k: np.concatenate([p.observations[k] for p in parts]) for k in parts[0].observations},
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            episode=np.concatenate([p.episode + o for p, o in zip(parts, offsets, strict=True)]),
            returns=np.concatenate([p.returns for p in parts]),
            successes=np.concatenate([p.successes for p in parts]),
        )


def collect(
    task: str,
    env_kwargs: dict,
    seeds: list[int],
    predict: Callable[[Observation], np.ndarray] | None = None,
) -> Demonstrations:
    """One episode per seed, labelled by the scripted controller; it also acts unless ``predict`` (a batch of
    observations to a batch of actions) is given, which then acts instead (DAgger).

    The episodes run side by side, so ``predict`` sees one batch per step. Each runs until its own end.
    """
    controllers = [scripted_controller(task) for _ in seeds]
    episodes = [gym.make(task, **env_kwargs) for _ in seeds]
    obs = [env.reset(seed=seed)[0] for env, seed in zip(episodes, seeds, strict=True)]
    observations: list[Observation] = []
    actions, rewards, episode = [], [], []
    returns, successes = np.zeros(len(seeds)), np.zeros(len(seeds))
    running = list(range(len(seeds)))
    while running:
        batch = {k: np.stack([obs[i][k] for i in running]) for k in obs[running[0]]}
        labels = np.stack([controllers[i](episodes[i].unwrapped) for i in running])
        acting = labels if predict is None else np.asarray(predict(batch))
        if acting.shape != labels.shape:
            raise ValueError(f"predict returned actions of shape {acting.shape}, expected {labels.shape}")
        observations.append(batch)
        actions.append(labels)
        still = []
        for j, i in enumerate(running):
            obs[i], reward, terminated, truncated, info = episodes[i].step(acting[j])
            rewards.append(reward)
            episode.append(i)
            returns[i] += reward
            if terminated or truncated:
                successes[i] = float(info["is_success"])
            else:
                still.append(i)
        running = still
    for env in episodes:
        env.close()
    return Demonstrations(
        observations={k: np.concatenate([o[k] for o in observations]) for k in observations[0]},
        actions=np.concatenate(actions).astype(np.float32),
        rewards=np.asarray(rewards, dtype=np.float64),
        episode=np.asarray(episode),
        returns=returns,
        successes=successes,
    )


def fit(
    policy: ActorCriticPolicy,
    data: Demonstrations,
    value_targets: np.ndarray,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> tuple[float, float]:
    """Fit ``policy``'s action mean to ``data.actions`` and its value to ``value_targets`` (squared errors, the
    value's weighted 0.5 as in PPO's loss) by Adam over shuffled minibatches.

    Returns the last epoch's mean action and value errors.
    """
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    targets = torch.as_tensor(data.actions, device=policy.device)
    values = torch.as_tensor(value_targets, dtype=torch.float32, device=policy.device)
    policy.set_training_mode(True)
    action_loss = value_loss = float("nan")
    for _ in range(epochs):
        order = rng.permutation(len(data))
        sums = np.zeros(2)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            obs, _ = policy.obs_to_tensor({k: v[idx] for k, v in data.observations.items()})
            mean = policy.get_distribution(obs).distribution.mean
            a_loss = F.mse_loss(mean, targets[idx])
            v_loss = F.mse_loss(policy.predict_values(obs).flatten(), values[idx])
            optimizer.zero_grad()
            (a_loss + 0.5 * v_loss).backward()
            optimizer.step()
            sums += np.array([a_loss.item(), v_loss.item()]) * len(idx)
        action_loss, value_loss = sums / len(order)
    policy.set_training_mode(False)
    return float(action_loss), float(value_loss)


def _scaled_rewards(venv: VecNormalize | None, data: Demonstrations, gamma: float) -> np.ndarray:
    """``data``'s rewards as the run's reward scaler will scale them, after showing it their episodes' returns
    step by step as training would (raw rewards without a scaler)."""
    if venv is None:
        return data.rewards
    for e in np.unique(data.episode):
        running = 0.0
        for r in data.rewards[data.episode == e]:
            running = running * gamma + r
            venv.ret_rms.update(np.array([running]))
    return venv.normalize_reward(data.rewards)


def pretrain(
    model: OnPolicyAlgorithm,
    task: str,
    env_kwargs: dict,
    episodes: int,
    rounds: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    log: Callable[[dict], None] = print,
) -> tuple[list[dict], Demonstrations]:
    """Pretrain ``model``'s policy (an SB3 ``PPO`` or ``TRPL``) in ``rounds`` rounds of ``episodes`` episodes each:
    behaviour cloning, then DAgger (module docstring); ``seed`` is the run's.

    Returns one record per round, also passed to ``log`` (samples so far, the acting policy's (round 1: the
    scripted controller's) success rate and mean return on that round's episodes, the fit's final errors, and the
    seconds so far), and every round's demonstrations together, their rewards scaled as the policy's value was
    fitted to them.
    """
    if episodes < 1 or rounds < 1 or epochs < 1:
        raise ValueError(
            f"demonstrations need positive episodes, rounds and epochs, got {episodes}, {rounds}, {epochs}"
        )
    if episodes * rounds > MAX_EPISODES:
        raise ValueError(f"demonstrations use at most {MAX_EPISODES} episodes, got {episodes} x {rounds} rounds")
    policy: ActorCriticPolicy = model.policy
    venv = model.get_env()
    scaler = venv if isinstance(venv, VecNormalize) else None
    started, parts, records = time.perf_counter(), [], []
    for r in range(rounds):
        seeds = [DEMO_SEED + 1000 * seed + r * episodes + i for i in range(episodes)]
        predict = None if r == 0 else (lambda obs: policy.predict(obs, deterministic=True)[0])
        part = collect(task, env_kwargs, seeds, predict)
        part.rewards = _scaled_rewards(scaler, part, model.gamma)
        parts.append(part)
        data = Demonstrations.concatenate(parts)
        targets = data.value_targets(model.gamma)
        action_loss, value_loss = fit(policy, data, targets, epochs, batch_size, lr, seed + r)
        record = {
            "round": r + 1,
            "acting": "scripted" if r == 0 else "policy",
            "samples": len(data),
            "success": float(part.successes.mean()),
            "return": float(part.returns.mean()),
            "action_error": action_loss,
            "value_error": value_loss,
            "seconds": time.perf_counter() - started,
        }
        records.append(record)
        log(record)
    return records, data
