"""Forward+backward time of the message-passing kernels against PyG ``MessagePassing`` versions.

Run: ``python -m benchmarks.kernels`` (add ``--device cuda`` on a GPU machine, ``--quick`` for a short run).

For each graph size and layer, both paths get the same weights and inputs; the script checks that their
outputs agree, then times forward+backward of a scalar loss and prints the median times and the speed
ratio (PyG time / ours; above 1 means ours is faster). Graphs are random with uniformly drawn endpoints.

On CUDA a second table (``--gpu-sizes``, ``--gpu-hidden``; skipped on the CPU) times four versions of each
layer with the same weights: our PyTorch path (``backend="torch"``), the fused Triton path
(``backend="triton"``, with a prebuilt :class:`~geomanip.kernels.EdgeLayout`), the PyG ``MessagePassing`` reference and
``torch.compile`` of our PyTorch path; ``--end-to-end`` adds one HEPi PPO update and one EqMotion training
step with each path.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch_geometric.utils import scatter as pyg_scatter

from geomanip.kernels import (
    EdgeLayout,
    EGNNConv,
    FiberBlock,
    PolynomialBasis,
    fibonacci_sphere,
    orientation_invariants,
    scatter_sum,
    set_backend,
    spatial_invariants,
)
from geomanip.kernels.reference import EGNNReference, FiberBlockReference

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


@dataclass
class GpuCase:
    name: str
    fns: dict[str, Callable[[], Output]]  # "torch", "fused", "PyG", "compile"
    params: list[torch.Tensor]


def _on(layer: torch.nn.Module, backend: str, call: Callable[[], Output]) -> Callable[[], Output]:
    def run() -> Output:
        layer.backend = backend
        return call()

    return run


def make_gpu_cases(n: int, e: int, hidden: int, device: torch.device, directions: int) -> list[GpuCase]:
    """EGNN (plain, and EqMotion-like) and fiber layers in four versions with the same weights."""
    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, n, (2, e), generator=g).to(device)
    layout = EdgeLayout.build(edge_index, n)  # once per graph, as the caller would cache it
    cases = []
    for C, att, edge_dim in ((1, "none", 0), (4, "gate", 2)):
        layer = EGNNConv(hidden, hidden, vector_channels=C, attention=att, edge_dim=edge_dim, tanh=att == "gate")
        layer = layer.to(device)
        twin = copy.deepcopy(layer)  # torch.compile gets its own copy: same weights, backend fixed to "torch"
        twin.backend = "torch"
        compiled = torch.compile(twin)
        ref = EGNNReference(layer)
        h = torch.randn(n, hidden, generator=g).to(device).requires_grad_()
        x = torch.randn(n, C, 3, generator=g).to(device).requires_grad_()
        ea = torch.rand(e, edge_dim, generator=g).to(device).requires_grad_() if edge_dim else None
        fns = {
            "torch": _on(layer, "torch", lambda layer=layer, h=h, x=x, ea=ea: layer(h, x, layout, ea)),
            "fused": _on(layer, "triton", lambda layer=layer, h=h, x=x, ea=ea: layer(h, x, layout, ea)),
            "PyG": lambda ref=ref, h=h, x=x, ea=ea: ref(h, x, edge_index, ea),
            "compile": lambda compiled=compiled, h=h, x=x, ea=ea: compiled(h, x, edge_index, ea),
        }
        params = [h, x, *layer.parameters(), *twin.parameters()] + ([ea] if ea is not None else [])
        cases.append(GpuCase(f"EGNNConv C={C} att={att}", fns, params))

    grid = fibonacci_sphere(directions, device=device)
    pos = torch.randn(n, 3, generator=g).to(device)
    with torch.no_grad():
        sb = PolynomialBasis(2, hidden).to(device)(spatial_invariants(pos, pos, edge_index, grid))
        fb = PolynomialBasis(1, hidden).to(device)(orientation_invariants(grid))
    sb.requires_grad_()
    fb.requires_grad_()
    block = FiberBlock(hidden, hidden, layer_scale=1.0).to(device)
    twin = copy.deepcopy(block)
    twin.conv.backend = "torch"
    compiled = torch.compile(twin)
    ref_block = FiberBlockReference(block)
    f = torch.randn(n, directions, hidden, generator=g).to(device).requires_grad_()
    fns = {
        "torch": _on(block.conv, "torch", lambda: block(f, layout, sb, fb)),
        "fused": _on(block.conv, "triton", lambda: block(f, layout, sb, fb)),
        "PyG": lambda: ref_block(f, edge_index, sb, fb),
        "compile": lambda: compiled(f, edge_index, sb, fb),
    }
    cases.append(GpuCase(f"FiberBlock O={directions}", fns, [f, sb, fb, *block.parameters(), *twin.parameters()]))
    return cases


def _cell(t: float | str, width: int) -> str:
    return f"{t:{width}.2f}" if isinstance(t, float) else f"{t:>{width}}"


def _ratio(a: float | str, b: float | str) -> str:
    return f"{a / b:.2f}x" if isinstance(a, float) and isinstance(b, float) else "-"


def gpu_table(args: argparse.Namespace, device: torch.device) -> None:
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.gpu_sizes.split(",")]
    print(f"\nGPU: {torch.cuda.get_device_name(device)}, float32, fiber grid {args.directions} directions")
    header = (
        f"{'nodes/edges':>14} | {'H':>3} | {'layer':<22} | {'torch ms':>9} | {'fused ms':>9} | {'PyG ms':>9} | "
        f"{'compile ms':>10} | {'PyG/fused':>9} | {'torch/fused':>11} | fused-torch |diff|"
    )
    print(header)
    print("-" * len(header))
    for n, e in sizes:
        for hidden in [int(v) for v in args.gpu_hidden.split(",")]:
            try:
                cases = make_gpu_cases(n, e, hidden, device, args.directions)
            except torch.cuda.OutOfMemoryError:
                print(f"{f'{n}/{e}':>14} | {hidden:>3} | out of memory building the inputs", flush=True)
                torch.cuda.empty_cache()
                continue
            for case in cases:
                times: dict[str, float | str] = {}
                diff = float("nan")
                try:
                    with torch.no_grad():
                        diff = max_abs_diff(case.fns["fused"](), case.fns["torch"]())
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                for key, fn in case.fns.items():
                    try:  # each version alone, so that one running out of memory or failing to compile is one cell
                        times[key] = time_fwd_bwd([fn], case.params, device, args.gpu_repeats, warmup=3)[0]
                    except torch.cuda.OutOfMemoryError:
                        times[key] = "OOM"
                    except Exception as err:  # torch.compile can fail on a custom autograd Function
                        times[key] = "fail"
                        print(f"  {case.name} {key}: {type(err).__name__}: {str(err)[:200]}", flush=True)
                    torch.cuda.empty_cache()

                print(
                    f"{f'{n}/{e}':>14} | {hidden:>3} | {case.name:<22} | {_cell(times['torch'], 9)} | "
                    f"{_cell(times['fused'], 9)} | {_cell(times['PyG'], 9)} | {_cell(times['compile'], 10)} | "
                    f"{_ratio(times['PyG'], times['fused']):>9} | {_ratio(times['torch'], times['fused']):>11} | "
                    f"{diff:.1e}",
                    flush=True,
                )
            del cases
            torch.cuda.empty_cache()


def end_to_end(device: torch.device, repeats: int, quick: bool = False) -> None:
    """One HEPi PPO update (``PPO.train``) and one EqMotion training step, with each path (``quick``: tiny)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from geomanip import envs  # noqa: F401  (registers the environments)
    from geomanip.motion import EqMotion
    from geomanip.policies import make_policy

    print("\nEnd to end, median of", repeats, "runs (ms)")
    n_envs, n_steps, batch, scenes = (2, 32, 32, 8) if quick else (8, 256, 512, 100)
    venv = make_vec_env("RigidInsertion-v0", n_envs, seed=0, env_kwargs={"shape": "train"})
    policy, kwargs = make_policy("hepi", venv.envs[0], hidden=64)
    model = PPO(
        policy, venv, n_steps=n_steps, batch_size=batch, n_epochs=4, policy_kwargs=kwargs, device=device, seed=0
    )
    model.learn(total_timesteps=n_envs * n_steps)  # fills the rollout buffer

    def ppo_update() -> None:
        model.train()

    eq = EqMotion(past_frames=10, future_frames=20).to(device)
    opt = torch.optim.Adam(eq.parameters(), lr=1e-4)
    past, future = torch.randn(scenes, 5, 10, 3, device=device), torch.randn(scenes, 5, 20, 3, device=device)

    def eq_step() -> None:
        opt.zero_grad()
        loss = (eq(past)[:, :, 0] - future).square().mean()
        loss.backward()
        opt.step()

    for name, fn, net in (
        (f"HEPi PPO update ({n_envs * n_steps} samples, 4 epochs, batch {batch})", ppo_update, model.policy),
        (f"EqMotion step ({scenes} scenes x 5 agents)", eq_step, eq),
    ):
        row = []
        for backend in ("torch", "triton"):
            set_backend(net, backend)
            runs = []
            for i in range(repeats + 2):
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                if i >= 2:
                    runs.append((time.perf_counter() - t0) * 1e3)
            row.append(statistics.median(runs))
        print(f"{name:<52} | torch {row[0]:9.2f} | fused {row[1]:9.2f} | torch/fused {row[0] / row[1]:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="1000x20000,10000x200000", help="comma-separated NODESxEDGES")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--directions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs at the smallest size (fewer when larger)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    parser.add_argument("--gpu-sizes", default="10000x200000,100000x2000000", help="sizes of the GPU table")
    parser.add_argument("--gpu-hidden", default="64,128", help="hidden sizes of the GPU table")
    parser.add_argument("--gpu-repeats", type=int, default=20)
    parser.add_argument("--no-gpu-table", action="store_true", help="on CUDA, only the PyG comparison table")
    parser.add_argument("--end-to-end", action="store_true", help="on CUDA, HEPi PPO update and EqMotion step")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = "200x2000", 3
        args.gpu_sizes, args.gpu_hidden, args.gpu_repeats = "2000x20000", "64", 3
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
    if device.type != "cuda":
        print("\n(GPU table and end-to-end rows skipped: no CUDA device)")
        return
    if not args.no_gpu_table:
        gpu_table(args, device)
    if args.end_to_end:
        end_to_end(device, repeats=2 if args.quick else 5, quick=args.quick)


if __name__ == "__main__":
    main()
