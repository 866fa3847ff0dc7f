"""A soft wall on the Gaussian policy's mean just outside the action bounds (rl_games' "bounds loss").

Why: the environments clip each sampled action to the bounds, ``[-1, 1]``, and nothing in PPO's or TRPL's loss
holds the mean inside them. Where full speed pays (pushing, for one), the mean drifts past the bound, and once it is
several standard deviations out every sample clips to the same action: the policy stops exploring, and the
advantages it then sees carry no signal that could bring the mean back. Seen on pushing with HEPi (one seed of five)
and with the MLP (every seed), each with nearly all of its mean's components outside the bounds (BENCHMARKS.md).

The penalty, per observation, is

.. math::
    b(\\mu) = \\sum_i \\max(0, \\mu_i - c)^2 + \\max(0, -c - \\mu_i)^2, \\qquad c = 1.1,

zero inside a margin just past the bounds, so a mean that stays within them (every learned policy's, where it
matters) trains exactly as without it. It enters each update as ``coef`` times its batch mean, through its gradient
only: a hook on the action head adds ``coef * grad b / N`` to the gradient reaching the mean, so the algorithm's
loss code stays SB3's own, and PPO and TRPL get the same term. The hook adds nothing where no gradient flows
(rollouts, evaluation, ``predict``).

Training uses it only when asked (``--mean-bounds-coef``): a mean beyond the bounds is not always a runaway. A
sampled policy can hold one component far past a bound so that nearly every sample acts at full speed there
whatever its noise (HEPi presses pegs down this way on insertion), and the wall takes that away (BENCHMARKS.md,
"Eleventh session").
"""

from __future__ import annotations

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["SOFT_BOUND", "bounds_penalty", "penalize_mean_beyond_bounds"]

SOFT_BOUND = 1.1
"""Where the wall starts: just past the action bounds, so full speed (``|mean| = 1``) is not penalized."""


def bounds_penalty(mean: Tensor, soft_bound: float = SOFT_BOUND) -> Tensor:
    """The penalty ``b`` of each row of ``mean`` (Shapes: ``[N, A] -> [N]``)."""
    return ((mean - soft_bound).clamp_min(0) ** 2 + (mean + soft_bound).clamp_max(0) ** 2).sum(-1)


def penalize_mean_beyond_bounds(policy: ActorCriticPolicy, coef: float) -> RemovableHandle:
    """Add ``coef`` times the batch mean of :func:`bounds_penalty` to every update of ``policy``'s action mean.

    Installed as a forward hook on ``policy.action_net`` (the layer that outputs the mean, for every policy here),
    so it holds for as long as the policy object lives and is not saved with it: a resumed run installs it again
    from its configuration. Returns the handle (``handle.remove()`` takes it off).
    """
    if coef <= 0:
        raise ValueError(f"the bounds penalty's coefficient must be positive, got {coef}")

    def add_penalty_gradient(module: nn.Module, inputs: tuple[Tensor, ...], mean: Tensor) -> None:
        if mean.requires_grad:
            # The gradient of coef * mean_N(b) with respect to the mean, by autograd from bounds_penalty itself.
            leaf = mean.detach().requires_grad_()
            (extra,) = torch.autograd.grad(coef * bounds_penalty(leaf).mean(), leaf)
            mean.register_hook(lambda grad: grad + extra)

    return policy.action_net.register_forward_hook(add_penalty_gradient)
