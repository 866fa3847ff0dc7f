"""Policies shipped with the package (``geomanip evaluate --pretrained TASK``): load one and act with it.

A shipped policy is the actor-critic network of a finished ``geomanip train`` run, stored as a weight of
:mod:`geomanip.weights` (``<policy>-<task>``: the state dict and the run's options, no pickled objects). It
is rebuilt here from those options exactly as training built it (:func:`~geomanip.policies.make_policy`),
so it needs no SB3 zip file.
"""

from __future__ import annotations

from dataclasses import fields

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticPolicy, MultiInputActorCriticPolicy

from geomanip import envs, weights
from geomanip.policies.training import (
    TEST_SEED,
    RLConfig,
    evaluate_and_film,
    evaluate_policy,
    policy_spec,
    variant_sets,
)

__all__ = ["CHECK_EPISODES", "CHECK_SEED", "check_metrics", "evaluate_pretrained", "load_policy", "weight_name"]

# The fixed episodes on which a shipped policy's card records metrics (training variants; seeds of their own,
# apart from training's and evaluation's; a test recomputes them from the shipped file).
CHECK_EPISODES, CHECK_SEED = 10, 30_000


def weight_name(task: str, policy: str = "hepi") -> str:
    """The weight name of ``policy`` on ``task`` (``hepi-RigidSliding-v0``)."""
    return f"{policy}-{envs.bare_id(task)}"


def load_policy(task: str, policy: str = "hepi") -> tuple[ActorCriticPolicy, RLConfig]:
    """The shipped ``policy`` for ``task`` (in eval mode, on the CPU) and the options of the run that trained it.

    Raises ``FileNotFoundError`` naming the shipped weights when there is none for ``task``.
    """
    checkpoint = weights.load(weight_name(task, policy))
    known = {f.name for f in fields(RLConfig)}
    cfg = RLConfig(**{k: v for k, v in checkpoint["config"].items() if k in known})
    env = gym.make(cfg.task)
    policy_class, policy_kwargs = policy_spec(cfg, env)
    if policy_class == "MultiInputPolicy":
        policy_class = MultiInputActorCriticPolicy
    network = policy_class(env.observation_space, env.action_space, lambda _: 0.0, **policy_kwargs)
    env.close()
    network.load_state_dict(checkpoint["model"])
    return network.eval(), cfg


def _predictor(network: ActorCriticPolicy):
    return lambda obs: network.predict(obs, deterministic=True)[0]


def check_metrics(network: ActorCriticPolicy, task: str) -> dict[str, float]:
    """Return and success of the deterministic policy on :data:`CHECK_EPISODES` seeded training-variant episodes."""
    with torch.no_grad():
        train_kwargs = variant_sets(envs.bare_id(task))["train"]
        return evaluate_policy(_predictor(network), envs.bare_id(task), train_kwargs, CHECK_EPISODES, CHECK_SEED)


def evaluate_pretrained(
    task: str, episodes: int = 20, video: str | None = None, seed: int = TEST_SEED
) -> dict[str, float]:
    """Roll out the shipped policy of ``task``: return and success on training and unseen variants, mean action
    and sampled actions, as :func:`~geomanip.policies.training.evaluate_checkpoint` does for a run; optionally a
    GIF of one episode."""
    network, cfg = load_policy(task)
    with torch.no_grad():
        return evaluate_and_film(network, cfg, episodes, video, seed)
