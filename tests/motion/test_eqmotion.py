import pytest
import torch

from geomanip.motion import EqMotion
from geomanip.motion.eqmotion import complete_edges
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


def test_defaults_construct_and_bad_inputs_raise():
    model = EqMotion()
    assert model(torch.randn(2, 5, 10, 3)).shape == (2, 5, 1, 20, 3)
    with pytest.raises(ValueError, match=r"\[B, N, 10, D\]"):
        model(torch.randn(2, 5, 8, 3))
    with pytest.raises(ValueError, match="mask must have shape"):
        model(torch.randn(2, 5, 10, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((1, 2, 10, 3), float("nan")))
