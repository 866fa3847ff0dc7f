"""Displacement metrics of trajectory predictions.

``pred [B, N, K, T, D]`` against ``future [B, N, T, D]`` on the agents of ``eval_mask [B, N]``:

- ``ade``, ``fde``: average and final displacement of mode 0 (the prediction of a K = 1 model).
- ``min_ade``: the smallest ADE over the K modes, per agent; ``min_fde``: the FDE of that same mode (one mode
  chosen per agent, the honest protocol); ``min_fde_any``: the smallest FDE over modes chosen separately
  (the original EqMotion code's protocol, reported for comparison only).

For K samples of a generative model (GeoTDM's protocol on N-body data), :func:`sample_average_sums` gives
``avg_ade`` and ``avg_fde``: ADE and FDE averaged over the K samples instead of minimised.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["displacement_sums", "best_of_k_loss", "sample_average_sums"]

METRICS = ("ade", "fde", "min_ade", "min_fde", "min_fde_any")
AVERAGE_METRICS = ("avg_ade", "avg_fde")


def displacement_sums(pred: Tensor, future: Tensor, eval_mask: Tensor) -> dict[str, float]:
    """Sums of each metric over the evaluated agents, plus ``count``; divide to average over batches."""
    dist = (pred - future.unsqueeze(2)).norm(dim=-1)  # [B, N, K, T]
    ade_k, fde_k = dist.mean(-1), dist[..., -1]  # [B, N, K]
    best = ade_k.argmin(-1, keepdim=True)
    m = eval_mask.to(pred.dtype)
    values = {
        "ade": ade_k[..., 0],
        "fde": fde_k[..., 0],
        "min_ade": ade_k.gather(-1, best).squeeze(-1),
        "min_fde": fde_k.gather(-1, best).squeeze(-1),
        "min_fde_any": fde_k.min(-1).values,
    }
    out = {k: float((v * m).sum()) for k, v in values.items()}
    out["count"] = float(m.sum())
    return out


def best_of_k_loss(pred: Tensor, future: Tensor, mask: Tensor) -> Tensor:
    """Mean over valid agents of the smallest average displacement over the K modes (plain ADE if K = 1)."""
    ade_k = (pred - future.unsqueeze(2)).norm(dim=-1).mean(-1)  # [B, N, K]
    m = mask.to(pred.dtype)
    return (ade_k.min(-1).values * m).sum() / m.sum().clamp(min=1)


def sample_average_sums(pred: Tensor, future: Tensor, eval_mask: Tensor) -> dict[str, float]:
    """Sums over the evaluated agents of ADE and FDE averaged over the K samples (``avg_ade``, ``avg_fde``)."""
    dist = (pred - future.unsqueeze(2)).norm(dim=-1)  # [B, N, K, T]
    m = eval_mask.to(pred.dtype)
    return {
        "avg_ade": float((dist.mean((-1, -2)) * m).sum()),
        "avg_fde": float((dist[..., -1].mean(-1) * m).sum()),
        "count": float(m.sum()),
    }
