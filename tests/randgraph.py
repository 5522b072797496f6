"""A seeded generator of random well-typed graphs over the op library, with broadcasting.

Used for differential testing: every pass (and the compiled runtime) must compute on these
graphs what the reference interpreter computes on the unoptimised graph. The generator leans
towards patterns the rewrites look for (x*1, x+0, neg(neg x), transpose pairs, repeated
subexpressions, constant subgraphs) so that the passes actually fire.
"""
from __future__ import annotations

import numpy as np

import graphc as gc
from ir.graph import Graph

DIMS = (1, 2, 3)
EDGE_DIMS = (0, 1, 2, 3)  # with size-0 dimensions (edge_inputs)


def _shape(rng, ndim=None, dims=DIMS):
    ndim = rng.integers(0, 4) if ndim is None else ndim
    return tuple(int(rng.choice(dims)) for _ in range(ndim))


def _compatible(rng, shape):
    """A shape that broadcasts with `shape`: drop leading axes, set some axes to 1."""
    lead = rng.integers(0, len(shape) + 1)
    return tuple(1 if rng.random() < 0.3 else d for d in shape[lead:])


def _pick(rng, values):
    return values[rng.integers(len(values))]


def _positive(x):
    return x * x + 0.5


def random_graph(seed: int, n_ops: int = 12, dtype="float64",
                 dims=DIMS) -> tuple[Graph, list]:
    """A random graph and normal inputs; dims=EDGE_DIMS allows size-0 dimensions."""
    rng = np.random.default_rng(seed)
    g = Graph(f"random{seed}")
    with g.building():
        values = []
        for k in range(rng.integers(1, 4)):
            values.append(g.input(f"x{k}", _shape(rng, dims=dims), dtype))
        for _ in range(n_ops):
            x = _pick(rng, values)
            choice = rng.integers(0, 21)
            if choice <= 4:  # binary with a broadcast-compatible partner or constant
                partner = [v for v in values if v is not x and _bcast(v.shape, x.shape)]
                if partner and rng.random() < 0.6:
                    y = _pick(rng, partner)
                else:
                    y = float(rng.choice([0.0, 1.0, 2.0, -0.5]))
                op = ["add", "sub", "mul", "div", "maximum"][choice]
                if op == "div":
                    y = _positive(y) if not isinstance(y, float) else (y or 1.0) + 1.5
                out = getattr(gc, op)(x, y)
            elif choice == 5:
                out = _pick(rng, [gc.exp, gc.tanh, gc.sin, gc.cos, gc.sigmoid, gc.relu,
                                  gc.gelu, gc.neg])(x)
            elif choice == 6:
                out = _pick(rng, [gc.log, gc.sqrt, gc.rsqrt])(_positive(x))
            elif choice == 7 and x.ndim:
                out = gc.sum(x, int(rng.integers(0, x.ndim)), keepdims=bool(rng.random() < .5))
            elif choice == 8 and x.ndim and 0 not in x.shape:
                # (a max over a size-0 axis has no value: numpy raises, so does graphc)
                out = gc.max(x, int(rng.integers(0, x.ndim)), keepdims=bool(rng.random() < .5))
            elif choice == 9 and x.ndim >= 2:
                perm = tuple(rng.permutation(x.ndim).tolist())
                out = gc.transpose(gc.transpose(x, perm), perm) if rng.random() < 0.5 \
                    else gc.transpose(x, perm)
            elif choice == 10:
                out = gc.reshape(gc.reshape(x, (x.size,)), (1,) + x.shape)
            elif choice == 11:
                out = gc.broadcast_to(x, _shape(rng, 1) + x.shape)
            elif choice == 12 and x.ndim:
                if x.shape[-1] >= 2 and rng.random() < 0.5:
                    out = gc.layer_norm(x, gc.ones(x.shape[-1], dtype) * 1.5, None)
                else:  # size-0 axes included: an empty softmax is an empty result
                    out = gc.softmax(x, int(rng.integers(0, x.ndim)))
            elif choice == 13 and x.ndim and x.shape[-1] >= 2:
                out = x[..., 1:]
            elif choice == 14 and x.ndim >= 2:  # size-0 contractions included
                w = g.constant(rng.normal(size=(x.shape[-1], int(rng.choice(DIMS)))))
                out = x @ w.astype(dtype)
            elif choice == 15:
                others = [v for v in values if v.shape == x.shape and v is not x]
                y = _pick(rng, others) if others else x
                out = gc.where(x > y, x, y * 0.5)
            elif choice == 16:  # a repeated subexpression, for CSE
                out = gc.exp(x) * 1.0 + gc.exp(x)
            elif choice == 17:  # a constant subgraph, for folding
                c = g.constant(rng.normal(size=_compatible(rng, x.shape)).astype(dtype))
                out = x + (gc.exp(c) * 2.0 - c)
            elif choice == 18:
                out = -(-x) + x * 0.0
            elif choice == 19 and x.ndim:
                out = gc.concat([x, x * 2.0], axis=int(rng.integers(0, x.ndim)))
            elif choice == 20:
                out = gc.exp(gc.log(_positive(x)))
            else:
                out = gc.tanh(x)
            values.append(out)
        n_out = int(rng.integers(1, 3))
        outputs = [values[-1]] + [_pick(rng, values[:-1]) for _ in range(n_out - 1)]
        g.set_outputs(outputs)
    inputs = [rng.normal(size=n.shape).astype(dtype) for n in g.inputs]
    return g, inputs


def edge_inputs(graph: Graph, seed: int) -> list:
    """Inputs for `graph` from the edge classes: NaN, +-inf, huge, tiny and subnormal values
    and signed zeros mixed into normal ones; each array laid out as a plain, non-contiguous
    (a strided view of a larger array), read-only or broadcast (stride-0) array."""
    rng = np.random.default_rng(seed)
    out = []
    for n in graph.inputs:
        dtype = np.dtype(n.dtype)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            pool = np.array([info.min, info.max, info.min + 1, info.max - 1, 0, -1, 1, 7],
                            dtype)
            value = pool[rng.integers(len(pool), size=n.shape)]
        else:
            info = np.finfo(dtype)
            pool = np.array([np.nan, np.inf, -np.inf, info.max, -info.max, info.tiny,
                             info.smallest_subnormal, -0.0, 0.0, 1e4, -1e4], dtype)
            value = rng.normal(size=n.shape).astype(dtype)
            special = rng.random(n.shape) < 0.3
            value[special] = pool[rng.integers(len(pool), size=n.shape)][special]
        layout = rng.integers(4)
        value = np.asarray(value)
        if layout == 1 and value.ndim:  # non-contiguous: every other element of a wider array
            wide = np.zeros(value.shape[:-1] + (2 * value.shape[-1],), dtype)
            wide[..., ::2] = value
            value = wide[..., ::2]
        elif layout == 2:
            value = value.copy()
            value.setflags(write=False)
        elif layout == 3 and value.size:  # one value repeated with stride 0
            value = np.broadcast_to(value.reshape(-1)[:1].reshape((1,) * value.ndim),
                                    value.shape)
        out.append(value)
    return out


def _bcast(a, b):
    return np.broadcast_shapes(a, b) == b if _ok(a, b) else False


def _ok(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def with_gradient(graph: Graph) -> Graph:
    """The graph extended with d(sum of its first output)/d(inputs): a backward graph."""
    from passes.autodiff import gradients
    from ir.rewrite import clone

    new = clone(graph, graph.name + "_grad")
    with new.building():
        loss = gc.sum(new.outputs[0])
        grads = gradients([loss], list(new.inputs))
    new.set_outputs(new.outputs + grads)
    return new


def random_int_graph(seed: int, n_ops: int = 8) -> Graph:
    """A random graph over one integer dtype (wrap-around arithmetic, comparisons, reductions,
    casts), for integer-extreme inputs (edge_inputs)."""
    rng = np.random.default_rng(seed)
    dtype = str(_pick(rng, ["int32", "int64"]))
    g = Graph(f"random_int{seed}")
    with g.building():
        shape = _shape(rng, dims=EDGE_DIMS)
        values = [g.input(f"x{k}", shape, dtype) for k in range(rng.integers(1, 3))]
        for _ in range(n_ops):
            x, y = _pick(rng, values), _pick(rng, values)
            choice = rng.integers(0, 7)
            if choice <= 2:
                out = getattr(gc, ["add", "sub", "mul"][choice])(x, y)
            elif choice == 3:
                out = gc.maximum(x, y)
            elif choice == 4:
                out = -x
            elif choice == 5 and x.ndim:
                out = gc.broadcast_to(gc.sum(x, x.ndim - 1, keepdims=True), x.shape)
            else:
                out = gc.where(x > y, x, y)
            values.append(out)
        g.set_outputs([values[-1], gc.cast(values[-2], "float64")])
    return g
