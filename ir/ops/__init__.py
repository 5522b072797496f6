"""The primitive op library: every op defined once (type rule, numpy evaluation, gradient)."""
# importing a module registers its ops
from . import (activations, api, arrays, cluster, collective, composite, control_flow, custom,  # noqa: F401
               elementwise, index, linalg, precision, random, shape, softmax)
from .registry import REGISTRY, OpDef, apply, defop, get_op  # noqa: F401
