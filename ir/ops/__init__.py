"""The primitive op library: every op defined once (type rule, numpy evaluation, gradient)."""
from . import api, collective, elementwise, fused, index, linalg, nn, shape  # noqa: F401  (registers the ops)
from .registry import REGISTRY, OpDef, apply, defop, get_op  # noqa: F401
