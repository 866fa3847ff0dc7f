"""Pictures of GeoTDM samples: generated against real trajectories (PNG) and one sample animated (GIF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from geomanip.motion.data.datasets import pad_collate
from geomanip.motion.geotdm import GeoTDM

__all__ = ["animate_sample", "plot_geotdm"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@torch.no_grad()
def plot_geotdm(
    model: GeoTDM,
    dataset: Dataset,
    out: Path,
    unconditional: bool,
    num_samples: int = 5,
    steps: int = 50,
    device: torch.device | str = "cpu",
) -> tuple[Path, Path]:
    """Write ``generated.png`` (three real windows next to samples) and ``sample.gif``; returns their paths.

    Conditional: the observed frames (grey), the true future (green) and ``num_samples`` samples (orange).
    Unconditional: three real windows and three generated ones, both centred, one colour per agent.
    """
    plt = _pyplot()
    model.eval()
    generator = torch.Generator(device).manual_seed(0)
    idx = np.linspace(0, len(dataset) - 1, 3).astype(int)
    batch = {k: v.to(device) for k, v in pad_collate([dataset[int(i)] for i in idx]).items()}
    if unconditional:
        real = torch.cat([batch["past"], batch["future"]], 2)
        real = (real - real.mean((1, 2), keepdim=True)).cpu()
        gen = model.sample(n_agents=real.shape[1], horizon=real.shape[2], steps=steps, noise=generator, batch_size=3)
        gen = gen[:, :, 0].cpu()
        fig, axes = plt.subplots(2, 3, figsize=(12, 8))
        for row, (name, data) in enumerate((("real", real), ("generated", gen))):
            for col in range(3):
                ax = axes[row, col]
                for a in range(data.shape[1]):
                    ax.plot(data[col, a, :, 0], data[col, a, :, 1], lw=1.2)
                    ax.plot(data[col, a, -1, 0], data[col, a, -1, 1], "o", ms=3, color="k")
                ax.set_title(f"{name} {col + 1}")
                ax.set_aspect("equal")
        fig.suptitle("unconditional GeoTDM: real (top) and generated (bottom) windows, centred; x-y plane")
        anim_past, anim_traj = None, gen[0]
    else:
        pred = model.sample(
            batch["past"], num_samples=num_samples, steps=steps, noise=generator, mask=batch["mask"]
        ).cpu()
        past, fut, mask = batch["past"].cpu(), batch["future"].cpu(), batch["mask"].cpu()
        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        for col, ax in enumerate(axes):
            for a in np.flatnonzero(mask[col].numpy()):
                ax.plot(past[col, a, :, 0], past[col, a, :, 1], color="0.5")
                ax.plot(fut[col, a, :, 0], fut[col, a, :, 1], color="tab:green")
                for k in range(pred.shape[2]):
                    ax.plot(pred[col, a, k, :, 0], pred[col, a, k, :, 1], color="tab:orange", alpha=0.5, lw=0.8)
            ax.set_title(f"test sample {int(idx[col])}")
            ax.set_aspect("equal")
        fig.suptitle(f"observed (grey), true future (green), {pred.shape[2]} GeoTDM samples (orange); x-y plane")
        valid = mask[0]
        anim_past, anim_traj = past[0, valid], pred[0, valid, 0]
    fig.tight_layout()
    png = out / "generated.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    gif = out / "sample.gif"
    animate_sample(anim_traj, gif, anim_past)
    return png, gif


def animate_sample(traj: torch.Tensor, path: Path, past: torch.Tensor | None = None, fps: int = 8) -> None:
    """Animate ``traj [N, T, D]`` (x-y plane) as a GIF, after the observed frames ``past [N, T_c, D]`` if given.

    Each agent is a dot with a fading trail; observed frames are drawn grey, generated ones in colour.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = _pyplot()
    if traj.dim() != 3 or (past is not None and (past.dim() != 3 or past.shape[0] != traj.shape[0])):
        raise ValueError(f"animate_sample: traj must be [N, T, D] and past [N, T_c, D]; got {list(traj.shape)}")
    full = traj if past is None else torch.cat([past, traj], 1)
    full = full.detach().cpu().numpy()
    Tc = 0 if past is None else past.shape[1]
    N, T = full.shape[:2]
    fig, ax = plt.subplots(figsize=(4, 4))
    lo, hi = full[..., :2].min((0, 1)), full[..., :2].max((0, 1))
    pad = 0.05 * (hi - lo).max() + 1e-6
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    colours = plt.get_cmap("tab10")(np.arange(N) % 10)
    trails = [ax.plot([], [], lw=1.2, color=colours[a])[0] for a in range(N)]
    dots = ax.scatter(full[:, 0, 0], full[:, 0, 1], c=colours, s=30)
    title = ax.set_title("")

    def frame(t: int):
        for a in range(N):
            trails[a].set_data(full[a, : t + 1, 0], full[a, : t + 1, 1])
        dots.set_offsets(full[:, t, :2])
        dots.set_color("0.5" if t < Tc else colours)
        title.set_text(f"frame {t + 1}/{T}" + (" (observed)" if t < Tc else " (generated)"))
        return [*trails, dots, title]

    anim = FuncAnimation(fig, frame, frames=T, blit=False)
    anim.save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)
