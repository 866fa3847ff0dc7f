"""The fused Triton path of EGNNConv and FiberConv against the PyTorch path, plus backend choice and EdgeLayout.

On the CPU the fused kernels run under Triton's interpreter, in a child pytest process started with
``TRITON_INTERPRET=1`` (:func:`test_triton_interpreter_runs_the_fused_tests`). Why a child process: Triton's own
library functions (``tl.sum``, ...) are compiled or interpreted depending on that variable when ``triton`` is
first imported, and ``torch_geometric`` imports ``triton`` as soon as any test imports it; setting the variable
later in this process is too late. In this process the ``test_fused_*`` cases therefore skip on the CPU (they
run on a GPU, or here under ``TRITON_INTERPRET=1 pytest tests/kernels/test_fused.py``). The interpreter
executes every program instance in Python, so the graphs are tiny. On a CUDA machine the same comparisons also
run at full size (``benchmarks/gpu_check.sh``).
"""

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import torch

from geomanip.kernels import EdgeLayout, EGNNConv, FiberConv, HeteroConv, set_backend
from geomanip.kernels.backend import BACKEND_ENV, resolve_backend, triton_available, triton_interpreting
from tests.geometry import assert_close

ROOT = Path(__file__).resolve().parents[2]
CUDA = torch.cuda.is_available()
# Whether this process was started under the interpreter (before anything imported triton).
INTERPRETING = triton_interpreting()
IN_CHILD = "on the CPU these run in a child process under TRITON_INTERPRET=1 (test_triton_interpreter_runs_...)"


@cache
def _interpreter_problem() -> str | None:
    """Why Triton's interpreter cannot run kernels here, or None when it can (probed with a trivial kernel)."""
    if not triton_available():
        return "triton is not installed (pip install triton, or the test extra)"
    try:
        import triton
        import triton.language as tl

        def double(X, N, BLOCK: tl.constexpr):
            # tl.sum is one of Triton's library functions, interpreted only if triton was imported under it.
            i = tl.arange(0, BLOCK)
            v = tl.load(X + i, mask=i < N, other=0.0)
            tl.store(X + i, v * 2 + tl.sum(v * 0, axis=0), mask=i < N)

        x = torch.ones(3)
        triton.jit(double)[(1,)](x, 3, BLOCK=4)
        return None if torch.equal(x, torch.full((3,), 2.0)) else "the interpreter computed a wrong result"
    except Exception as err:  # any failure of the probe means the interpreter is unusable here
        return f"Triton's interpreter cannot run here: {type(err).__name__}: {err}"


@pytest.fixture
def device():
    """Where the fused kernels run: the GPU if there is one, else the CPU when under Triton's interpreter."""
    if CUDA:
        return torch.device("cuda")
    if not INTERPRETING:
        pytest.skip(IN_CHILD)
    problem = _interpreter_problem()
    if problem:
        pytest.skip(problem)
    return torch.device("cpu")


@pytest.mark.skipif(CUDA or INTERPRETING, reason="the fused tests run in this process (GPU or interpreter)")
def test_triton_interpreter_runs_the_fused_tests():
    if not triton_available():
        pytest.skip("triton is not installed (pip install triton, or the test extra)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", __file__, "-k", "test_fused_"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    out = result.stdout + result.stderr
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", out)) else 0
    if result.returncode == 0 and passed == 0 and "skipped" in out:
        reasons = [line for line in out.splitlines() if line.startswith("SKIPPED")]
        pytest.skip(f"the interpreter could not run the fused tests: {reasons[:1]}")
    assert result.returncode == 0, out[-6000:]
    assert passed >= 11 and "skipped" not in out, out[-3000:]


def _grads(outs, inputs):
    loss = sum((o.float() * o.float()).sum() for o in outs)
    return torch.autograd.grad(loss, inputs, allow_unused=True)


def _both_paths(layer, call, inputs):
    """Outputs and gradients (wrt ``inputs``) of ``call()`` on the PyTorch path and on the fused path."""
    results = []
    for backend in ("torch", "triton"):
        layer.backend = backend
        outs = call()
        outs = outs if isinstance(outs, tuple) else (outs,)
        results.append((outs, _grads(outs, inputs)))
    return results


def _assert_match(results, rtol, atol, grad_rtol=None):
    """Outputs to ``rtol``/``atol``; gradients (sums over many edges, in another order) to ``grad_rtol`` of
    their largest entry when given, else like the outputs."""
    (outs_t, grads_t), (outs_f, grads_f) = results
    for a, b in zip(outs_f, outs_t, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol)
    for k, (a, b) in enumerate(zip(grads_f, grads_t, strict=True)):
        assert (a is None) == (b is None), f"gradient {k} exists on one path only"
        if a is not None:
            r, t = (rtol, atol) if grad_rtol is None else (grad_rtol, grad_rtol * b.abs().max().item())
            torch.testing.assert_close(a.float(), b.float(), rtol=r, atol=t, msg=lambda m, k=k: f"grad {k}: {m}")


# ----- EGNN -------------------------------------------------------------------------------------------------

EGNN_CONFIGS = [
    dict(c=1),
    # EqMotion's configuration: several channels, edge attributes, gated messages, tanh coordinate weights.
    dict(c=3, attention="gate", edge_dim=2, tanh=True),
    # Padding of every block: hidden 20, 17 channels (> 16), planar coordinates, no normalisation, sums.
    dict(c=17, hidden=20, d=2, norm_constant=None, coord_aggr="sum", residual=False),
    dict(c=2, update_coords=False),
]


def _egnn(device, dtype=torch.float32, hidden=16, c=1, **kw):
    layer = EGNNConv(8, hidden, vector_channels=c, **kw).to(device, dtype)
    if layer.update_coords:
        # Default init makes coordinate steps tiny (gain 1e-3); large ones make the comparison meaningful.
        torch.nn.init.normal_(layer.coord_lin2.weight, std=0.3)
    return layer


def _egnn_inputs(layer, device, n=10, e=70, d=3, dtype=torch.float32):
    # 70 edges: three blocks of 32 for two programs on the CPU, so programs loop and their partial sums add up.
    g = torch.Generator().manual_seed(1)
    h = torch.randn(n, 8, generator=g).to(device, dtype).requires_grad_()
    x = torch.randn(n, layer.vector_channels, d, generator=g).to(device, dtype).requires_grad_()
    ei = torch.randint(0, n, (2, e), generator=g).to(device)
    ea = torch.rand(e, layer.edge_dim, generator=g).to(device, dtype).requires_grad_() if layer.edge_dim else None
    return h, x, ei, ea


@pytest.mark.parametrize("cfg", EGNN_CONFIGS)
def test_fused_egnn_matches_torch_path_in_float32(device, cfg):
    cfg = dict(cfg)
    d = cfg.pop("d", 3)
    layer = _egnn(device, **cfg)
    h, x, ei, ea = _egnn_inputs(layer, device, d=d)
    layout = EdgeLayout.build(ei, h.size(0))
    inputs = [h, x, *layer.parameters()] + ([ea] if ea is not None else [])
    results = _both_paths(layer, lambda: layer(h, x, layout, ea), inputs)
    _assert_match(results, rtol=1e-5, atol=1e-5, grad_rtol=1e-5)
    if layer.update_coords:
        assert (results[1][0][1] - (0 if not layer.residual else x)).abs().max() > 1e-2  # coordinates moved


def test_fused_egnn_bipartite_with_isolated_nodes_self_loops_and_a_plain_edge_index(device):
    layer = _egnn(device, c=2, attention="gate")
    g = torch.Generator().manual_seed(2)
    h_s, x_s = torch.randn(7, 8, generator=g).to(device), torch.randn(7, 2, 3, generator=g).to(device)
    h_d, x_d = torch.randn(5, 8, generator=g).to(device), torch.randn(5, 2, 3, generator=g).to(device)
    for t in (h_s, x_s, h_d, x_d):
        t.requires_grad_()
    # Destination 4 gets no edge; (2 -> 2) joins coincident points when x_s[2] = x_d[2].
    ei = torch.tensor([[0, 1, 2, 3, 6, 5, 2, 0], [1, 1, 2, 0, 3, 2, 0, 3]], device=device)
    with torch.no_grad():
        x_s[2] = x_d[2]
    inputs = [h_s, x_s, h_d, x_d, *layer.parameters()]
    results = _both_paths(layer, lambda: layer((h_s, h_d), (x_s, x_d), ei), inputs)  # builds the layout per call
    _assert_match(results, rtol=1e-5, atol=1e-5)
    assert all(torch.isfinite(gr).all() for gr in results[1][1])
    assert_close(results[1][0][1][4].double(), x_d[4].detach().double())  # the isolated node keeps its place


def test_fused_egnn_without_edges(device):
    layer = _egnn(device, c=1)
    h, x = torch.randn(4, 8, device=device), torch.randn(4, 1, 3, device=device)
    ei = torch.zeros(2, 0, dtype=torch.long, device=device)
    results = _both_paths(layer, lambda: layer(h, x, ei), [*layer.parameters()])
    _assert_match(results, rtol=1e-6, atol=1e-6)


def test_fused_egnn_in_bfloat16_stays_close_to_float32(device):
    # bfloat16 has 8 significant bits: compare with the float32 result on the same (rounded) inputs and weights.
    layer = _egnn(device, c=3, attention="gate", edge_dim=2, tanh=True).to(torch.bfloat16)
    h, x, ei, ea = _egnn_inputs(layer, device, dtype=torch.bfloat16)
    layer.backend = "triton"
    out = layer(h, x, ei, ea)
    assert out[0].dtype == torch.bfloat16 and out[1].dtype == torch.bfloat16
    grads = _grads(out, [h, x, layer.edge_lin2.weight])
    ref = _egnn(device, c=3, attention="gate", edge_dim=2, tanh=True)
    ref.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    ref.backend = "torch"
    h32, x32, ea32 = (t.detach().float().requires_grad_() for t in (h, x, ea))
    out32 = ref(h32, x32, ei, ea32)
    grads32 = _grads(out32, [h32, x32, ref.edge_lin2.weight])
    for a, b in zip(out + grads, out32 + grads32, strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b, rtol=3e-2, atol=3e-2 * b.abs().max().item())


# ----- FiberConv --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_fused_fiber_conv_matches_torch_path_in_float32(device, aggr):
    n, e, O, C, B = 10, 70, 4, 6, 8  # C and B below the kernels' block of 16: padded; three edge blocks
    conv = FiberConv(C, 5, B, aggr=aggr).to(device)
    g = torch.Generator().manual_seed(3)
    f = torch.randn(n, O, C, generator=g).to(device).requires_grad_()
    sb = torch.randn(e, O, B, generator=g).to(device).requires_grad_()
    fb = torch.randn(O, O, B, generator=g).to(device).requires_grad_()
    layout = EdgeLayout.build(torch.randint(0, n, (2, e), generator=g).to(device), n)
    results = _both_paths(conv, lambda: conv(f, layout, sb, fb), [f, sb, fb, *conv.parameters()])
    _assert_match(results, rtol=1e-5, atol=1e-5, grad_rtol=1e-5)


def test_fused_fiber_conv_bipartite_and_only_the_gradients_asked_for(device):
    conv = FiberConv(16, 16, 16, aggr="mean").to(device)
    g = torch.Generator().manual_seed(4)
    f_src = torch.randn(9, 8, 16, generator=g).to(device).requires_grad_()
    f_dst = torch.randn(3, 8, 16, generator=g).to(device)
    sb = torch.randn(40, 8, 16, generator=g).to(device)  # no gradient wanted for the basis
    fb = torch.randn(8, 8, 16, generator=g).to(device)
    ei = torch.stack([torch.randint(0, 9, (40,), generator=g), torch.randint(0, 3, (40,), generator=g)]).to(device)
    layout = EdgeLayout.build(ei, 9, 3)
    results = _both_paths(conv, lambda: conv((f_src, f_dst), layout, sb, fb), [f_src, *conv.parameters()])
    _assert_match(results, rtol=1e-5, atol=1e-5)
    assert sb.grad is None


def test_fused_fiber_conv_in_bfloat16_stays_close_to_float32(device):
    n, e, O, C = 10, 40, 4, 16
    conv = FiberConv(C, C, C, backend="triton").to(device, torch.bfloat16)
    g = torch.Generator().manual_seed(5)
    f, sb, fb = (torch.randn(*s, generator=g).to(device, torch.bfloat16) for s in ((n, O, C), (e, O, C), (O, O, C)))
    ei = torch.randint(0, n, (2, e), generator=g).to(device)
    sb.requires_grad_()
    out = conv(f, ei, sb, fb)
    (g_sb,) = _grads((out,), [sb])
    ref = FiberConv(C, C, C, backend="torch").to(device)
    ref.load_state_dict({k: v.float() for k, v in conv.state_dict().items()})
    sb32 = sb.detach().float().requires_grad_()
    out32 = ref(f.float(), ei, sb32, fb.float())
    (g_sb32,) = _grads((out32,), [sb32])
    for a, b in ((out, out32), (g_sb, g_sb32)):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b, rtol=3e-2, atol=3e-2 * b.abs().max().item())


# ----- At full size on a GPU --------------------------------------------------------------------------------


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on one)")
@pytest.mark.parametrize("hidden", [64, 128])
def test_full_size_on_gpu(hidden):
    torch.manual_seed(0)
    n, e, dev = 10_000, 200_000, torch.device("cuda")
    ei = torch.randint(0, n, (2, e), device=dev)
    layout = EdgeLayout.build(ei, n)
    for cfg in (dict(c=1), dict(c=4, attention="gate", edge_dim=2, tanh=True)):
        layer = _egnn(dev, hidden=hidden, **cfg)
        h, x, _, ea = _egnn_inputs(layer, dev, n=n, e=e)
        inputs = [h, x, *layer.parameters()] + ([ea] if ea is not None else [])
        results = _both_paths(layer, lambda layer=layer, h=h, x=x, ea=ea: layer(h, x, layout, ea), inputs)
        _assert_match(results, rtol=1e-5, atol=1e-5, grad_rtol=1e-4)
    conv = FiberConv(hidden, hidden, hidden, aggr="mean").to(dev)
    f = torch.randn(n, 16, hidden, device=dev, requires_grad=True)
    sb = torch.randn(e, 16, hidden, device=dev, requires_grad=True)
    fb = torch.randn(16, 16, hidden, device=dev, requires_grad=True)
    results = _both_paths(conv, lambda: conv(f, layout, sb, fb), [f, sb, fb, *conv.parameters()])
    _assert_match(results, rtol=1e-5, atol=1e-5, grad_rtol=1e-4)


# ----- Backend choice and EdgeLayout (no Triton needed) -----------------------------------------------------


def test_auto_uses_torch_on_cpu_and_unsupported_options(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", cpu, None, "L") == "torch"
    assert resolve_backend("auto", cuda, "attention='softmax'", "L") == "torch"
    assert resolve_backend("auto", cuda, None, "L") == ("triton" if triton_available() else "torch")
    assert resolve_backend("torch", cuda, None, "L") == "torch"
    monkeypatch.setenv(BACKEND_ENV, "torch")  # read at call time, overrides "auto" only
    assert resolve_backend("auto", cuda, None, "L") == "torch"
    monkeypatch.setenv(BACKEND_ENV, "cuda")
    with pytest.raises(ValueError, match=BACKEND_ENV):
        resolve_backend("auto", cpu, None, "L")


def test_deterministic_mode_keeps_auto_on_the_torch_path(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert resolve_backend("auto", torch.device("cuda"), None, "L") == "torch"
    finally:
        torch.use_deterministic_algorithms(before)


def test_forcing_triton_fails_loudly_where_it_cannot_run(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    layer = EGNNConv(4, 8, attention="softmax", backend="triton")
    args = (torch.randn(3, 4), torch.randn(3, 1, 3), torch.tensor([[0, 1], [1, 2]]))
    expected = NotImplementedError if triton_available() else RuntimeError
    with pytest.raises(expected, match="softmax" if triton_available() else "not installed"):
        layer(*args)
    layer = EGNNConv(4, 8, backend="triton")
    if triton_available():
        with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
            layer(*args)
    with pytest.raises(ValueError, match="backend must be one of"):
        EGNNConv(4, 8, backend="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        FiberConv(4, 4, 4, backend="fused")


def test_set_backend_reaches_every_layer_of_a_model():
    model = torch.nn.ModuleList([EGNNConv(4, 8), torch.nn.Sequential(FiberConv(4, 4, 4)), torch.nn.Linear(2, 2)])
    assert set_backend(model, "torch") is model
    assert [m.backend for m in model.modules() if hasattr(m, "backend")] == ["torch", "torch"]


def test_edge_layout_sorts_by_destination_and_gives_the_same_results_as_edge_index():
    ei = torch.tensor([[0, 3, 1, 2, 4, 0], [2, 0, 2, 1, 2, 0]])
    layout = EdgeLayout.build(ei, 5, 3)
    assert layout.dst.tolist() == [0, 0, 1, 2, 2, 2]
    assert layout.src.tolist() == [3, 0, 2, 0, 1, 4]  # stable: ties keep their original order
    assert torch.equal(ei[:, layout.perm], torch.stack([layout.src, layout.dst]).long())
    assert layout.degree.tolist() == [2.0, 1.0, 3.0] and layout.num_edges == 6
    assert layout.src.dtype == torch.int32 and layout.to("cpu").num_dst == 3

    layer = EGNNConv(4, 8, vector_channels=2, backend="torch").double()
    h_s, x_s = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 2, 3, dtype=torch.float64)
    h_d, x_d = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
    for a, b in zip(layer((h_s, h_d), (x_s, x_d), layout), layer((h_s, h_d), (x_s, x_d), ei), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="EdgeLayout was built for 5 source and 3 destination"):
        layer(h_s, x_s, layout)
    with pytest.raises(ValueError, match="source index 4 out of range"):
        EdgeLayout.build(ei, 4, 3)


def test_hetero_conv_passes_edge_layouts_through():
    convs = {("a", "r", "b"): FiberConv(4, 4, 4, backend="torch"), ("b", "s", "b"): FiberConv(4, 4, 4, backend="torch")}
    hetero = HeteroConv(convs).double()
    f = {"a": {"f": torch.randn(5, 3, 4, dtype=torch.float64)}, "b": {"f": torch.randn(2, 3, 4, dtype=torch.float64)}}
    edges = {("a", "r", "b"): torch.tensor([[0, 4, 2], [1, 0, 1]]), ("b", "s", "b"): torch.tensor([[0, 1], [1, 1]])}
    layouts = {et: EdgeLayout.build(ei, f[et[0]]["f"].size(0), f[et[2]]["f"].size(0)) for et, ei in edges.items()}
    edge_inputs = {et: {"spatial_basis": torch.randn(ei.size(1), 3, 4).double()} for et, ei in edges.items()}
    fb = torch.randn(3, 3, 4, dtype=torch.float64)
    out = hetero(f, layouts, edge_inputs, fiber_basis=fb)["b"]
    assert torch.equal(out, hetero(f, edges, edge_inputs, fiber_basis=fb)["b"])


def test_kernels_import_and_run_without_triton():
    # A process in which `import triton` fails, as on a machine without it: the layers use the PyTorch path.
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, kernels\n"
        "from kernels.backend import triton_available\n"
        "layer = kernels.EGNNConv(4, 8)\n"
        "h, x = layer(torch.randn(3, 4), torch.randn(3, 1, 3), torch.tensor([[0, 1], [1, 2]]))\n"
        "assert h.shape == (3, 4) and 'kernels.fused_egnn' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
