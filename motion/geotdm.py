"""GeoTDM: geometric trajectory diffusion with an equivariant spatio-temporal denoiser (EGTN).

Han et al., "Geometric Trajectory Diffusion Models", NeurIPS 2024. Trajectories are
``[B, N, T, D]`` arrays of N agents over T frames in D dimensions (any D; 2 for pedestrians, 3 for particles).

- :class:`EGTN` alternates a spatial :class:`~geomanip.kernels.EGNNConv` over the agents of each frame with a per-agent
  :class:`TemporalAttention` over frames (relative time embeddings on keys and values, coordinate updates
  along ``x_t - x_s``). Invariant features ``h`` and equivariant coordinates ``x`` are updated together.
- :class:`GeoTDM` is the DDPM around it: ε-prediction (the paper's) or x0-prediction with an MSE loss on a
  linear beta schedule. Conditional models (``cond_frames > 0``) diffuse the residual ``x - x_r`` from a
  learnable geometric prior ``x_r`` (weights over the conditioning frames that sum to one, from a small EGTN
  over them; optionally added to a constant-velocity extrapolation). Unconditional models (``cond_frames = 0``)
  diffuse in the subspace of zero centre of mass over all agents and frames.
- :class:`DiffusionSchedule` holds the schedule and one DDIM update rule: with ``eta = 1`` on all 1000
  steps it is exactly ancestral DDPM sampling; ``eta = 0`` on a few steps is deterministic DDIM.

Every piece is equivariant to rotations, reflections and translations of all coordinates (translations are
removed from unconditional samples) and to permutations of the agents; tests check each one in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomanip.kernels import EGNNConv
from geomanip.motion.eqmotion import complete_edges

__all__ = ["DiffusionSchedule", "EGTN", "GeoTDM", "TemporalAttention", "remove_com", "sinusoidal"]


def sinusoidal(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``[..., dim]`` of (possibly negative) integer or real positions ``t [...]``."""
    half = dim // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float64) / half)
    arg = t.to(torch.float64).unsqueeze(-1) * freq
    emb = torch.cat([arg.sin(), arg.cos()], -1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def remove_com(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Subtract the centre of mass over valid agents and all frames: ``x [B, N, T, D]``, ``mask [B, N]``.

    Masked-out agents are set to zero so that padding never carries noise.
    """
    if mask is None:
        return x - x.mean((1, 2), keepdim=True)
    w = mask.to(x.dtype)[:, :, None, None]
    com = (x * w).sum((1, 2), keepdim=True) / (w.sum((1, 2), keepdim=True) * x.size(2)).clamp(min=1)
    return (x - com) * w


class DiffusionSchedule(nn.Module):
    r"""Linear-beta DDPM schedule and the DDIM update that covers ancestral sampling.

    ``alpha_bar[k] = prod_{j <= k} (1 - beta_j)``, ``beta`` linear from ``beta_start`` to ``beta_end`` over
    ``num_steps`` steps. One update from step ``k`` to an earlier step ``p`` (``p = -1``: the clean data,
    ``alpha_bar = 1``), with ``x0 = (x_k - sqrt(1 - a_k) eps) / sqrt(a_k)``:

    .. math::
        \sigma = \eta \sqrt{\tfrac{1 - a_p}{1 - a_k}} \sqrt{1 - \tfrac{a_k}{a_p}}, \qquad
        x_p = \sqrt{a_p}\, x_0 + \sqrt{1 - a_p - \sigma^2}\, \epsilon + \sigma z

    With ``eta = 1`` on every step this is DDPM's ancestral sampler with the posterior variance
    ``beta~_k`` (Song et al. 2021, eq. 16); ``eta = 0`` is deterministic DDIM. The last update (to ``p = -1``)
    never adds noise. The schedule is stored in float64 and cast to the data's dtype where used.
    """

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        super().__init__()
        if num_steps < 1 or not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"DiffusionSchedule: need num_steps >= 1 and 0 < beta_start <= beta_end < 1, got "
                f"{num_steps}, {beta_start}, {beta_end}"
            )
        self.num_steps = num_steps
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0), persistent=False)

    def timesteps(self, steps: int) -> list[int]:
        """``steps`` diffusion steps from ``num_steps - 1`` down to 0, evenly spaced (all of them at full count)."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"DiffusionSchedule: steps must be in [1, {self.num_steps}], got {steps}")
        return torch.linspace(self.num_steps - 1, 0, steps, dtype=torch.float64).round().long().tolist()

    def alpha_bar_like(self, k: Tensor, x: Tensor) -> Tensor:
        """``a_k`` for steps ``k [B]``, in ``x``'s dtype, shaped to broadcast over ``x [B, ...]``."""
        return self.alpha_bar[k].to(x.dtype).view(-1, *[1] * (x.dim() - 1))

    def noise(self, x0: Tensor, k: Tensor, eps: Tensor) -> Tensor:
        """``q(x_k | x_0)``: ``sqrt(a_k) x0 + sqrt(1 - a_k) eps``; ``k [B]`` indexes the leading axis."""
        a = self.alpha_bar_like(k, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def step(self, x: Tensor, eps: Tensor, k: int, prev: int, eta: float, z: Tensor | None) -> Tensor:
        """One update from step ``k`` to ``prev`` (< k; -1 for the end); ``z`` is needed when ``sigma > 0``."""
        a_k = float(self.alpha_bar[k])
        a_p = float(self.alpha_bar[prev]) if prev >= 0 else 1.0
        x0 = (x - math.sqrt(1 - a_k) * eps) / math.sqrt(a_k)
        sigma = eta * math.sqrt((1 - a_p) / (1 - a_k) * (1 - a_k / a_p)) if prev >= 0 else 0.0
        out = math.sqrt(a_p) * x0 + math.sqrt(max(1 - a_p - sigma**2, 0.0)) * eps
        if sigma > 0:
            out = out + sigma * z
        return out


class TemporalAttention(nn.Module):
    r"""Per-agent attention over frames with relative time embeddings and equivariant coordinate updates.

    For the frames ``t, s`` of one agent, heads ``a``, ``r_{ts} = emb(t - s)`` (sinusoidal, then linear):

    .. math::
        \alpha_{a,ts} = \mathrm{softmax}_s \frac{q_{a,t}^\top (k_{a,s} + r^k_{a,ts})}{\sqrt{d}}, \qquad
        h_t \mathrel{+}= W_o \big[\textstyle\sum_s \alpha_{a,ts} (v_{a,s} + r^v_{a,ts})\big]_a

        x_t \mathrel{+}= \frac{1}{A} \sum_{a,s} \alpha_{a,ts}\, \phi_a(v_{a,s} + r^v_{a,ts})
            \frac{x_t - x_s}{\|x_t - x_s\| + 1}

    ``phi_a`` is linear, so ``phi_a(v_s + r_ts) = phi_a(v_s) + phi_a(r_ts)`` and the ``[M, A, T, T, d]`` sum is
    never formed. ``x_t - x_s`` is normalised as in the spatial EGNN layer, so that distant frames do not
    dominate. Invariant ``h``, equivariant ``x`` (E(D) and per-agent permutation).

    Shapes: ``h [M, T, H]``, ``x [M, T, D]`` (M = agents of all samples) -> same shapes.
    """

    def __init__(self, hidden: int, heads: int = 4) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"TemporalAttention: hidden ({hidden}) must be divisible by heads ({heads})")
        self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.rel = nn.Linear(hidden, 2 * hidden)  # relative-time terms of keys and values
        self.out = nn.Linear(hidden, hidden)
        self.phi = nn.Parameter(torch.zeros(heads, self.head_dim))  # coordinate weight per head (starts at 0)
        self.phi_bias = nn.Parameter(torch.zeros(heads))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        M, T, H = h.shape
        A, d = self.heads, self.head_dim
        q, k, v = self.qkv(self.norm(h)).view(M, T, 3, A, d).permute(2, 0, 3, 1, 4)  # each [M, A, T, d]
        t = torch.arange(T, device=h.device)
        rel = sinusoidal(t[:, None] - t[None, :], H).to(h.dtype)  # [T, T, H], t - s
        rk, rv = self.rel(rel).view(T, T, 2, A, d).permute(2, 3, 0, 1, 4)  # each [A, T, T, d]
        logits = (q @ k.transpose(-1, -2) + torch.einsum("matd,atsd->mats", q, rk)) / math.sqrt(d)
        alpha = logits.softmax(-1)  # [M, A, T, S]
        h_att = alpha @ v + torch.einsum("mats,atsd->matd", alpha, rv)
        h = h + self.out(h_att.transpose(1, 2).reshape(M, T, H))

        # phi(v_s + r_ts) split into its node and relative-time parts (phi is linear).
        phi_v = torch.einsum("masd,ad->mas", v, self.phi)
        phi_r = torch.einsum("atsd,ad->ats", rv, self.phi) + self.phi_bias[:, None, None]
        w = (alpha * (phi_v[:, :, None, :] + phi_r)).mean(1)  # [M, T, S]
        dx = x[:, :, None] - x[:, None, :]  # [M, T, S, D], x_t - x_s
        dist = (dx * dx).sum(-1, keepdim=True).clamp(min=torch.finfo(x.dtype).tiny).sqrt()
        x = x + (w.unsqueeze(-1) * dx / (dist + 1)).sum(2)
        return h, x


class EGTN(nn.Module):
    r"""Equivariant geometric trajectory network: ``layers`` x (spatial EGNN per frame, temporal attention).

    The spatial layer is :class:`~geomanip.kernels.EGNNConv` on the graph whose nodes are (agent, frame) pairs and
    whose edges join every two valid agents of a sample at the same frame (mean aggregation,
    ``x_i += mean_j phi(m_ij) x_ij / (|x_ij| + 1)``). Each block ends with a feed-forward update of ``h``.

    Shapes: ``h [B, N, T, F]`` (``F = in_channels``), ``x [B, N, T, D]``, ``mask [B, N]`` bool ->
    ``(h [B, N, T, hidden], x [B, N, T, D])``.
    """

    def __init__(self, in_channels: int, hidden: int = 64, layers: int = 4, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(in_channels, hidden)
        self.spatial = nn.ModuleList([EGNNConv(hidden, hidden, vector_channels=1) for _ in range(layers)])
        self.temporal = nn.ModuleList([TemporalAttention(hidden, heads) for _ in range(layers)])
        self.ffn = nn.ModuleList(
            [
                nn.Sequential(
                    nn.LayerNorm(hidden), nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, hidden)
                )
                for _ in range(layers)
            ]
        )

    @staticmethod
    def frame_edges(mask: Tensor, frames: int) -> Tensor:
        """Edges between valid agents at equal frames; node ``(b * N + i) * T + t``."""
        e = complete_edges(mask)  # over b * N + i
        t = torch.arange(frames, device=mask.device)
        return (e[:, :, None] * frames + t).reshape(2, -1)

    def forward(self, h: Tensor, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        B, N, T, D = x.shape
        edges = self.frame_edges(mask, T)
        h = self.embed(h).reshape(B * N, T, -1)
        x = x.reshape(B * N, T, D)
        for spatial, temporal, ffn in zip(self.spatial, self.temporal, self.ffn, strict=True):
            hs, xs = spatial(h.reshape(B * N * T, -1), x.reshape(B * N * T, 1, D), edges)
            h, x = temporal(hs.view(B * N, T, -1), xs.view(B * N, T, D))
            h = h + ffn(h)
        return h.view(B, N, T, -1), x.view(B, N, T, D)


class GeoTDM(nn.Module):
    r"""GeoTDM (Han et al., NeurIPS 2024): DDPM over multi-agent trajectories with an EGTN denoiser.

    **Conditional** (``cond_frames = T_c > 0``): given frames ``c [B, N, T_c, D]``, a prior EGTN over them
    gives invariant ``h_s`` and equivariant ``x^_s``; for each generated frame ``t``,
    ``a_ts = MLP[h_s, emb(t - s)]``, ``w_ts = 1 / T_c + a_ts - mean_s a_ts`` (sums to one, may extrapolate) and
    ``x_r(t) = sum_s w_ts x^_s``. With ``velocity_prior``, ``x_r(t) = x_last + (t - t_last) v_last +
    sum_s (a_ts - mean_s a_ts) x^_s`` instead: the constant-velocity extrapolation of the last two conditioning
    frames (equivariant: its weights 1 + tau and -tau sum to one) plus a learned correction whose weights sum to
    zero, starting at zero. The diffusion runs on ``y = x - x_r``; the denoiser sees the conditioning
    frames and ``x_r + y_k`` on the time axis.
    **Unconditional** (``cond_frames = 0``): ``y = x - com(x)`` and all noise is projected to zero centre of
    mass over agents and frames, so samples have zero centre of mass.

    The denoiser predicts ``eps = (x' - x) + s(h) (x - x_r)`` on the generated frames, where ``(h, x')`` is
    the EGTN output and ``s`` a learned invariant scale (``x_r = 0`` unconditionally): the second term gives
    it a linear path to the noise, which the bounded EGNN updates lack. Invariant inputs: a sinusoidal
    embedding of the diffusion step and of the frame index, a flag marking conditioning frames, and the
    speed ``|x_t - x_{t-1}|``.

    With ``prediction="x0"`` the same output is read as the clean residual ``y_0`` instead, plus the linear
    estimate ``c(k) y_k`` with ``c(k) = sqrt(a_k) s_d^2 / (a_k s_d^2 + 1 - a_k)`` (the best linear guess of a
    ``y_0`` of scale ``s_d = sigma_data`` from ``y_k``); the loss is the MSE of ``y_0`` (i.e. of ``x_0`` in data
    space), and the noise for the DDIM update is derived, ``eps = (y_k - sqrt(a_k) y^_0) / sqrt(1 - a_k)``. This
    avoids dividing the network's error by ``sqrt(a_k)`` at high noise, and an untrained model samples the prior.

    Args:
        cond_frames: conditioning frames ``T_c`` (0: unconditional).
        future_frames: default number of generated frames (``horizon`` of :meth:`sample`).
        hidden, layers, heads: EGTN sizes (paper: 128, 6 for particles).
        prior_layers: layers of the prior EGTN.
        diffusion_steps, beta_start, beta_end: the linear schedule (paper: 1000, 1e-4, 0.02).
        dim: spatial dimension of unconditional samples (conditional ones take ``cond``'s).
        prediction: ``"eps"`` (the paper's ε-prediction) or ``"x0"`` (the clean residual).
        velocity_prior: add the constant-velocity extrapolation to the prior (conditional, ``cond_frames >= 2``).
        sigma_data: the residual scale ``s_d`` of x0-prediction's linear estimate.

    Shapes:
        - forward (training loss): ``x [B, N, T, D]`` target frames, ``cond [B, N, T_c, D]``, ``mask [B, N]``
        - sample: returns ``[B, N, K, T, D]``
    """

    def __init__(
        self,
        cond_frames: int = 10,
        future_frames: int = 20,
        hidden: int = 64,
        layers: int = 4,
        heads: int = 4,
        prior_layers: int = 2,
        diffusion_steps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        dim: int = 3,
        prediction: str = "eps",
        velocity_prior: bool = False,
        sigma_data: float = 0.5,
    ) -> None:
        super().__init__()
        if cond_frames < 0 or future_frames < 1:
            raise ValueError(
                f"GeoTDM: need cond_frames >= 0 and future_frames >= 1, got {cond_frames}, {future_frames}"
            )
        if prediction not in ("eps", "x0"):
            raise ValueError(f"GeoTDM: prediction must be 'eps' or 'x0', got {prediction!r}")
        if velocity_prior and cond_frames < 2:
            raise ValueError(f"GeoTDM: velocity_prior needs cond_frames >= 2, got {cond_frames}")
        if sigma_data <= 0:
            raise ValueError(f"GeoTDM: sigma_data must be positive, got {sigma_data}")
        self.cond_frames, self.future_frames, self.dim, self.hidden = cond_frames, future_frames, dim, hidden
        self.prediction, self.velocity_prior, self.sigma_data = prediction, velocity_prior, sigma_data
        self.schedule = DiffusionSchedule(diffusion_steps, beta_start, beta_end)
        self.denoiser = EGTN(2 * hidden + 2, hidden, layers, heads)
        self.eps_scale = nn.Linear(hidden, 1)
        nn.init.zeros_(self.eps_scale.weight)
        nn.init.zeros_(self.eps_scale.bias)
        self.prior = None
        if cond_frames:
            self.prior = EGTN(hidden + 1, hidden, prior_layers, heads)
            self.prior_node = nn.Linear(hidden, hidden)
            self.prior_rel = nn.Linear(hidden, hidden)
            self.prior_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 1))
            if velocity_prior:  # start at constant velocity exactly
                nn.init.zeros_(self.prior_out[1].weight)
                nn.init.zeros_(self.prior_out[1].bias)

    @property
    def conditional(self) -> bool:
        return self.cond_frames > 0

    # --- helpers -----------------------------------------------------------------------------------
    def _check(self, name: str, t: Tensor, frames: int | None, mask: Tensor | None) -> Tensor:
        if t.dim() != 4 or (frames is not None and t.size(2) != frames):
            want = f"[B, N, {frames}, D]" if frames is not None else "[B, N, T, D]"
            raise ValueError(f"GeoTDM: {name} must have shape {want}, got {list(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"GeoTDM: {name} contains NaN or inf")
        B, N = t.shape[:2]
        if mask is None:
            return torch.ones(B, N, dtype=torch.bool, device=t.device)
        if mask.shape != (B, N):
            raise ValueError(f"GeoTDM: mask must have shape [B={B}, N={N}], got {list(mask.shape)}")
        return mask.bool()

    @staticmethod
    def _speed(x: Tensor) -> Tensor:
        """``|x_t - x_{t-1}|`` per frame (0 at the first), ``[B, N, T, 1]``."""
        v = (x[:, :, 1:] - x[:, :, :-1]).norm(dim=-1, keepdim=True)
        return F.pad(v, (0, 0, 1, 0))

    def geometric_prior(self, cond: Tensor, horizon: int, mask: Tensor | None = None) -> Tensor:
        """The prior ``x_r [B, N, horizon, D]`` from conditioning frames ``cond [B, N, T_c, D]``."""
        if self.prior is None:
            raise ValueError("GeoTDM: an unconditional model (cond_frames=0) has no geometric prior")
        mask = self._check("cond", cond, self.cond_frames, mask)
        B, N, Tc, D = cond.shape
        frames = torch.arange(Tc, device=cond.device)
        h0 = torch.cat([sinusoidal(frames, self.hidden).to(cond.dtype).expand(B, N, Tc, -1), self._speed(cond)], -1)
        h, xh = self.prior(h0, cond, mask)
        t = torch.arange(Tc, Tc + horizon, device=cond.device)
        rel = self.prior_rel(sinusoidal(t[:, None] - frames[None, :], self.hidden).to(cond.dtype))  # [T, Tc, H]
        a = self.prior_out(self.prior_node(h)[:, :, None] + rel).squeeze(-1)  # [B, N, T, Tc]
        if self.velocity_prior:
            tau = (t - (Tc - 1)).to(cond.dtype).view(1, 1, -1, 1)  # frames after the last conditioning one
            last, before = cond[:, :, -1:], cond[:, :, -2:-1]
            return last + tau * (last - before) + (a - a.mean(-1, keepdim=True)) @ xh
        w = 1.0 / Tc + a - a.mean(-1, keepdim=True)
        return w @ xh

    def denoise(self, x: Tensor, k: Tensor, ref: Tensor, cond: Tensor | None, mask: Tensor) -> Tensor:
        """Predicted noise ``[B, N, T, D]`` for noisy frames ``x`` at diffusion steps ``k [B]``.

        ``ref`` is ``x_r`` (conditional) or zeros (unconditional: ``x`` is centred). With x0-prediction the
        noise is derived from the predicted clean residual.
        """
        pred = self._network(x, k, ref, cond, mask)
        if self.prediction == "eps":
            return pred
        a = self.schedule.alpha_bar_like(k, x)
        return ((x - ref) - a.sqrt() * pred) / (1 - a).sqrt() * mask[:, :, None, None].to(x.dtype)

    def _network(self, x: Tensor, k: Tensor, ref: Tensor, cond: Tensor | None, mask: Tensor) -> Tensor:
        """The denoiser's prediction ``[B, N, T, D]``: the noise (ε-prediction) or the clean residual ``y_0``."""
        B, N, T, _ = x.shape
        full = x if cond is None else torch.cat([cond, x], 2)
        Tc = full.size(2) - T
        frames = torch.arange(full.size(2), device=x.device)
        h0 = torch.cat(
            [
                sinusoidal(k.to(x.dtype), self.hidden).to(x.dtype)[:, None, None].expand(B, N, full.size(2), -1),
                sinusoidal(frames, self.hidden).to(x.dtype).expand(B, N, -1, -1),
                (frames < Tc).to(x.dtype).view(1, 1, -1, 1).expand(B, N, -1, 1),
                self._speed(full),
            ],
            -1,
        )
        h, out = self.denoiser(h0, full, mask)
        h, out = h[:, :, Tc:], out[:, :, Tc:]
        pred = out - x + self.eps_scale(h) * (x - ref)
        if self.prediction == "x0":
            a, s2 = self.schedule.alpha_bar_like(k, x), self.sigma_data**2
            pred = pred + a.sqrt() * s2 / (a * s2 + 1 - a) * (x - ref)
        if cond is None:
            pred = remove_com(pred, mask)
        return pred * mask[:, :, None, None].to(x.dtype)

    # --- training ----------------------------------------------------------------------------------
    def forward(self, x: Tensor, cond: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Training loss on random diffusion steps: MSE of the predicted noise (or, x0-prediction, clean residual).

        ``x [B, N, T, D]`` are the frames to generate; ``cond`` the conditioning frames (conditional models).
        """
        mask = self._check("x", x, None, mask)
        B = x.size(0)
        m = mask[:, :, None, None].to(x.dtype)
        eps = torch.randn_like(x)
        if self.conditional:
            if cond is None:
                raise ValueError("GeoTDM: a conditional model needs cond [B, N, T_c, D] (cond_frames > 0)")
            self._check("cond", cond, self.cond_frames, mask)
            if cond.shape[:2] != x.shape[:2] or cond.size(-1) != x.size(-1):
                raise ValueError(f"GeoTDM: cond {list(cond.shape)} and x {list(x.shape)} differ in B, N or D")
            ref = self.geometric_prior(cond, x.size(2), mask)
            y0 = x - ref
        else:
            if cond is not None:
                raise ValueError("GeoTDM: cond given to an unconditional model (cond_frames=0)")
            ref = torch.zeros_like(x)
            y0 = remove_com(x, mask)
            eps = remove_com(eps, mask)
        k = torch.randint(0, self.schedule.num_steps, (B,), device=x.device)
        xk = ref + self.schedule.noise(y0, k, eps)
        pred = self._network(xk, k, ref, cond, mask)
        target = eps if self.prediction == "eps" else y0
        return (((pred - target * m) ** 2).sum() / (m.sum() * x.size(2) * x.size(3)).clamp(min=1)).to(x.dtype)

    # --- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        cond: Tensor | None = None,
        n_agents: int | None = None,
        horizon: int | None = None,
        num_samples: int = 1,
        steps: int | None = None,
        noise: Tensor | torch.Generator | None = None,
        eta: float | None = None,
        mask: Tensor | None = None,
        batch_size: int = 1,
        dim: int | None = None,
    ) -> Tensor:
        """Generate ``num_samples`` trajectories per input: ``[B, N, K, horizon, D]``.

        Args:
            cond: conditioning frames ``[B, N, T_c, D]`` (conditional models); ``None`` for unconditional.
            n_agents: agents N of unconditional samples (conditional ones take ``cond``'s).
            horizon: generated frames (default ``future_frames``).
            num_samples: K samples per input.
            steps: denoising steps (default: all ``diffusion_steps``, ancestral DDPM).
            noise: a ``torch.Generator``, or the noise itself: ``[B, N, K, T, D]`` (initial noise; deterministic
                sampling, ``eta = 0``) or ``[steps, B, N, K, T, D]`` (initial noise, then one draw for each
                update but the last). Rotating the noise with the conditioning rotates the samples.
            eta: DDIM stochasticity (default 1 when ``steps`` is the full count, i.e. DDPM; 0 otherwise).
            mask: valid agents ``[B, N]``.
            batch_size, dim: B and D of unconditional samples.
        """
        steps = self.schedule.num_steps if steps is None else steps
        timesteps = self.schedule.timesteps(steps)
        eta = (1.0 if steps == self.schedule.num_steps else 0.0) if eta is None else eta
        horizon = self.future_frames if horizon is None else horizon
        K = num_samples
        if cond is not None:
            if not self.conditional:
                raise ValueError("GeoTDM: cond given to an unconditional model (cond_frames=0)")
            mask = self._check("cond", cond, self.cond_frames, mask)
            B, N, _, D = cond.shape
            if n_agents is not None and n_agents != N:
                raise ValueError(f"GeoTDM: n_agents={n_agents} but cond has {N} agents")
            ref = self.geometric_prior(cond, horizon, mask)
            dtype, device = cond.dtype, cond.device
        else:
            if self.conditional:
                raise ValueError("GeoTDM: a conditional model needs cond [B, N, T_c, D] to sample")
            if n_agents is None:
                raise ValueError("GeoTDM: unconditional sampling needs n_agents")
            B, N, D = batch_size, n_agents, dim or self.dim
            p = next(self.parameters())
            dtype, device = p.dtype, p.device
            mask = torch.ones(B, N, dtype=torch.bool, device=device) if mask is None else mask.bool()
            if mask.shape != (B, N):
                raise ValueError(f"GeoTDM: mask must have shape [B={B}, N={N}], got {list(mask.shape)}")
            ref = torch.zeros(B, N, horizon, D, dtype=dtype, device=device)
        shape = (B, N, K, horizon, D)
        draws = steps if eta > 0 else 1
        if isinstance(noise, Tensor):
            if noise.shape == shape and eta == 0:
                noise = noise.unsqueeze(0)
            if noise.shape != (draws, *shape):
                raise ValueError(
                    f"GeoTDM: noise must have shape {list(shape)} (eta = 0) or {[steps, *shape]}, got "
                    f"{list(noise.shape)} (steps={steps}, eta={eta})"
                )
            noise = noise.to(dtype)
        elif noise is None or isinstance(noise, torch.Generator):
            noise = torch.randn((draws, *shape), generator=noise, dtype=dtype, device=device)
        else:
            raise TypeError(f"GeoTDM: noise must be a Tensor, a torch.Generator or None, got {type(noise).__name__}")

        # Fold the K samples into the batch: [B, N, K, T, D] -> [B * K, N, T, D].
        def fold(t: Tensor) -> Tensor:
            return t.permute(0, 2, 1, 3, 4).reshape(B * K, N, horizon, D)

        def rep(t: Tensor) -> Tensor:
            return t.repeat_interleave(K, 0)

        maskk, refk = rep(mask), rep(ref)
        condk = rep(cond) if cond is not None else None
        centre = (lambda t: remove_com(t, maskk)) if cond is None else (lambda t: t)
        y = centre(fold(noise[0]))
        for i, k in enumerate(timesteps):
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            kk = torch.full((B * K,), k, device=device)
            eps = self.denoise(refk + y, kk, refk, condk, maskk)
            z = centre(fold(noise[i + 1])) if eta > 0 and prev >= 0 else None
            y = self.schedule.step(y, eps, k, prev, eta, z)
        x = (refk + y) * maskk[:, :, None, None].to(dtype)
        return x.view(B, K, N, horizon, D).permute(0, 2, 1, 3, 4)
