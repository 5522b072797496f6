"""The primitive op library: every op defined once (type rule, numpy evaluation, gradient)."""
# importing a module registers its ops
from . import (activations, api, arrays, cluster, collective, composite,  # noqa: F401
               control_flow, ctc, custom, elementwise, index, linalg, losses, precision,
               random, resize, search, shape, softmax)
from . import scatter_reduce  # noqa: F401  (scatter_max)
from . import named_axis  # noqa: F401  (vmap_reduce: gc.psum)
from .registry import REGISTRY, OpDef, apply, defop, get_op  # noqa: F401
