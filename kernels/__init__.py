"""Message-passing kernels shared by every model of the project.

Gather/scatter primitives over edges (:mod:`kernels.scatter`), rotation utilities
(:mod:`kernels.rotation`), the geometry of position-orientation space (:mod:`kernels.fiber_geometry`), and
layers: the E(n)-equivariant :class:`EGNNConv`, the position-orientation convolution :class:`FiberConv`
with its :class:`PolynomialBasis` and residual :class:`FiberBlock`, and :class:`HeteroConv`, one
convolution per edge type. ``policies`` and ``motion`` build on these; ``kernels`` imports neither.
On CUDA, :class:`EGNNConv` and :class:`FiberConv` run their message passing as fused Triton kernels
(:mod:`kernels.fused_egnn`, :mod:`kernels.fused_fiber`; Triton is optional and imported only then); an
:class:`EdgeLayout` holds a graph's destination-sorted edges for them, built once per graph, and
:mod:`kernels.backend` (:func:`set_backend`) chooses or forces either path.
:mod:`kernels.reference` holds straightforward PyG ``MessagePassing`` versions of the same maths, used by the
tests and benchmarks to check and time the fast paths.
"""

from kernels.backend import set_backend
from kernels.edge_layout import EdgeLayout
from kernels.egnn_conv import EGNNConv
from kernels.fiber_block import ConvNeXtMLP, FiberBlock
from kernels.fiber_conv import FiberConv
from kernels.fiber_geometry import (
    circle_grid,
    fibonacci_sphere,
    lift_scalars,
    lift_vectors,
    offset_invariants,
    orientation_invariants,
    polynomial_features,
    readout_scalars,
    readout_vectors,
    ring_grid,
    spatial_invariants,
)
from kernels.hetero_conv import EdgeType, HeteroConv
from kernels.polynomial_basis import PolynomialBasis
from kernels.rotation import (
    axis_angle_to_matrix,
    chordal_mean,
    icosahedral_group,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    random_rotation,
    rotation_2d,
)
from kernels.scatter import (
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
