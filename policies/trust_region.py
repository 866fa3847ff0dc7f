r"""Differentiable trust-region projections of diagonal Gaussians (Otto et al., ICLR 2021).

A policy network outputs a Gaussian :math:`\pi = \mathcal{N}(\mu, \mathrm{diag}(\sigma^2))` per state. Its
projection :math:`\tilde\pi` is the distribution closest to :math:`\pi` that lies within a trust region around the
old policy :math:`\pi_{\mathrm{old}} = \mathcal{N}(\mu_o, \mathrm{diag}(\sigma_o^2))` of the same state. Mean and
covariance are bounded separately (the decoupled trust region of the paper): a bound :math:`\epsilon_\mu` on the
mean part :math:`m` of a similarity measure and a bound :math:`\epsilon_\Sigma` on its covariance part :math:`c`,

.. math::
    \tilde\pi = \arg\min_{\pi'} d(\pi', \pi) \quad \text{s.t.} \quad
    m(\pi', \pi_{\mathrm{old}}) \le \epsilon_\mu, \; c(\pi', \pi_{\mathrm{old}}) \le \epsilon_\Sigma .

A policy inside both bounds is returned unchanged; one outside lands on the boundary of the violated bound.
Three measures, each with a closed-form or one-dimensional projection:

- **KL** (:func:`project_kl`): :math:`\mathrm{KL}(\pi' \,\|\, \pi_{\mathrm{old}}) = m + c` with
  :math:`m = \tfrac12 \sum_i (\mu'_i - \mu_{o,i})^2 / \sigma_{o,i}^2` and
  :math:`c = \tfrac12 \sum_i \big(\sigma'^2_i/\sigma^2_{o,i} - 1 - \log(\sigma'^2_i/\sigma^2_{o,i})\big)`.
- **W2** (:func:`project_w2`): the Wasserstein-2 distance scaled by the old precision,
  :math:`m = \sum_i (\mu'_i - \mu_{o,i})^2 / \sigma_{o,i}^2` and :math:`c = \sum_i (\sigma'_i/\sigma_{o,i} - 1)^2`.
- **Frobenius** (:func:`project_frobenius`): :math:`m` as for W2 and
  :math:`c = \lVert \Sigma' - \Sigma_o \rVert_F^2 = \sum_i (\sigma'^2_i - \sigma^2_{o,i})^2`.

**Mean** (all three): :math:`m` is a quadratic form in :math:`\mu' - \mu_o`, so the projection moves the mean on
the segment towards the old one, :math:`\tilde\mu = \mu_o + (\mu - \mu_o)\sqrt{\epsilon_\mu / m}` when
:math:`m > \epsilon_\mu` (the paper's :math:`\tilde\mu = (\mu + \omega\mu_o)/(1 + \omega)` with
:math:`\omega = \sqrt{m/\epsilon_\mu} - 1`), after which :math:`m = \epsilon_\mu` exactly.

**Covariance, W2 and Frobenius**: :math:`c` is a squared norm of :math:`\sigma - \sigma_o` (W2, scaled) or of
:math:`\sigma^2 - \sigma_o^2` (Frobenius), and the same interpolation with :math:`\sqrt{\epsilon_\Sigma / c}` applies
to the standard deviations or to the variances.

**Covariance, KL**: the minimiser of :math:`\mathrm{KL}(\tilde\pi \,\|\, \pi) + \eta\,(\mathrm{KL}(\tilde\pi \,\|\,
\pi_{\mathrm{old}}) - \epsilon_\Sigma)` interpolates the precisions,
:math:`\tilde\Sigma^{-1} = (\Sigma^{-1} + \eta \Sigma_o^{-1}) / (1 + \eta)`. Writing
:math:`\lambda = 1 / (1 + \eta) \in (0, 1]` and :math:`r_i = \sigma_{o,i}^2 / \sigma_i^2`, the projected variances
are :math:`\tilde\sigma_i^2 = \sigma_{o,i}^2 / q_i` with :math:`q_i(\lambda) = 1 + \lambda (r_i - 1)`, and

.. math::
    c(\lambda) = \tfrac12 \sum_i \big(\log q_i - 1 + 1/q_i\big), \qquad
    c'(\lambda) = \tfrac12 \sum_i \lambda (r_i - 1)^2 / q_i^2 \ge 0 ,

increasing from :math:`c(0) = 0` to the unprojected covariance part :math:`c(1)`. The multiplier of each state is
the root of :math:`c(\lambda) = \epsilon_\Sigma` (the stationarity condition of the one-dimensional convex dual),
found without gradients (in float64) by Newton's method on :math:`\sqrt{c(\lambda)} - \sqrt{\epsilon_\Sigma}` (nearly
linear in :math:`\lambda`, since :math:`c \approx \tfrac14 \lambda^2 \lVert r - 1 \rVert^2` near the root for small
bounds), started at :math:`\lambda_0 = 2\sqrt{\epsilon_\Sigma} / \lVert r - 1 \rVert` and safeguarded by bisection
on the bracket :math:`[0, 1]`. Gradients come from implicit differentiation of :math:`c(\lambda(r), r) =
\epsilon_\Sigma`: :math:`\partial\lambda/\partial r = -(\partial c/\partial r) / (\partial c / \partial \lambda)`,
inserted as :math:`\lambda^\ast - (c(\lambda^\ast, r) - \mathrm{sg}[c(\lambda^\ast, r)]) /
\mathrm{sg}[c'(\lambda^\ast)]` (sg: stop-gradient), which has the value :math:`\lambda^\ast` and exactly that
derivative; the projected standard deviation is then differentiated in closed form through :math:`\lambda` and
:math:`r`.

All functions broadcast over leading batch dimensions: means and standard deviations have shape ``(*, d)``, the
bounds are floats or tensors broadcastable to the batch shape ``(*)``. The standard deviation may have fewer batch
dimensions than the mean (a state-independent ``(d,)`` standard deviation with ``(B, d)`` means), since mean and
covariance are projected separately.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "MEASURES",
    "PROJECTIONS",
    "STD_PROJECTIONS",
    "frobenius_parts",
    "kl_parts",
    "project_frobenius",
    "project_kl",
    "project_mean",
    "project_std_frobenius",
    "project_std_kl",
    "project_std_w2",
    "project_w2",
    "w2_parts",
]


def _mahalanobis(mean: Tensor, other_mean: Tensor, other_std: Tensor) -> Tensor:
    r""":math:`\sum_i (\mu_i - \mu'_i)^2 / \sigma'^2_i` over the last dimension."""
    return ((mean - other_mean) / other_std).pow(2).sum(-1)


def kl_parts(mean: Tensor, std: Tensor, other_mean: Tensor, other_std: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean and covariance parts of :math:`\mathrm{KL}(\mathcal{N}(\mu, \sigma^2) \| \mathcal{N}(\mu', \sigma'^2))`.

    .. math::
        m = \tfrac12 \sum_i \frac{(\mu_i - \mu'_i)^2}{\sigma'^2_i}, \qquad
        c = \tfrac12 \sum_i \Big(\frac{\sigma_i^2}{\sigma'^2_i} - 1 - \log\frac{\sigma_i^2}{\sigma'^2_i}\Big),

    so that the KL divergence is :math:`m + c`.

    Shapes:
        mean, other_mean: ``(*, d)``; std, other_std: broadcastable to ``(*, d)``; returns two tensors of the
        broadcast batch shapes of ``(mean, other_mean, other_std)`` and of ``(std, other_std)``.
    """
    ratio = (std / other_std).pow(2)
    return 0.5 * _mahalanobis(mean, other_mean, other_std), 0.5 * (ratio - 1 - ratio.log()).sum(-1)


def w2_parts(mean: Tensor, std: Tensor, other_mean: Tensor, other_std: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean and covariance parts of the precision-scaled squared Wasserstein-2 distance of diagonal Gaussians.

    .. math::
        m = \sum_i \frac{(\mu_i - \mu'_i)^2}{\sigma'^2_i}, \qquad
        c = \sum_i \Big(\frac{\sigma_i}{\sigma'_i} - 1\Big)^2 .

    Shapes:
        as :func:`kl_parts`.
    """
    return _mahalanobis(mean, other_mean, other_std), (std / other_std - 1).pow(2).sum(-1)


def frobenius_parts(mean: Tensor, std: Tensor, other_mean: Tensor, other_std: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean part (Mahalanobis distance under the other covariance) and squared Frobenius distance of the covariances.

    .. math::
        m = \sum_i \frac{(\mu_i - \mu'_i)^2}{\sigma'^2_i}, \qquad c = \sum_i (\sigma_i^2 - \sigma'^2_i)^2 .

    Shapes:
        as :func:`kl_parts`.
    """
    return _mahalanobis(mean, other_mean, other_std), (std.pow(2) - other_std.pow(2)).pow(2).sum(-1)


def _as_bound(eps: float | Tensor, like: Tensor) -> Tensor:
    eps = torch.as_tensor(eps, dtype=like.dtype, device=like.device)
    if bool((eps <= 0).any()):
        raise ValueError("trust-region bounds must be positive")
    return eps


def _interpolate(value: Tensor, old: Tensor, part: Tensor, eps: float | Tensor) -> tuple[Tensor, Tensor]:
    r"""``old + (value - old) * sqrt(eps / part)`` where ``part > eps``, else ``value`` unchanged (gradient-safe),
    and the mask of the projected rows."""
    eps = _as_bound(eps, part)
    active = (part > eps).unsqueeze(-1)
    scale = (eps / torch.maximum(part, eps)).sqrt().unsqueeze(-1)
    return torch.where(active, old + (value - old) * scale, value), active


def project_mean(mean: Tensor, old_mean: Tensor, mean_part: Tensor, eps_mean: float | Tensor) -> Tensor:
    r"""Closed-form projection of the mean onto :math:`\{m \le \epsilon_\mu\}` for a quadratic mean part :math:`m`.

    .. math::
        \tilde\mu = \mu_o + (\mu - \mu_o) \sqrt{\epsilon_\mu / m} \quad \text{if } m > \epsilon_\mu,
        \qquad \tilde\mu = \mu \quad \text{otherwise}.

    Args:
        mean: the network's mean :math:`\mu`.
        old_mean: the old policy's mean :math:`\mu_o`.
        mean_part: :math:`m(\mu, \mu_o)`, a quadratic form in :math:`\mu - \mu_o` (e.g. from :func:`kl_parts`).
        eps_mean: the bound :math:`\epsilon_\mu > 0`.

    Shapes:
        mean, old_mean: ``(*, d)``; mean_part: ``(*)``; returns ``(*, d)``.
    """
    return _interpolate(mean, old_mean, mean_part, eps_mean)[0]


def project_std_w2(std: Tensor, old_std: Tensor, eps_cov: float | Tensor) -> Tensor:
    r"""W2 covariance projection: :math:`\tilde\sigma = \sigma_o + (\sigma - \sigma_o)\sqrt{\epsilon_\Sigma / c}`
    where :math:`c = \sum_i (\sigma_i / \sigma_{o,i} - 1)^2 > \epsilon_\Sigma`.

    Shapes:
        std, old_std: ``(*, d)`` (broadcastable); returns their broadcast shape.
    """
    std, old_std = torch.broadcast_tensors(std, old_std)
    return _interpolate(std, old_std, (std / old_std - 1).pow(2).sum(-1), eps_cov)[0]


def project_std_frobenius(std: Tensor, old_std: Tensor, eps_cov: float | Tensor) -> Tensor:
    r"""Frobenius covariance projection: :math:`\tilde\Sigma = \Sigma_o + (\Sigma - \Sigma_o)\sqrt{\epsilon_\Sigma / c}`
    where :math:`c = \lVert \Sigma - \Sigma_o \rVert_F^2 > \epsilon_\Sigma`; a convex combination of the variances,
    so positive.

    Shapes:
        std, old_std: ``(*, d)`` (broadcastable); returns their broadcast shape.
    """
    var, old_var = torch.broadcast_tensors(std.pow(2), old_std.pow(2))
    projected, active = _interpolate(var, old_var, (var - old_var).pow(2).sum(-1), eps_cov)
    return torch.where(active, projected.sqrt(), std.expand_as(var))


def _kl_cov_part(lam: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`c(\lambda)` and :math:`c'(\lambda)`, :math:`q = (1 - \lambda) + \lambda r` (summed over d).

    :math:`\log q` is ``log1p(lambda (r - 1))`` near :math:`q = 1` and ``log(q)`` elsewhere, so that neither
    :math:`q \to 1` nor :math:`r \to 0` (where ``r - 1`` rounds to ``-1``) loses precision.
    """
    lam = lam.unsqueeze(-1)
    a = r - 1
    x = lam * a
    q = (1 - lam) + lam * r
    near_one = x.abs() < 0.5
    log_q = torch.where(near_one, torch.log1p(torch.where(near_one, x, 0)), q.log())
    return 0.5 * (log_q - x / q).sum(-1), 0.5 * (lam * a.pow(2) / q.pow(2)).sum(-1)


@torch.no_grad()
def _kl_multiplier(r: Tensor, eps: Tensor, max_iter: int = 100, rtol: float = 1e-10) -> Tensor:
    r"""Root :math:`\lambda \in (0, 1]` of :math:`c(\lambda) = \epsilon` per state, :math:`\lambda = 1` where
    :math:`c(1) \le \epsilon` (safeguarded Newton on :math:`\sqrt{c} - \sqrt{\epsilon}`, see the module docstring).

    Shapes:
        r: ``(*, d)``, the ratios :math:`\sigma_o^2 / \sigma^2`; eps: broadcastable to ``(*)``; returns ``(*)``.
    """
    eps = torch.broadcast_to(eps, r.shape[:-1])
    root_eps = eps.sqrt()
    lo = torch.zeros_like(eps)
    hi = torch.ones_like(eps)
    tiny = torch.finfo(r.dtype).tiny
    norm = (r - 1).norm(dim=-1)
    lam = torch.where(norm > 0, 2 * root_eps / norm.clamp_min(tiny), hi).clamp(max=1)
    inside = _kl_cov_part(hi, r)[0] <= eps
    for _ in range(max_iter):
        c, dc = _kl_cov_part(lam, r)
        done = ((c - eps).abs() <= rtol * eps) | inside
        if bool(done.all()):
            break
        root_c = c.clamp_min(tiny).sqrt()
        f = root_c - root_eps
        above = f > 0
        hi = torch.where(above, lam, hi)
        lo = torch.where(above, lo, lam)
        newton = lam - f * 2 * root_c / dc.clamp_min(tiny)
        bracketed = (newton > lo) & (newton < hi)
        lam = torch.where(done, lam, torch.where(bracketed, newton, 0.5 * (lo + hi)))
    return torch.where(inside, torch.ones_like(lam), lam)


def project_std_kl(std: Tensor, old_std: Tensor, eps_cov: float | Tensor) -> Tensor:
    r"""KL covariance projection of diagonal Gaussians: precision interpolation with one multiplier per state.

    .. math::
        \tilde\sigma_i^2 = \Big(\frac{1 - \lambda}{\sigma_{o,i}^2} + \frac{\lambda}{\sigma_i^2}\Big)^{-1},
        \qquad \lambda \in (0, 1] \text{ such that } c(\tilde\sigma, \sigma_o) = \epsilon_\Sigma
        \text{ if } c(\sigma, \sigma_o) > \epsilon_\Sigma, \text{ else } \tilde\sigma = \sigma,

    with :math:`c` the covariance part of :func:`kl_parts`. The multiplier is found numerically (in float64) and
    differentiated implicitly (module docstring); gradients reach ``std`` and ``old_std``.

    Shapes:
        std, old_std: ``(*, d)`` (broadcastable); returns their broadcast shape.
    """
    std, old_std = torch.broadcast_tensors(std, old_std)
    # float64 throughout (float32 overflows r for standard deviations a few orders of magnitude apart); MPS has none.
    work = std.dtype if std.device.type == "mps" else torch.float64
    r = (old_std.to(work) / std.to(work)).pow(2)
    eps = _as_bound(eps_cov, r)
    active = _kl_cov_part(torch.ones_like(r[..., 0]), r.detach())[0] > eps
    if not bool(active.any()):
        return std
    lam = _kl_multiplier(r.detach(), eps)
    c, dc = _kl_cov_part(lam, r)
    # Implicit differentiation of c(lambda(r), r) = eps: value lam, derivative -dc/dr / dc/dlambda.
    lam = lam - torch.where(active, (c - c.detach()) / torch.where(active, dc.detach(), torch.ones_like(dc)), 0)
    lam = lam.unsqueeze(-1)
    projected = (old_std.to(work) * ((1 - lam) + lam * r).rsqrt()).to(std.dtype)
    return torch.where(active.unsqueeze(-1), projected, std)


def _project(
    std_projection: Callable[[Tensor, Tensor, float | Tensor], Tensor],
    parts: Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
    mean: Tensor,
    std: Tensor,
    old_mean: Tensor,
    old_std: Tensor,
    eps_mean: float | Tensor,
    eps_cov: float | Tensor,
) -> tuple[Tensor, Tensor]:
    mean_part = parts(mean, old_std, old_mean, old_std)[0]
    return project_mean(mean, old_mean, mean_part, eps_mean), std_projection(std, old_std, eps_cov)


def project_kl(
    mean: Tensor,
    std: Tensor,
    old_mean: Tensor,
    old_std: Tensor,
    eps_mean: float | Tensor,
    eps_cov: float | Tensor,
) -> tuple[Tensor, Tensor]:
    r"""Decoupled KL projection of :math:`\mathcal{N}(\mu, \sigma^2)` onto the trust region around
    :math:`\mathcal{N}(\mu_o, \sigma_o^2)`.

    Mean: :func:`project_mean` with :math:`m = \tfrac12 \sum_i (\mu_i - \mu_{o,i})^2 / \sigma_{o,i}^2` (the mean part of
    the KL divergence, a Mahalanobis distance under the old covariance). Covariance: :func:`project_std_kl`. Afterwards
    :math:`\mathrm{KL}(\tilde\pi \,\|\, \pi_{\mathrm{old}}) \le \epsilon_\mu + \epsilon_\Sigma`.

    Args:
        mean, std: the network's Gaussian.
        old_mean, old_std: the old policy's Gaussian at the same states.
        eps_mean, eps_cov: the bounds :math:`\epsilon_\mu, \epsilon_\Sigma > 0`.

    Shapes:
        mean, old_mean: ``(*, d)``; std, old_std: ``(*', d)`` broadcastable against each other (and against
        ``(*, d)`` for ``old_std``); returns the projected mean ``(*, d)`` and standard deviation (the broadcast
        shape of ``std`` and ``old_std``).
    """
    return _project(project_std_kl, kl_parts, mean, std, old_mean, old_std, eps_mean, eps_cov)


def project_w2(
    mean: Tensor,
    std: Tensor,
    old_mean: Tensor,
    old_std: Tensor,
    eps_mean: float | Tensor,
    eps_cov: float | Tensor,
) -> tuple[Tensor, Tensor]:
    r"""Decoupled precision-scaled W2 projection (closed form): :func:`project_mean` with the mean part of
    :func:`w2_parts` and :func:`project_std_w2`.

    Shapes:
        as :func:`project_kl`.
    """
    return _project(project_std_w2, w2_parts, mean, std, old_mean, old_std, eps_mean, eps_cov)


def project_frobenius(
    mean: Tensor,
    std: Tensor,
    old_mean: Tensor,
    old_std: Tensor,
    eps_mean: float | Tensor,
    eps_cov: float | Tensor,
) -> tuple[Tensor, Tensor]:
    r"""Decoupled Frobenius projection (closed form): :func:`project_mean` with the Mahalanobis mean part of
    :func:`frobenius_parts` and :func:`project_std_frobenius`.

    Shapes:
        as :func:`project_kl`.
    """
    return _project(project_std_frobenius, frobenius_parts, mean, std, old_mean, old_std, eps_mean, eps_cov)


MEASURES: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]] = {
    "kl": kl_parts,
    "w2": w2_parts,
    "frobenius": frobenius_parts,
}
"""Mean and covariance parts ``(m, c)`` of each measure, ``parts(mean, std, other_mean, other_std)``."""

PROJECTIONS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "kl": project_kl,
    "w2": project_w2,
    "frobenius": project_frobenius,
}
"""``project(mean, std, old_mean, old_std, eps_mean, eps_cov) -> (mean, std)`` of each measure."""

STD_PROJECTIONS: dict[str, Callable[[Tensor, Tensor, float | Tensor], Tensor]] = {
    "kl": project_std_kl,
    "w2": project_std_w2,
    "frobenius": project_std_frobenius,
}
"""``project_std(std, old_std, eps_cov) -> std``, the covariance part of each projection alone."""
