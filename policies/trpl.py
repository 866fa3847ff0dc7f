r"""TRPL: on-policy training through differentiable trust-region projection layers (Otto et al., ICLR 2021).

:class:`TRPL` is a Stable-Baselines3 :class:`~stable_baselines3.common.on_policy_algorithm.OnPolicyAlgorithm`: the
rollouts, GAE, epochs of shuffled minibatches, value loss, entropy bonus and gradient clipping are PPO's. The policy
update differs. At every state :math:`s` of a minibatch the network's Gaussian :math:`\pi_\theta(\cdot|s) =
\mathcal{N}(\mu_\theta(s), \mathrm{diag}(\sigma_\theta^2))` is projected onto the trust region around the old policy
:math:`\pi_{\mathrm{old}}(\cdot|s)` (the rollout's policy; :mod:`~geomanip.policies.trust_region`), giving
:math:`\tilde\pi(\cdot|s)`, and the loss is

.. math::
    L(\theta) = -\hat{\mathbb{E}}\Big[\frac{\tilde\pi(a|s)}{\pi_{\mathrm{old}}(a|s)} \hat A\Big]
    - c_H \hat{\mathbb{E}}\big[H(\tilde\pi(\cdot|s))\big]
    + c_V \hat{\mathbb{E}}\big[(V_\theta(s) - \hat R)^2\big]
    + \alpha\, \hat{\mathbb{E}}\big[m\big(\pi_\theta(\cdot|s), \mathrm{sg}[\tilde\pi(\cdot|s)]\big)\big],

an importance-sampled surrogate of the projected policy without clipping (the projection is the trust region),
plus the trust-region regression loss that pulls the network towards its projection: the mean part :math:`m` of the
projection's measure (for KL, :math:`\tfrac12 \sum_i (\mu_{\theta,i} - \tilde\mu_i)^2 / \tilde\sigma_i^2`) between the
network's Gaussian and the projected one held fixed (sg: stop-gradient), as in the reference implementation.

Standard deviation. SB3's :class:`~stable_baselines3.common.distributions.DiagGaussianDistribution` has a learned,
state-independent ``log_std``, so the covariance projection is the same at every state: it is computed once per
minibatch on the ``(d,)`` standard deviation and broadcast. Its regression term is replaced, as in the reference
implementation for non-contextual standard deviations, by writing the projection back: at the end of every
:meth:`TRPL.train`, ``log_std`` is set to the log of its projection around the standard deviation of the rollout, so
the next rollout samples with a standard deviation inside the bound.

Old policy. The old means are computed once per update with the rollout's parameters (before the first gradient
step, in evaluation mode as during the rollout) over the whole rollout buffer and stored per sample in the buffer
(:class:`TRPLRolloutBuffer`, :class:`TRPLDictRolloutBuffer`); the old standard deviation is the ``(d,)`` value of
``log_std`` at that moment.

Logged scalars (``train/``): ``policy_loss`` (the surrogate), ``trust_region_loss`` (the regression term, before
:math:`\alpha`), ``entropy_loss``, ``value_loss``, ``loss``, ``kl`` (mean
:math:`\mathrm{KL}(\tilde\pi \| \pi_{\mathrm{old}})` of the projected policy over the last epoch), ``kl_network``
(the same for the unprojected network), ``mean_projection_fraction`` and ``cov_projection_fraction`` (share of
states whose mean, and of minibatches whose standard deviation, the projection moved), ``explained_variance``,
``std`` (after the write-back), ``n_updates``.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance
from torch import Tensor
from torch.nn import functional as F

from geomanip.policies.trust_region import MEASURES, PROJECTIONS, STD_PROJECTIONS, kl_parts

__all__ = ["TRPL", "TRPLDictRolloutBuffer", "TRPLRolloutBuffer", "TRPLRolloutBufferSamples"]

SelfTRPL = TypeVar("SelfTRPL", bound="TRPL")


class TRPLRolloutBufferSamples(NamedTuple):
    """A minibatch of the rollout: SB3's ``RolloutBufferSamples`` fields plus the old policy's mean.

    Shapes:
        observations: ``(B, *obs_shape)`` (or a dict of such); actions, old_mean: ``(B, d)``; old_values,
        old_log_prob, advantages, returns: ``(B,)``.
    """

    observations: Tensor | dict[str, Tensor]
    actions: Tensor
    old_values: Tensor
    old_log_prob: Tensor
    advantages: Tensor
    returns: Tensor
    old_mean: Tensor


class _OldMeans:
    """Mixin for SB3's rollout buffers: per-sample old means, in the buffer's flattened sample order."""

    buffer_size: int
    generator_ready: bool
    observations: Any
    old_means: np.ndarray | None

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.old_means = None

    def observations_at(self, flat_indices: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """Observations of samples ``flat_indices`` in the order ``get()`` flattens them (environment-major),
        whether or not the buffer has been flattened yet."""

        def pick(array: np.ndarray) -> np.ndarray:
            if self.generator_ready:
                return array[flat_indices]
            return array[flat_indices % self.buffer_size, flat_indices // self.buffer_size]

        if isinstance(self.observations, dict):
            return {key: pick(value) for key, value in self.observations.items()}
        return pick(self.observations)

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> TRPLRolloutBufferSamples:
        if self.old_means is None:
            raise RuntimeError("the old policy's means were not stored (TRPL.train stores them before sampling)")
        samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
        return TRPLRolloutBufferSamples(*samples, old_mean=self.to_torch(self.old_means[batch_inds]))  # type: ignore[attr-defined]


class TRPLRolloutBuffer(_OldMeans, RolloutBuffer):
    """SB3's ``RolloutBuffer`` whose minibatches also carry the old policy's mean (``old_mean``)."""


class TRPLDictRolloutBuffer(_OldMeans, DictRolloutBuffer):
    """SB3's ``DictRolloutBuffer`` whose minibatches also carry the old policy's mean (``old_mean``)."""


class TRPL(OnPolicyAlgorithm):
    """Trust-region projection layers on top of SB3's on-policy machinery (module docstring).

    Args (besides those of SB3's PPO, with the same meaning and defaults, less ``clip_range`` and ``target_kl``):
        projection: ``"kl"``, ``"w2"`` or ``"frobenius"`` (:data:`~geomanip.policies.trust_region.PROJECTIONS`).
        mean_bound: bound :math:`\\epsilon_\\mu` on the mean part of the measure.
        cov_bound: bound :math:`\\epsilon_\\Sigma` on its covariance part.
        trust_region_coef: weight :math:`\\alpha` of the trust-region regression loss.

    The policy must be an ``ActorCriticPolicy`` with SB3's ``DiagGaussianDistribution`` (Box actions, no gSDE),
    e.g. ``"MlpPolicy"``, ``"MultiInputPolicy"`` or :class:`~geomanip.policies.sb3.GraphActorCriticPolicy`.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }

    rollout_buffer: TRPLRolloutBuffer | TRPLDictRolloutBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        projection: str = "kl",
        mean_bound: float = 0.03,
        cov_bound: float = 1e-3,
        trust_region_coef: float = 1.0,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {projection!r}; available: {', '.join(PROJECTIONS)}")
        if mean_bound <= 0 or cov_bound <= 0:
            raise ValueError(f"trust-region bounds must be positive, got mean {mean_bound} and cov {cov_bound}")
        if rollout_buffer_class is not None and not issubclass(rollout_buffer_class, _OldMeans):
            raise ValueError("TRPL needs a rollout buffer that stores old means (TRPLRolloutBuffer or a subclass)")
        if normalize_advantage and batch_size <= 1:
            raise ValueError("batch_size must be greater than 1 to normalise advantages")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=False,
            sde_sample_freq=-1,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box,),
        )
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.projection = projection
        self.mean_bound = mean_bound
        self.cov_bound = cov_bound
        self.trust_region_coef = trust_region_coef
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None:
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = TRPLDictRolloutBuffer if dict_obs else TRPLRolloutBuffer
        super()._setup_model()
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)
        if not isinstance(self.policy.action_dist, DiagGaussianDistribution) or not isinstance(
            getattr(self.policy, "log_std", None), th.nn.Parameter
        ):
            raise ValueError(
                "TRPL projects diagonal Gaussians: the policy needs SB3's DiagGaussianDistribution with a learned "
                f"state-independent log_std (Box actions, use_sde=False), got {type(self.policy.action_dist).__name__}"
            )

    @th.no_grad()
    def _store_old_means(self) -> None:
        """Old policy's mean at every sample of the rollout buffer (the rollout's parameters, evaluation mode)."""
        buffer = self.rollout_buffer
        total = buffer.buffer_size * buffer.n_envs
        self.policy.set_training_mode(False)
        means = []
        for start in range(0, total, self.batch_size):
            observations = buffer.observations_at(np.arange(start, min(start + self.batch_size, total)))
            if isinstance(observations, dict):
                obs_tensor: Tensor | dict[str, Tensor] = {k: buffer.to_torch(v) for k, v in observations.items()}
            else:
                obs_tensor = buffer.to_torch(observations)
            means.append(self.policy.get_distribution(obs_tensor).distribution.mean.cpu().numpy())
        buffer.old_means = np.concatenate(means).astype(np.float32, copy=False)

    def _values_and_means(self, observations: Tensor | dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Values ``(B,)`` and action means ``(B, d)`` in one pass (as ``ActorCriticPolicy.evaluate_actions``)."""
        policy = self.policy
        features = policy.extract_features(observations)
        if policy.share_features_extractor:
            latent_pi, latent_vf = policy.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = policy.mlp_extractor.forward_actor(pi_features)
            latent_vf = policy.mlp_extractor.forward_critic(vf_features)
        mean = policy._get_action_dist_from_latent(latent_pi).distribution.mean
        return policy.value_net(latent_vf).flatten(), mean

    def train(self) -> None:
        """One update on the collected rollout: ``n_epochs`` passes of minibatches through the projection."""
        policy = self.policy
        self._update_learning_rate(policy.optimizer)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(self._current_progress_remaining)
        self._store_old_means()
        old_std = policy.log_std.detach().exp().clone()
        project, parts = PROJECTIONS[self.projection], MEASURES[self.projection]
        policy.set_training_mode(True)

        logs: dict[str, list[float]] = {
            k: [] for k in ("policy", "trust_region", "entropy", "value", "mean_active", "cov_active")
        }
        for _ in range(self.n_epochs):
            kls, kls_network = [], []
            for data in self.rollout_buffer.get(self.batch_size):
                values, mean = self._values_and_means(data.observations)
                std = policy.log_std.exp()
                proj_mean, proj_std = project(mean, std, data.old_mean, old_std, self.mean_bound, self.cov_bound)
                distribution = th.distributions.Normal(proj_mean, proj_std.expand_as(proj_mean))
                log_prob = distribution.log_prob(data.actions).sum(-1)
                entropy = distribution.entropy().sum(-1)

                advantages = data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = th.exp(log_prob - data.old_log_prob)
                policy_loss = -(advantages * ratio).mean()
                trust_region_loss = parts(mean, proj_std.detach(), proj_mean.detach(), proj_std.detach())[0].mean()

                if clip_range_vf is not None:
                    values = data.old_values + th.clamp(values - data.old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(data.returns, values)
                entropy_loss = -entropy.mean()
                loss = (
                    policy_loss
                    + self.ent_coef * entropy_loss
                    + self.vf_coef * value_loss
                    + self.trust_region_coef * trust_region_loss
                )

                with th.no_grad():
                    mean_part, cov_part = parts(mean, std, data.old_mean, old_std)
                    logs["mean_active"].append((mean_part > self.mean_bound).float().mean().item())
                    logs["cov_active"].append((cov_part > self.cov_bound).float().mean().item())
                    kls.append(sum(kl_parts(proj_mean, proj_std, data.old_mean, old_std)).mean().item())
                    kls_network.append(sum(kl_parts(mean, std, data.old_mean, old_std)).mean().item())
                for key, value in (
                    ("policy", policy_loss),
                    ("trust_region", trust_region_loss),
                    ("entropy", entropy_loss),
                    ("value", value_loss),
                ):
                    logs[key].append(value.item())

                policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(policy.parameters(), self.max_grad_norm)
                policy.optimizer.step()
            self._n_updates += 1

        # The state-independent standard deviation takes the value of its projection (no regression needed).
        with th.no_grad():
            std = STD_PROJECTIONS[self.projection](policy.log_std.exp(), old_std, self.cov_bound)
            policy.log_std.copy_(std.log())

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        self.logger.record("train/policy_loss", np.mean(logs["policy"]))
        self.logger.record("train/trust_region_loss", np.mean(logs["trust_region"]))
        self.logger.record("train/entropy_loss", np.mean(logs["entropy"]))
        self.logger.record("train/value_loss", np.mean(logs["value"]))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/kl", np.mean(kls))
        self.logger.record("train/kl_network", np.mean(kls_network))
        self.logger.record("train/mean_projection_fraction", np.mean(logs["mean_active"]))
        self.logger.record("train/cov_projection_fraction", np.mean(logs["cov_active"]))
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/std", policy.log_std.exp().mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def learn(
        self: SelfTRPL,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "TRPL",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfTRPL:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
