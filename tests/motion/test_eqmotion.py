import pytest
import torch

from geomanip.motion import EqMotion
from geomanip.motion.eqmotion import complete_edges, radius_edges
from tests.geometry import assert_close, random_orthogonal


def _model(**kw):
    torch.manual_seed(0)
    return EqMotion(past_frames=6, future_frames=4, hidden_channels=16, vector_channels=8, num_layers=2, **kw).double()


@pytest.mark.parametrize("dim,reflect", [(3, False), (3, True), (2, False), (2, True)])
def test_e_n_equivariance_with_padding(dim, reflect):
    model = _model(modes=3)
    past = torch.randn(3, 5, 6, dim, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    Q, t = random_orthogonal(dim, reflect), torch.randn(dim, dtype=torch.float64) * 3
    out = model(past, mask)
    assert out.shape == (3, 5, 3, 4, dim)
    moved = model(past @ Q.T + t, mask)
    assert_close(moved[mask], (out @ Q.T + t)[mask])


def test_permutation_equivariance_and_padding_does_not_leak():
    model = _model()
    past = torch.randn(2, 5, 6, 3, dtype=torch.float64)
    perm = torch.randperm(5)
    assert_close(model(past[:, perm]), model(past)[:, perm])
    mask = torch.tensor([[1, 1, 1, 0, 0]] * 2, dtype=torch.bool)
    garbage = past.clone()
    garbage[:, 3:] = 1e3
    assert_close(model(garbage, mask)[:, :3], model(past, mask)[:, :3])
    assert_close(model(past[:, :3]), model(past, mask)[:, :3])


def test_agents_interact():
    model = _model()
    past = torch.randn(1, 4, 6, 3, dtype=torch.float64)
    moved = past.clone()
    moved[0, 3] += torch.randn(6, 3, dtype=torch.float64)
    assert (model(moved)[0, 0] - model(past)[0, 0]).abs().max() > 1e-6


def test_complete_edges():
    ei = complete_edges(torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    pairs = set(map(tuple, ei.T.tolist()))
    assert pairs == {(1, 0), (0, 1), (3, 4), (3, 5), (4, 3), (4, 5), (5, 3), (5, 4)}


def test_radius_edges_join_exactly_the_close_valid_pairs_and_are_invariant():
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(3, 7, 2, generator=gen, dtype=torch.float64) * 10
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    pairs = set(map(tuple, radius_edges(pos, mask, 4.0).T.tolist()))
    expected = {
        (b * 7 + j, b * 7 + i)
        for b in range(3)
        for i in range(7)
        for j in range(7)
        if i != j and mask[b, i] and mask[b, j] and (pos[b, i] - pos[b, j]).norm() <= 4.0
    }
    assert pairs == expected and 0 < len(expected) < len(set(map(tuple, complete_edges(mask).T.tolist())))
    Q, t = random_orthogonal(2, True), torch.randn(2, dtype=torch.float64)
    assert torch.equal(radius_edges(pos @ Q.T + t, mask, 4.0), radius_edges(pos, mask, 4.0))
    # With a radius larger than the scene, the graph is the complete one.
    assert torch.equal(radius_edges(pos, mask, 100.0), complete_edges(mask))


@pytest.mark.parametrize("reflect", [False, True])
def test_e2_equivariance_on_the_radius_graph(reflect):
    # As trained with --interaction-radius: the graph is rebuilt from the moved input.
    model = _model(modes=2)
    past = torch.rand(2, 6, 6, 2, dtype=torch.float64) * 8
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    Q, t = random_orthogonal(2, reflect), torch.randn(2, dtype=torch.float64) * 3
    moved = past @ Q.T + t
    out = model(past, mask, edge_index=radius_edges(past[:, :, -1], mask, 3.0))
    out_moved = model(moved, mask, edge_index=radius_edges(moved[:, :, -1], mask, 3.0))
    assert_close(out_moved[mask], (out @ Q.T + t)[mask])


def test_defaults_construct_and_bad_inputs_raise():
    model = EqMotion()
    assert model(torch.randn(2, 5, 10, 3)).shape == (2, 5, 1, 20, 3)
    with pytest.raises(ValueError, match=r"\[B, N, 10, D\]"):
        model(torch.randn(2, 5, 8, 3))
    with pytest.raises(ValueError, match="mask must have shape"):
        model(torch.randn(2, 5, 10, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((1, 2, 10, 3), float("nan")))
