"""Forward+backward time of the message-passing kernels against PyG ``MessagePassing`` versions.

Run: ``python -m benchmarks.kernels`` (add ``--device cuda`` on a GPU machine, ``--quick`` for a short run).

For each graph size and layer, both paths get the same weights and inputs; the script checks that their
outputs agree, then times forward+backward of a scalar loss and prints the median times and the speed
ratio (PyG time / ours; above 1 means ours is faster). Graphs are random with uniformly drawn endpoints.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch_geometric.utils import scatter as pyg_scatter

from kernels import (
    EGNNConv,
    FiberBlock,
    PolynomialBasis,
    fibonacci_sphere,
    orientation_invariants,
    scatter_sum,
    spatial_invariants,
)
from kernels.reference import EGNNReference, FiberBlockReference

Output = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass
class Case:
    name: str
    ours: Callable[[], Output]
    ref: Callable[[], Output]
    params: list[torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_fwd_bwd(
    fns: list[Callable[[], Output]], params: list[torch.Tensor], device: torch.device, repeats: int, warmup: int
) -> list[float]:
    """Median wall time (ms) of forward+backward of a scalar loss of each ``fn()``.

    The functions run in turn within each repetition, so that drift of the machine's speed hits all alike.
    """
    times: list[list[float]] = [[] for _ in fns]
    for i in range(warmup + repeats):
        for k, fn in enumerate(fns):
            for p in params:
                p.grad = None
            _sync(device)
            t0 = time.perf_counter()
            _loss(fn()).backward()
            _sync(device)
            if i >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def _tuple(out: Output) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _loss(out: Output) -> torch.Tensor:
    return sum((o * o).mean() for o in _tuple(out))


def max_abs_diff(a: Output, b: Output) -> float:
    return max((x - y).abs().max().item() for x, y in zip(_tuple(a), _tuple(b), strict=True))


def make_cases(n: int, e: int, hidden: int, device: torch.device, directions: int) -> list[Case]:
    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, n, (2, e), generator=g).to(device)
    cases = []

    # Gather + scatter-sum primitive against PyG's scatter on the same gathered messages.
    feat = torch.randn(n, hidden, generator=g).to(device).requires_grad_()
    cases.append(
        Case(
            "gather+scatter_sum",
            lambda: scatter_sum(feat.index_select(0, edge_index[0]), edge_index[1], n),
            lambda: pyg_scatter(feat[edge_index[0]], edge_index[1], 0, n, reduce="sum"),
            [feat],
        )
    )

    # EGNN layer, plain (C = 1) and with 4 vector channels and gated messages (EqMotion-like).
    for C, att in ((1, "none"), (4, "gate")):
        layer = EGNNConv(hidden, hidden, vector_channels=C, attention=att).to(device)
        ref = EGNNReference(layer)
        h = torch.randn(n, hidden, generator=g).to(device).requires_grad_()
        x = torch.randn(n, C, 3, generator=g).to(device).requires_grad_()
        cases.append(
            Case(
                f"EGNNConv C={C} att={att}",
                lambda layer=layer, h=h, x=x: layer(h, x, edge_index),
                lambda ref=ref, h=h, x=x: ref(h, x, edge_index),
                [h, x, *layer.parameters()],
            )
        )

    # Fiber (R^3 x S^2) block on a 16-direction grid; the bases are computed once per network in practice,
    # so they are inputs here (with gradients, as in training).
    grid = fibonacci_sphere(directions, device=device)
    pos = torch.randn(n, 3, generator=g).to(device)
    spatial = PolynomialBasis(2, hidden).to(device)
    fiber = PolynomialBasis(1, hidden).to(device)
    with torch.no_grad():
        sb = spatial(spatial_invariants(pos, pos, edge_index, grid))
        fb = fiber(orientation_invariants(grid))
    sb.requires_grad_()
    fb.requires_grad_()
    block = FiberBlock(hidden, hidden, layer_scale=1.0).to(device)
    ref_block = FiberBlockReference(block)
    f = torch.randn(n, directions, hidden, generator=g).to(device).requires_grad_()
    cases.append(
        Case(
            f"FiberBlock O={directions}",
            lambda: block(f, edge_index, sb, fb),
            lambda: ref_block(f, edge_index, sb, fb),
            [f, sb, fb, *block.parameters()],
        )
    )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="1000x20000,10000x200000", help="comma-separated NODESxEDGES")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--directions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs at the smallest size (fewer when larger)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = "200x2000", 3
    device = torch.device(args.device)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}, float32, hidden {args.hidden}"
    )
    header = f"{'nodes/edges':>14} | {'layer':<26} | {'ours ms':>9} | {'PyG ms':>9} | {'PyG/ours':>8} | max |diff|"
    print(header)
    print("-" * len(header))
    base_edges = sizes[0][1]
    for n, e in sizes:
        repeats = max(3, args.repeats * base_edges // e)
        for case in make_cases(n, e, args.hidden, device, args.directions):
            with torch.no_grad():
                diff = max_abs_diff(case.ours(), case.ref())
            t_ours, t_ref = time_fwd_bwd([case.ours, case.ref], case.params, device, repeats, warmup=2)
            print(
                f"{f'{n}/{e}':>14} | {case.name:<26} | {t_ours:9.2f} | {t_ref:9.2f} | "
                f"{t_ref / t_ours:7.2f}x | {diff:.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
