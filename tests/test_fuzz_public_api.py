"""A fuzzer of compiled plans through the public API (session 18c review): random programs
of elementwise ops with broadcasting, reductions over axes, matmul/einsum with transposed and
batched operands, reshapes, transposes, slices, concatenate/stack, softmax, layer_norm and
where, with values read many times and outputs that alias inputs or each other (an input
returned unchanged, the same value twice, a transpose or reshape of an input or output).
gc.compile(fn) is checked against fn run eagerly on gc.tensor and against a numpy reference,
in float64; gradients (gc.grad of a scalar loss of the outputs, and the same through
gc.remat) against the eager tape; each plan is called twice with new inputs (a plan-reuse
bug shows on the second call), its inputs must come back unchanged and the first call's
outputs must not change under the second. Seeds are fixed: deterministic. The numpy plans
(GRAPHC_JIT=0) run many seeds; a few run with the generated numba kernels.

It runs with the suite (about 20 s). The session-18c scratch version also covered vmap,
scan, donation, input layouts and larger sizes, with no other mismatch."""
import numpy as np
import pytest

import graphc as gc
from runtime import jit

MAXSIZE = 8192


class NP:
    """The numpy reference; GC runs the same program through graphc. Ops both libraries
    name alike are called through `lib`; the others (sigmoid, relu, ...) numpy computes
    from their formula here and GC calls graphc's op for."""
    name = "np"
    lib = np
    def sigmoid(self, x): return 1 / (1 + np.exp(-x))
    def relu(self, x): return np.maximum(x, 0)
    def unary(self, op, x):
        lib = self.lib
        if op == "tanh": return lib.tanh(x)
        if op == "sin": return lib.sin(x)
        if op == "sigmoid": return self.sigmoid(x)
        if op == "relu": return self.relu(x)
        if op == "abs": return lib.abs(x)
        if op == "neg": return -x
        if op == "exptanh": return lib.exp(lib.tanh(x))
        if op == "sqrtish": return lib.sqrt(x * x + 1.0)
        if op == "logish": return lib.log(x * x + 1.0)
        if op == "square": return x * x
        if op == "scale": return x * 0.5 + 0.25
        raise KeyError(op)
    def binary(self, op, a, b):
        if op == "add": return a + b
        if op == "sub": return a - b
        if op == "mul": return a * b
        if op == "div": return a / (b * b + 1.0)
        if op == "maximum": return self.lib.maximum(a, b)
        if op == "minimum": return self.lib.minimum(a, b)
        raise KeyError(op)
    def where(self, a, b, c): return self.lib.where(a > b, a, c)
    def reduce(self, op, x, axis, keepdims):
        return getattr(np, {"sum": "sum", "max": "max", "min": "min", "mean": "mean"}[op])(
            x, axis=axis, keepdims=keepdims)
    def matmul(self, a, b): return a @ b
    def einsum(self, spec, *xs): return np.einsum(spec, *xs)
    def reshape(self, x, shape): return x.reshape(shape)
    def transpose(self, x, perm): return np.transpose(x, perm)
    def swapaxes(self, x, a, b): return np.swapaxes(x, a, b)
    def T(self, x): return x.T
    def getitem(self, x, key): return x[key]
    def concat(self, xs, axis): return np.concatenate(xs, axis)
    def stack(self, xs, axis): return np.stack(xs, axis)
    def softmax(self, x, axis):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    def log_softmax(self, x, axis):
        m = x.max(axis=axis, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    def layer_norm(self, x, w, b):
        mu = x.mean(-1, keepdims=True)
        v = ((x - mu) ** 2).mean(-1, keepdims=True)
        y = (x - mu) / np.sqrt(v + 1e-5)
        if w is not None:
            y = y * w + b
        return y
    def const(self, c): return c
    def expand_dims(self, x, axis): return np.expand_dims(x, axis)
    def squeeze(self, x, axis): return np.squeeze(x, axis)
    def broadcast_to(self, x, shape): return np.broadcast_to(x, shape)
    def gelu(self, x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


class GC(NP):
    name = "gc"
    lib = gc
    def sigmoid(self, x): return gc.sigmoid(x)
    def relu(self, x): return gc.relu(x)
    def reduce(self, op, x, axis, keepdims):
        return getattr(gc, op)(x, axis=axis, keepdims=keepdims)
    def einsum(self, spec, *xs): return gc.einsum(spec, *xs)
    def reshape(self, x, shape): return gc.reshape(x, shape)
    def transpose(self, x, perm): return gc.transpose(x, perm)
    def swapaxes(self, x, a, b): return gc.swapaxes(x, a, b)
    def concat(self, xs, axis): return gc.concatenate(xs, axis)
    def stack(self, xs, axis): return gc.stack(xs, axis)
    def softmax(self, x, axis): return gc.softmax(x, axis)
    def log_softmax(self, x, axis): return gc.log_softmax(x, axis)
    def layer_norm(self, x, w, b): return gc.layer_norm(x, w, b)
    def expand_dims(self, x, axis): return gc.expand_dims(x, axis)
    def squeeze(self, x, axis): return gc.squeeze(x, axis)
    def broadcast_to(self, x, shape): return gc.broadcast_to(x, shape)
    def gelu(self, x): return gc.gelu(x)


UNARY = ["tanh", "sin", "sigmoid", "relu", "abs", "neg", "exptanh", "sqrtish", "logish",
         "square", "scale"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum"]
START_SHAPES = [(8, 16), (16, 8), (4, 8, 16), (2, 3, 8, 16), (16,), (8, 1), (4, 1, 16),
                (16, 12), (12, 16), (2, 8, 16), (4, 16, 8), (64, 32), (32, 64), (1, 16)]
NCHOICE = [4, 8, 12, 16, 32]


def bshape(a, b):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def size(s):
    return int(np.prod(s)) if s else 1


class Program:
    def __init__(self, rng, nsteps, allow_int_index=True):
        self.rng = rng
        self.inputs = []   # shapes
        self.steps = []    # (kind, args(list of value ids), params)
        self.shapes = []   # value id -> shape; ids 0..: inputs first? we use ("in", k)
        self.values = []   # list of (kind, ...) refs; value id = index
        for _ in range(int(rng.integers(1, 4))):
            self.new_input(START_SHAPES[int(rng.integers(len(START_SHAPES)))])
        for _ in range(nsteps):
            for _try in range(10):
                if self.try_step():
                    break
        self.pick_outputs()

    def new_input(self, shape):
        k = len(self.inputs)
        self.inputs.append(tuple(shape))
        self.values.append(("input", [k], None))
        self.shapes.append(tuple(shape))
        return len(self.values) - 1

    def add(self, kind, args, params, shape):
        if size(shape) > MAXSIZE or len(shape) > 5:
            return False
        self.values.append((kind, list(args), params))
        self.shapes.append(tuple(shape))
        return True

    def pick(self, pred=lambda s: True, recent=True):
        ids = [i for i, s in enumerate(self.shapes) if pred(s)]
        if not ids:
            return None
        if recent and self.rng.random() < 0.6:
            ids = ids[-4:]
        return int(ids[int(self.rng.integers(len(ids)))])

    def try_step(self):
        rng = self.rng
        r = rng.random()
        kinds = ["unary"] * 3 + ["binary"] * 4 + ["where", "reduce", "reduce", "matmul", "matmul",
                 "matmul", "einsum", "reshape", "transpose", "slice", "concat", "stack",
                 "softmax", "layer_norm", "expand", "bcast", "gelu"]
        kind = kinds[int(rng.integers(len(kinds)))]
        a = self.pick()
        sa = self.shapes[a]
        if kind == "unary":
            return self.add("unary", [a], UNARY[int(rng.integers(len(UNARY)))], sa)
        if kind == "gelu":
            return self.add("gelu", [a], None, sa)
        if kind == "binary":
            op = BINARY[int(rng.integers(len(BINARY)))]
            if rng.random() < 0.15:
                c = float(np.round(rng.normal(), 2))
                return self.add("binconst", [a], (op, c, bool(rng.random() < 0.5)), sa)
            b = self.pick(lambda s: bshape(sa, s) is not None, recent=False)
            if b is None or (rng.random() < 0.2):
                # a new input broadcastable to sa
                shp = list(sa)
                for i in range(len(shp)):
                    if rng.random() < 0.4:
                        shp[i] = 1
                if shp and rng.random() < 0.3:
                    shp = shp[int(rng.integers(len(shp))):]
                b = self.new_input(tuple(shp))
            if rng.random() < 0.5:
                a, b = b, a
            return self.add("binary", [a, b], op, bshape(self.shapes[a], self.shapes[b]))
        if kind == "where":
            b = self.pick(lambda s: bshape(sa, s) is not None)
            c = self.pick(lambda s: bshape(sa, s) is not None)
            out = bshape(bshape(sa, self.shapes[b]), self.shapes[c])
            if out is None:
                return False
            return self.add("where", [a, b, c], None, out)
        if kind == "reduce" and sa:
            op = ["sum", "max", "mean", "min"][int(rng.integers(4))]
            nd = len(sa)
            if rng.random() < 0.2:
                axis = None
            elif rng.random() < 0.3 and nd >= 2:
                axis = tuple(sorted(rng.choice(nd, 2, replace=False).tolist()))
            else:
                axis = int(rng.integers(-nd, nd))
            keep = bool(rng.random() < 0.5)
            out = np.zeros(sa).sum(axis=axis, keepdims=keep).shape
            return self.add("reduce", [a], (op, axis, keep), out)
        if kind == "matmul" and len(sa) >= 2:
            k = sa[-1]
            mode = rng.integers(4)
            # candidates with matching contraction in some orientation
            b = self.pick(lambda s: len(s) >= 2 and (s[-2] == k or s[-1] == k), recent=False)
            if b is None or rng.random() < 0.35:
                n = int(rng.choice(NCHOICE))
                if len(sa) > 2 and rng.random() < 0.5:
                    shp = tuple(sa[:-2]) + (k, n)
                else:
                    shp = (k, n)
                if rng.random() < 0.4:  # stored transposed, transposed back
                    t = self.new_input(shp[:-2] + (shp[-1], shp[-2]))
                    if not self.add("swapaxes", [t], (-1, -2), shp):
                        return False
                    b = len(self.values) - 1
                else:
                    b = self.new_input(shp)
            sb = self.shapes[b]
            if sb[-2] != k:
                if sb[-1] != k:
                    return False
                if len(sb) == 2 and rng.random() < 0.5:
                    ok = self.add("T", [b], None, (sb[1], sb[0]))
                else:
                    ok = self.add("swapaxes", [b], (-1, -2), sb[:-2] + (sb[-1], sb[-2]))
                if not ok:
                    return False
                b = len(self.values) - 1
                sb = self.shapes[b]
            bat = bshape(sa[:-2], sb[:-2])
            if bat is None:
                return False
            if rng.random() < 0.5:
                return self.add("matmul", [a, b], None, bat + (sa[-2], sb[-1]))
            return self.add("einsum_mm", [a, b], None, bat + (sa[-2], sb[-1])) \
                if sa[:-2] == sb[:-2] else self.add("matmul", [a, b], None, bat + (sa[-2], sb[-1]))
        if kind == "einsum" and len(sa) >= 2:
            # contraction over last axis with a value that shares it: "...ij,...kj->...ik"
            b = self.pick(lambda s: len(s) == len(sa) and s[-1] == sa[-1] and s[:-2] == sa[:-2],
                          recent=False)
            if b is None:
                return False
            sb = self.shapes[b]
            letters = "abcd"[:len(sa) - 2]
            spec = f"{letters}ij,{letters}kj->{letters}ik"
            if rng.random() < 0.3:
                spec = f"{letters}ij,{letters}kj->{letters}ki"
                return self.add("einsum", [a, b], spec, sa[:-2] + (sb[-2], sa[-2]))
            return self.add("einsum", [a, b], spec, sa[:-2] + (sa[-2], sb[-2]))
        if kind == "reshape" and sa:
            n = size(sa)
            choices = [(n,)]
            if len(sa) >= 2:
                choices.append(tuple(sa[:-2]) + (sa[-2] * sa[-1],))
                choices.append((sa[0] * sa[1],) + tuple(sa[2:]))
            if sa[-1] % 2 == 0:
                choices.append(tuple(sa[:-1]) + (2, sa[-1] // 2))
                choices.append(tuple(sa[:-1]) + (sa[-1] // 2, 2))
            if n % 16 == 0:
                choices.append((n // 16, 16))
                choices.append((16, -1))
            shp = choices[int(rng.integers(len(choices)))]
            out = np.zeros(sa).reshape(shp).shape
            return self.add("reshape", [a], shp, out)
        if kind == "transpose" and len(sa) >= 2:
            nd = len(sa)
            c = rng.integers(3)
            if c == 0:
                perm = tuple(rng.permutation(nd).tolist())
                return self.add("transpose", [a], perm, tuple(sa[p] for p in perm))
            if c == 1:
                i, j = rng.choice(nd, 2, replace=False).tolist()
                s = list(sa); s[i], s[j] = s[j], s[i]
                return self.add("swapaxes", [a], (i, j), tuple(s))
            return self.add("T", [a], None, tuple(reversed(sa)))
        if kind == "slice" and sa:
            nd = len(sa)
            ax = int(rng.integers(nd))
            d = sa[ax]
            if rng.random() < 0.2 and nd >= 2:
                i = int(rng.integers(d))
                key = (slice(None),) * ax + (i,)
            else:
                lo = int(rng.integers(0, max(1, d // 2)))
                hi = int(rng.integers(lo + 1, d + 1))
                st = int(rng.choice([1, 1, 1, 2, 3]))
                key = (slice(None),) * ax + (slice(lo, hi, st),)
            out = np.zeros(sa)[key].shape
            if size(out) == 0:
                return False
            return self.add("getitem", [a], key, out)
        if kind == "concat" and sa:
            ax = int(rng.integers(len(sa)))
            cands = [i for i, s in enumerate(self.shapes)
                     if len(s) == len(sa) and all(s[j] == sa[j] for j in range(len(sa)) if j != ax)]
            more = int(rng.integers(1, 3))
            ids = [a] + [int(cands[int(rng.integers(len(cands)))]) for _ in range(more)]
            out = list(sa); out[ax] = sum(self.shapes[i][ax] for i in ids)
            return self.add("concat", ids, ax, tuple(out))
        if kind == "stack":
            cands = [i for i, s in enumerate(self.shapes) if s == sa]
            more = int(rng.integers(1, 3))
            ids = [a] + [int(cands[int(rng.integers(len(cands)))]) for _ in range(more)]
            ax = int(rng.integers(len(sa) + 1))
            out = list(sa); out.insert(ax, len(ids))
            return self.add("stack", ids, ax, tuple(out))
        if kind == "softmax" and sa:
            ax = int(rng.integers(-len(sa), len(sa)))
            which = "softmax" if rng.random() < 0.7 else "log_softmax"
            return self.add(which, [a], ax, sa)
        if kind == "layer_norm" and sa:
            if rng.random() < 0.5:
                w = self.new_input((sa[-1],))
                b = self.new_input((sa[-1],))
                return self.add("layer_norm", [a, w, b], None, sa)
            return self.add("layer_norm", [a], None, sa)
        if kind == "expand" and sa:
            if 1 in sa and rng.random() < 0.5:
                ax = sa.index(1)
                out = list(sa); del out[ax]
                return self.add("squeeze", [a], ax, tuple(out))
            ax = int(rng.integers(len(sa) + 1))
            out = list(sa); out.insert(ax, 1)
            return self.add("expand_dims", [a], ax, tuple(out))
        if kind == "bcast" and sa and len(sa) < 4:
            out = (int(rng.choice([2, 3])),) + tuple(sa)
            return self.add("broadcast_to", [a], out, out)
        return False

    def pick_outputs(self):
        rng = self.rng
        n = len(self.values)
        outs = [n - 1]
        for _ in range(int(rng.integers(0, 4))):
            outs.append(int(rng.integers(n)))
        extra = []
        if rng.random() < 0.3:
            outs.append(outs[0])  # same value twice
        if rng.random() < 0.2:
            outs.append(0)  # an input unchanged
        self.outputs = outs
        # views of inputs/outputs
        self.view_outputs = []
        if rng.random() < 0.3:
            k = int(rng.integers(len(self.inputs)))
            if len(self.inputs[k]) >= 2:
                self.view_outputs.append(("T_in", k))
            else:
                self.view_outputs.append(("reshape_in", k))
        if rng.random() < 0.3:
            self.view_outputs.append(("T_out", 0))
        if rng.random() < 0.2:
            self.view_outputs.append(("slice_out", 0))

    def run(self, B, xs):
        vals = []
        for kind, args, p in self.values:
            a = [vals[i] for i in args] if kind != "input" else None
            if kind == "input":
                v = xs[args[0]]
            elif kind == "unary": v = B.unary(p, a[0])
            elif kind == "gelu": v = B.gelu(a[0])
            elif kind == "binary": v = B.binary(p, a[0], a[1])
            elif kind == "binconst":
                op, c, flip = p
                v = B.binary(op, c, a[0]) if flip and op not in ("maximum", "minimum") \
                    else B.binary(op, a[0], c)
            elif kind == "where": v = B.where(*a)
            elif kind == "reduce": v = B.reduce(p[0], a[0], p[1], p[2])
            elif kind == "matmul": v = B.matmul(a[0], a[1])
            elif kind == "einsum_mm":
                nd = len(self.shapes[args[0]])
                l = "abcd"[:nd - 2]
                v = B.einsum(f"{l}ij,{l}jk->{l}ik", a[0], a[1])
            elif kind == "einsum": v = B.einsum(p, a[0], a[1])
            elif kind == "reshape": v = B.reshape(a[0], p)
            elif kind == "transpose": v = B.transpose(a[0], p)
            elif kind == "swapaxes": v = B.swapaxes(a[0], *p)
            elif kind == "T": v = B.T(a[0])
            elif kind == "getitem": v = B.getitem(a[0], p)
            elif kind == "concat": v = B.concat(a, p)
            elif kind == "stack": v = B.stack(a, p)
            elif kind == "softmax": v = B.softmax(a[0], p)
            elif kind == "log_softmax": v = B.log_softmax(a[0], p)
            elif kind == "layer_norm":
                v = (B.layer_norm(a[0], a[1], a[2]) if len(a) == 3
                     else B.layer_norm(a[0], None, None))
            elif kind == "squeeze": v = B.squeeze(a[0], p)
            elif kind == "expand_dims": v = B.expand_dims(a[0], p)
            elif kind == "broadcast_to": v = B.broadcast_to(a[0], p)
            else:
                raise KeyError(kind)
            vals.append(v)
        outs = [vals[i] for i in self.outputs]
        for what, k in self.view_outputs:
            if what == "T_in": outs.append(B.T(xs[k]))
            elif what == "reshape_in": outs.append(B.reshape(xs[k], (-1,)))
            elif what == "T_out":
                o = outs[0]
                outs.append(B.T(o) if getattr(o, "ndim", 0) >= 2 else o)
            elif what == "slice_out":
                o = outs[0]
                outs.append(o[1:] if len(o.shape) >= 1 and o.shape[0] > 1 else o)
        return tuple(outs)

    def describe(self):
        lines = [f"inputs {self.inputs}"]
        for i, (kind, args, p) in enumerate(self.values):
            lines.append(f"  v{i} = {kind}{args} {p!r} -> {self.shapes[i]}")
        lines.append(f"  outputs {self.outputs} views {self.view_outputs}")
        return "\n".join(lines)


def close(a, b, dtype):
    a = np.asarray(a, dtype=np.float64); b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs {b.shape}"
    scale = max(1.0, float(np.nanmax(np.abs(b))) if b.size else 1.0)
    tol = 1e-9 if dtype == np.float64 else 2e-4
    bad = ~np.isclose(a, b, rtol=tol, atol=tol * scale, equal_nan=True)
    if bad.any():
        idx = np.argwhere(bad)[0]
        return False, (f"{int(bad.sum())}/{a.size} bad, first at {tuple(idx)}: "
                       f"{a[tuple(idx)]} vs {b[tuple(idx)]}")
    return True, ""




def _inputs(prog, rng):
    return [rng.standard_normal(s) for s in prog.inputs]


def _check(tag, got, want, errors):
    assert len(got) == len(want), tag
    for i, (g, w) in enumerate(zip(got, want)):
        ok, msg = close(g, w, np.float64)
        if not ok:
            errors.append(f"{tag}: output {i}: {msg}")


def _loss_of(prog, remat):
    backend = GC()

    def loss(*xs):
        run = (lambda *a: prog.run(backend, a))
        outs = gc.remat(run)(*xs) if remat else run(*xs)
        total = 0.0
        for k, o in enumerate(outs):
            c = np.cos(np.arange(size(o.shape)) * 0.37 + k).reshape(o.shape)
            total = total + gc.sum(o * c)
        return total
    return loss


def fuzz_one(seed, remat=False):
    """The mismatches of one random program (an empty list when all agree)."""
    rng = np.random.default_rng(seed)
    prog = Program(rng, int(rng.integers(3, 12)))
    backend, reference = GC(), NP()
    compiled = gc.compile(lambda *xs: prog.run(backend, xs))
    loss = _loss_of(prog, remat)
    grads = gc.compile(gc.grad(loss, argnums=tuple(range(len(prog.inputs)))))
    errors, first = [], None
    for call in range(2):
        xs = _inputs(prog, rng)
        saved = [x.copy() for x in xs]
        got = compiled(*xs)
        if any(not np.array_equal(x, s) for x, s in zip(xs, saved)):
            errors.append(f"call {call}: an input was written over")
        eager = [np.asarray(e) for e in prog.run(backend, [gc.tensor(x) for x in saved])]
        _check(f"call {call} compiled vs eager", got, eager, errors)
        _check(f"call {call} eager vs numpy", eager, prog.run(reference, saved), errors)
        if first is None:
            first = ([np.array(g, copy=True) for g in got], got)
        tensors = [gc.tensor(x, requires_grad=True) for x in saved]
        loss(*tensors).backward()
        for k, (g, t) in enumerate(zip(grads(*saved), tensors)):
            ok, msg = close(g, t.grad if t.grad is not None else np.zeros_like(saved[k]),
                            np.float64)
            if not ok:
                errors.append(f"call {call} gradient {k}: {msg}")
    for i, (copy, live) in enumerate(zip(*first)):
        if not np.array_equal(copy, live, equal_nan=True):
            errors.append(f"output {i} of the first call changed by the second")
    return [f"seed {seed}: {e}\n{prog.describe()}" for e in errors]


@pytest.mark.parametrize("block", range(4))
def test_random_programs_on_numpy_plans(block, monkeypatch):
    monkeypatch.setenv("GRAPHC_JIT", "0")
    errors = []
    for seed in range(block * 25, block * 25 + 25):
        errors += fuzz_one(seed, remat=seed % 3 == 0)
    assert not errors, "\n".join(errors[:3])


@pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")
@pytest.mark.parametrize("seed", [10, 11, 15])
def test_random_programs_on_generated_kernels(seed):
    errors = fuzz_one(seed)
    assert not errors, "\n".join(errors[:3])
