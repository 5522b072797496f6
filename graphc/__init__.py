"""graphc: a define-and-run graph compiler for neural networks, on numpy.

    import graphc as gc
    graph = gc.trace(lambda x, w: gc.relu(x @ w).sum(), gc.spec((4, 3)), gc.spec((3, 2)))
    print(graph)                          # the IR
    dloss = gc.grad(lambda x, w: gc.relu(x @ w).sum(), argnums=1)
"""
import ir  # noqa: F401  (registers the op library)
from ir.errors import GraphcError, register_library_package

register_library_package(__file__, user_code=["models"])  # before anything below may fail
from ir.graph import Graph, Node
from ir.ops import api as _api
from ir.ops.api import *  # noqa: F401,F403  (the functional API: exp, softmax, ...)
from ir.ops.api import abs, all, any, max, min, pow, round, sum  # noqa: F401  (shadowing builtins on purpose)
from ir.ops import activations as _activations, arrays as _arrays, losses as _losses
from ir.ops.resize import interpolate  # noqa: F401  (torch.nn.functional.interpolate)
from ir.ops.attention import linear  # noqa: F401  (torch.nn.functional.linear)
from ir.ops import conv_extra as _conv_extra
from ir.ops.conv_extra import *  # noqa: F401,F403  (conv_transpose2d, adaptive pools, ...)
from ir.ops import pool_extra as _pool_extra
from ir.ops.pool_extra import *  # noqa: F401,F403  (max_pool3d, lp_pool2d, fold, ...)
from ir.ops.activations import *  # noqa: F401,F403  (torch.nn.functional's: elu, mish, ...)
from ir.ops.arrays import *  # noqa: F401,F403  (numpy's array functions: pad, flip, sort, ...)
from ir.ops import scatter_reduce as _scatter_reduce
from ir.ops.scatter_reduce import *  # noqa: F401,F403  (segment_max, scatter_reduce, cummax, ...)
from ir.ops.losses import *  # noqa: F401,F403  (torch.nn.functional's: binary_cross_entropy, ...)
from ir.ops import search as _search
from ir.ops.search import *  # noqa: F401,F403  (searchsorted, unique, nonzero, bincount, ...)
from ir.ops import losses_extra as _losses_extra
from ir.ops.losses_extra import *  # noqa: F401,F403  (margin_ranking_loss, gaussian_nll_loss, ...)
from ir.ops.precision import autocast
from passes.autodiff import gradients
from runtime.eager import (Parameter, Tensor, enable_grad, is_grad_enabled, no_grad,
                           set_grad_enabled, tensor)

from . import amp, nn, optim, random
from . import nn_functional  # noqa: F401  (registers graphc.nn.functional, torch's signatures)
from .nn import manual_seed  # noqa: F401  (torch.manual_seed: initialisation and dropout)
from .nn import scaled_dot_product_attention  # noqa: F401  (dropout keyed as nn's layers)
from .dropouts import (alpha_dropout, dropout1d, dropout2d, dropout3d,  # noqa: F401
                       feature_alpha_dropout, rrelu)
from .extra_layers import channel_shuffle, embedding_bag, local_response_norm  # noqa: F401
from .control_flow import cond, fori_loop, map, scan, switch, while_loop  # noqa: A004
from .ctc import ctc_loss  # noqa: F401  (torch.nn.functional.ctc_loss, on gc.scan)
from .custom import custom_jvp, custom_vjp
from .draw import draw
from .jacobians import jacfwd, jacrev
from .linear_transpose import linear_transpose
from .linearize import linearize
from .remat import checkpoint_policies, remat
from .tracing import (Spec, eval_shape, spec, trace, tree_flatten, tree_leaves, tree_map,
                      tree_unflatten)
from .trainer import Trainer, load_params
from .transforms import RecompileWarning, compile, grad, hessian, jvp, value_and_grad, vjp
from .transforms import stop_gradient  # noqa: F811  (over ir's one-value op: pytrees too)
from .transforms import float0
from .vmap import axis_index, pmax, pmean, pmin, psum, vmap

__version__ = "0.1.0"
__all__ = ["GraphcError", "Graph", "Node", "Parameter", "Tensor", "Spec", "spec", "trace",
           "eval_shape", "psum", "pmean", "pmax", "pmin", "axis_index",
           "float0", "compile", "grad", "value_and_grad", "vjp", "jvp", "linearize", "linear_transpose",
           "hessian", "jacfwd", "jacrev", "gradients", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled",
           "tensor", "manual_seed", "nn", "optim", "Trainer", "load_params", "draw",
           "custom_vjp", "custom_jvp", "checkpoint_policies",
           "remat", "random", "vmap", "scan", "fori_loop", "while_loop", "cond", "switch", "map",
           "amp",
           "autocast", "tree_leaves", "tree_map", "tree_flatten", "tree_unflatten"] + _api.__all__ \
    + _arrays.__all__ + _activations.__all__ + _losses.__all__ + ["interpolate"] \
    + _conv_extra.__all__ + _pool_extra.__all__ + _losses_extra.__all__ + _scatter_reduce.__all__ \
    + _search.__all__
