import pytest
import torch
from torch_geometric.utils import scatter as pyg_scatter
from torch_geometric.utils import softmax as pyg_softmax

from geomanip.kernels import (
    check_edge_index,
    gather,
    in_degree,
    scatter_max,
    scatter_mean,
    scatter_softmax,
    scatter_sum,
)


def _naive(src, index, n, reduce):
    out = torch.zeros(n, *src.shape[1:], dtype=src.dtype)
    for i in range(n):
        rows = src[index == i]
        if len(rows):
            out[i] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.max(0).values}[reduce]
    return out


@pytest.mark.parametrize("fn,reduce", [(scatter_sum, "sum"), (scatter_mean, "mean"), (scatter_max, "max")])
def test_reductions_match_a_loop_and_leave_empty_nodes_zero(fn, reduce):
    src = torch.randn(40, 3, 2, dtype=torch.float64)
    index = torch.randint(0, 6, (40,))
    index[index == 4] = 5  # node 4 gets no edge
    out = fn(src, index, 7)
    assert out.shape == (7, 3, 2)
    torch.testing.assert_close(out, _naive(src, index, 7, reduce))
    assert out[4].abs().max() == 0 and out[6].abs().max() == 0


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_reductions_match_pyg(reduce):
    src = torch.randn(500, 8)
    index = torch.randint(0, 50, (500,))
    fn = {"sum": scatter_sum, "mean": scatter_mean, "max": scatter_max}[reduce]
    torch.testing.assert_close(fn(src, index, 50), pyg_scatter(src, index, 0, 50, reduce=reduce))


def test_softmax_normalises_per_destination_and_matches_pyg():
    src = torch.randn(300, 4, dtype=torch.float64) * 30  # large logits: the max shift must keep it finite
    index = torch.randint(0, 20, (300,))
    out = scatter_softmax(src, index, 20)
    assert torch.isfinite(out).all()
    sums = scatter_sum(out, index, 20)
    present = in_degree(index, 20, torch.float64) > 0
    torch.testing.assert_close(sums[present], torch.ones_like(sums[present]))
    torch.testing.assert_close(out, pyg_softmax(src, index, num_nodes=20))


@pytest.mark.parametrize("fn", [scatter_sum, scatter_mean, scatter_softmax])
def test_gradcheck(fn):
    src = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 1, 1, 2, 2, 2, 4, 4, 0, 1, 2, 4])
    assert torch.autograd.gradcheck(lambda s: fn(s, index, 5), (src,))


def test_max_gradcheck_without_ties():
    src = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 1, 1, 2, 2, 2, 4, 4, 0, 1, 2, 4])
    assert torch.autograd.gradcheck(lambda s: scatter_max(s, index, 5), (src,))


def test_gather_and_its_backward():
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([4, 0, 0, 3])
    torch.testing.assert_close(gather(x, idx), x.detach()[idx])
    assert torch.autograd.gradcheck(lambda t: gather(t, idx), (x,))


def test_dim_size_is_inferred():
    out = scatter_sum(torch.ones(3, 1), torch.tensor([0, 2, 2]))
    torch.testing.assert_close(out, torch.tensor([[1.0], [0.0], [2.0]]))


@pytest.mark.parametrize(
    "src,index,dim_size,match",
    [
        (torch.ones(3, 2), torch.tensor([0, 1]), 4, "3 rows but index has 2"),
        (torch.ones(3, 2), torch.tensor([0, 1, 4]), 4, r"outside \[0, 4\)"),
        (torch.ones(3, 2), torch.tensor([0, -1, 1]), 4, r"outside \[0, 4\)"),
        (torch.ones(3, 2), torch.tensor([[0, 1, 1]]), 4, "1-D"),
        (torch.ones(3, 2), torch.tensor([0.0, 1.0, 1.0]), 4, "int64 or int32"),
    ],
)
def test_bad_inputs_raise(src, index, dim_size, match):
    for fn in (scatter_sum, scatter_mean, scatter_max, scatter_softmax):
        with pytest.raises(ValueError, match=match):
            fn(src, index, dim_size)


def test_gather_out_of_range_raises():
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        gather(torch.ones(3, 2), torch.tensor([0, 3]))


@pytest.mark.parametrize(
    "edge_index,match",
    [
        (torch.zeros(3, 4, dtype=torch.long), r"shape \[2, E\]"),
        (torch.zeros(2, 4), "int64 or int32"),
        (torch.tensor([[0, 5], [1, 1]]), "source index 5 out of range for 5"),
        (torch.tensor([[0, 1], [1, 3]]), "destination index 3 out of range for 3"),
        (torch.tensor([[0, -1], [1, 1]]), "negative"),
    ],
)
def test_check_edge_index(edge_index, match):
    with pytest.raises(ValueError, match=match):
        check_edge_index(edge_index, 5, 3)
