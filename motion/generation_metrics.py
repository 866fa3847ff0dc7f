"""Scores of unconditionally generated trajectories against real ones (GeoTDM's protocol).

All functions take ``real [S, N, T, D]`` and ``generated [S', N, T, D]`` windows with equal N, T, D. Both are
first centred (zero centre of mass over agents and frames, as unconditional GeoTDM samples are), so the scores
compare shapes of motion, not absolute placement.

- :func:`marginal_score`: for every frame and axis, the histograms (``bins`` bins over the real values' range)
  of per-agent positions; the mean absolute difference of their bin probabilities, averaged over frames and
  axes. 0 for identical marginals; lower is better.
- :func:`classification_score`: the held-out cross-entropy (nats) of a small MLP trained to tell real from
  generated windows from positions and frame differences, its best value during training (evaluated every
  10 steps). About ln 2 = 0.693 when they cannot be told apart; higher is better.
- :func:`prediction_score`: the MSE on real windows of an MLP trained on generated windows to predict the
  last ``T - past`` frames from the first ``past`` ("train on synthetic, test on real"); lower is better.

Our reading of the paper's definitions; the published values (0.0055, 0.556, 0.00978 on charged particles)
came from the authors' code, whose bin counts, networks and training budgets we do not have, so our values are
comparable between our own runs, not to those digits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from geomanip.motion.geotdm import remove_com

__all__ = ["classification_score", "generation_scores", "marginal_score", "prediction_score"]


def _check(real: Tensor, generated: Tensor) -> None:
    if real.dim() != 4 or generated.dim() != 4 or real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            f"generation metrics: real and generated must be [S, N, T, D] with equal N, T, D; got "
            f"{list(real.shape)} and {list(generated.shape)}"
        )
    if len(real) < 2 or len(generated) < 2:
        raise ValueError("generation metrics: need at least 2 real and 2 generated windows")


def marginal_score(real: Tensor, generated: Tensor, bins: int = 50) -> float:
    """Mean absolute difference of per-frame, per-axis position histograms (bin probabilities)."""
    _check(real, generated)
    real, generated = remove_com(real.double()), remove_com(generated.double())
    _, _, T, D = real.shape
    diffs = []
    for t in range(T):
        for d in range(D):
            r, g = real[:, :, t, d].flatten(), generated[:, :, t, d].flatten()
            lo, hi = float(r.min()), float(r.max())
            # Generated values outside the real range fall in no bin, so their mass counts as a difference.
            pr = torch.histc(r, bins, lo, hi) / r.numel()
            pg = torch.histc(g, bins, lo, hi) / g.numel()
            diffs.append((pr - pg).abs().mean())
    return float(torch.stack(diffs).mean())


def _mlp(n_in: int, n_out: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out)
    )


def _fit(model: nn.Module, x: Tensor, y: Tensor, loss_fn, steps: int, lr: float = 1e-3) -> None:
    """Full-batch Adam; the data sets here are a few thousand windows."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()


def classification_score(
    real: Tensor, generated: Tensor, hidden: int = 64, steps: int = 300, seed: int = 0, test_fraction: float = 0.25
) -> float:
    """Held-out cross-entropy of a real-vs-generated MLP on flattened centred windows (higher is better)."""
    _check(real, generated)
    n = min(len(real), len(generated))  # balanced classes, so ln 2 is the chance level
    real, generated = remove_com(real[:n].float()), remove_com(generated[:n].float())
    n_test = max(1, int(n * test_fraction))

    def features(w: Tensor) -> Tensor:
        # Frame differences next to positions: jagged motion is what an unconverged generator gets wrong first.
        return torch.cat([w.flatten(1), (w[:, :, 1:] - w[:, :, :-1]).flatten(1)], 1)

    x = torch.cat([features(real), features(generated)])
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    test = torch.zeros(2 * n, dtype=torch.bool)
    test[:n_test] = test[n : n + n_test] = True
    loss_fn = nn.BCEWithLogitsLoss()
    # The score is the classifier's best held-out loss during training: a classifier that memorises its
    # training windows gets confidently wrong on new ones, which would make a perfect generator score well
    # above ln 2 by chance (it did, on two halves of the same data, without this).
    best = math.inf
    with torch.random.fork_rng(), torch.enable_grad():  # callers may be inside no_grad (sampling)
        torch.manual_seed(seed)
        model = _mlp(x.shape[1], 1, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step in range(steps + 1):
            if step % 10 == 0:
                with torch.no_grad():
                    best = min(best, float(loss_fn(model(x[test]), y[test, None])))
            if step < steps:
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x[~test]), y[~test, None]).backward()
                opt.step()
    return best


def prediction_score(
    generated: Tensor, real: Tensor, past: int, hidden: int = 64, steps: int = 300, seed: int = 0
) -> float:
    """MSE on ``real`` of a predictor of frames ``past:`` from frames ``:past``, trained on ``generated``."""
    _check(real, generated)
    if not 0 < past < real.shape[2]:
        raise ValueError(f"prediction_score: past must be in [1, {real.shape[2] - 1}], got {past}")

    def split(w: Tensor) -> tuple[Tensor, Tensor]:
        # Positions relative to each window's last observed centre: the predictor need not learn translations.
        w = w.float()
        w = w - w[:, :, past - 1 : past].mean(1, keepdim=True)
        return w[:, :, :past].flatten(1), w[:, :, past:].flatten(1)

    (xg, yg), (xr, yr) = split(generated), split(real)
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(seed)
        model = _mlp(xg.shape[1], yg.shape[1], hidden)
        _fit(model, xg, yg, nn.MSELoss(), steps)
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(xr), yr))


def generation_scores(real: Tensor, generated: Tensor, past: int) -> dict[str, float]:
    """The three scores as ``marginal``, ``classification`` and ``prediction``."""
    return {
        "marginal": marginal_score(real, generated),
        "classification": classification_score(real, generated),
        "prediction": prediction_score(generated, real, past),
    }
