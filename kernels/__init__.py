"""Message-passing kernels shared by every model of the project.

Gather/scatter primitives over edges (:mod:`geomanip.kernels.scatter`), rotation utilities
(:mod:`geomanip.kernels.rotation`), the geometry of position-orientation space
(:mod:`geomanip.kernels.fiber_geometry`), and layers: the E(n)-equivariant :class:`EGNNConv`, the
position-orientation convolution :class:`FiberConv` with its :class:`PolynomialBasis` and residual
:class:`FiberBlock`, and :class:`HeteroConv`, one convolution per edge type. ``policies`` and ``motion`` build on
these; ``kernels`` imports neither. On CUDA, :class:`EGNNConv` and :class:`FiberConv` run their message passing as
fused Triton kernels (:mod:`geomanip.kernels.fused_egnn`, :mod:`geomanip.kernels.fused_fiber`; Triton is optional and
imported only then); an :class:`EdgeLayout` holds a graph's destination-sorted edges for them, built once per graph,
and :mod:`geomanip.kernels.backend` (:func:`set_backend`) chooses or forces either path.
:mod:`geomanip.kernels.reference` holds straightforward PyG ``MessagePassing`` versions of the same maths, used by
the tests and benchmarks to check and time the fast paths."""

from geomanip.kernels.backend import set_backend
from geomanip.kernels.edge_layout import EdgeLayout
from geomanip.kernels.egnn_conv import EGNNConv
from geomanip.kernels.fiber_block import ConvNeXtMLP, FiberBlock
from geomanip.kernels.fiber_conv import FiberConv
from geomanip.kernels.fiber_geometry import (
    circle_grid,
    fibonacci_sphere,
    lift_scalars,
    lift_vectors,
    offset_invariants,
    orientation_invariants,
    polynomial_features,
    polynomial_rows_,
    readout_scalars,
    readout_vectors,
    ring_grid,
    spatial_invariants,
)
from geomanip.kernels.hetero_conv import EdgeType, HeteroConv
from geomanip.kernels.polynomial_basis import PolynomialBasis
from geomanip.kernels.rotation import (
    axis_angle_to_matrix,
    chordal_mean,
    icosahedral_group,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    random_rotation,
    rotation_2d,
)
from geomanip.kernels.scatter import (
    check_edge_index,
    gather,
    in_degree,
    scatter_max,
    scatter_mean,
    scatter_softmax,
    scatter_sum,
)

__all__ = [
    "EdgeLayout",
    "set_backend",
    "EGNNConv",
    "ConvNeXtMLP",
    "FiberBlock",
    "FiberConv",
    "PolynomialBasis",
    "HeteroConv",
    "EdgeType",
    "circle_grid",
    "fibonacci_sphere",
    "lift_scalars",
    "lift_vectors",
    "offset_invariants",
    "orientation_invariants",
    "polynomial_features",
    "polynomial_rows_",
    "readout_scalars",
    "readout_vectors",
    "ring_grid",
    "spatial_invariants",
    "axis_angle_to_matrix",
    "chordal_mean",
    "icosahedral_group",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "random_rotation",
    "rotation_2d",
    "check_edge_index",
    "gather",
    "in_degree",
    "scatter_max",
    "scatter_mean",
    "scatter_softmax",
    "scatter_sum",
]
