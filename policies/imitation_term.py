"""An imitation term kept in the loss during RL, on the demonstrations of pretraining (DAPG's augmented loss).

Why: a policy pretrained on the scripted controller (:mod:`geomanip.policies.demonstrations`) loses most of what
it learned within 1M steps of RL on rope shaping, and neither the reward's weight on the final steps nor the step
size explains the loss (BENCHMARKS.md). DAPG (Rajeswaran et al. 2018) keeps the demonstrations in the policy's
loss throughout RL, so that the policy gradient improves on the demonstrated behaviour instead of drifting away
from it.

Every gradient step of the algorithm (each PPO or TRPL minibatch) also descends

.. math::
    L_{\\mathrm{imitation}} = c \\cdot \\frac{1}{B A} \\sum_{i=1}^{B} \\lVert \\mu(s_i) - a_i \\rVert^2

over ``B`` (the run's minibatch size) demonstrations drawn at random without replacement, where ``mu`` is the
policy's action mean and ``a_i`` the scripted controller's label: the squared error pretraining fits
(:func:`~geomanip.policies.demonstrations.fit`). A step pre-hook on the policy's optimizer adds its gradient to
the one the algorithm's loss left in the parameters, so the algorithm's loss code stays SB3's own and PPO and TRPL
get the same term. The algorithm clips its own gradient's norm (``max_grad_norm``) before the step; the term's
gradient is added after that clip.

Where it differs from DAPG: DAPG weights the demonstrations' log-likelihood by ``lambda_0 lambda_1^k`` times the
largest advantage, fading it over iterations ``k``; here the weight ``c`` stays constant (the aim is to keep the
skill), and the term fits the mean only, so the standard deviation is RL's alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from torch.nn import functional as F
from torch.utils.hooks import RemovableHandle

from geomanip.policies.demonstrations import Demonstrations

__all__ = ["add_imitation_term", "imitation_loss"]


def imitation_loss(policy: ActorCriticPolicy, data: Demonstrations, idx: np.ndarray) -> torch.Tensor:
    """The mean squared error of ``policy``'s action mean to ``data``'s labels at the samples ``idx``."""
    obs, _ = policy.obs_to_tensor({k: v[idx] for k, v in data.observations.items()})
    mean = policy.get_distribution(obs).distribution.mean
    return F.mse_loss(mean, torch.as_tensor(data.actions[idx], device=mean.device))


def add_imitation_term(
    model: OnPolicyAlgorithm, data: Demonstrations, coef: float, batch_size: int, seed: int | Sequence[int]
) -> RemovableHandle:
    """Add ``coef`` times :func:`imitation_loss` on a fresh random minibatch of ``data`` to every optimizer step of
    ``model``'s policy (module docstring), and log the error as ``train/imitation_error`` (mean over an update).

    Installed as a step pre-hook on ``model.policy.optimizer``, so it is not saved with the model: a resumed run
    installs it again from its configuration. ``seed`` seeds the minibatch draws (NumPy's ``default_rng``). Returns
    the handle (``handle.remove()`` takes it off).
    """
    if coef <= 0:
        raise ValueError(f"the imitation term's coefficient must be positive, got {coef}")
    if len(data) == 0:
        raise ValueError("the imitation term needs demonstrations, got none")
    rng = np.random.default_rng(seed)
    size = min(batch_size, len(data))

    def add_imitation_gradient(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        loss = imitation_loss(model.policy, data, rng.choice(len(data), size, replace=False))
        (coef * loss).backward()
        model.logger.record_mean("train/imitation_error", loss.item())

    return model.policy.optimizer.register_step_pre_hook(add_imitation_gradient)
