"""A seeded generator of random programs that stress a compiled plan's memory: views
(transposes, swapaxes, reshapes, slices with steps, integer indexing, expand_dims,
broadcast_to), concatenate/stack of views, dynamic_slice and dynamic_update_slice at run-time
starts (whose update is often a view of the operand itself), take and scatter_add with
repeated indices, values read together with their own transpose (in-place candidates),
scan/fori_loop/cond/while_loop bodies that pass carries through, swap them or return views,
and outputs that are inputs, views of values or the same value twice.

A program is Python source over a backend `L`: NPL (numpy, the reference) or GCL (graphc),
so a failing seed prints as a readable repro (`Program.source()`). Used by
tests/test_fuzz_aliasing.py (session 20c)."""
import re

import numpy as np

import graphc as gc


# the ops numpy and graphc spell alike: each backend takes them from its own library
SHARED_OPS = ("exp", "tanh", "sin", "abs", "maximum", "minimum", "where", "transpose",
              "swapaxes", "reshape", "expand_dims", "broadcast_to", "concatenate", "stack")


def _with_shared_ops(lib):
    """Class decorator: the SHARED_OPS of `lib` as static methods."""
    def add(cls):
        for name in SHARED_OPS:
            setattr(cls, name, staticmethod(getattr(lib, name)))
        return cls
    return add


@_with_shared_ops(np)
class NPL:
    @staticmethod
    def sum(x, axis=None, keepdims=False): return np.sum(x, axis=axis, keepdims=keepdims)
    @staticmethod
    def max(x, axis=None, keepdims=False): return np.max(x, axis=axis, keepdims=keepdims)
    @staticmethod
    def cumsum(x, axis): return np.cumsum(x, axis).astype(x.dtype)
    @staticmethod
    def softmax(x, axis):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    @staticmethod
    def T(x): return np.swapaxes(x, -1, -2)
    @staticmethod
    def _start(i, length, size):
        s = int(i)
        s = s + length if s < 0 else s
        return min(max(s, 0), length - size)
    @staticmethod
    def dynamic_slice(x, i, size, axis):
        s = NPL._start(i, x.shape[axis], size)
        return np.take(x, np.arange(s, s + size), axis=axis)
    @staticmethod
    def dynamic_update_slice(x, u, i, axis):
        s = NPL._start(i, x.shape[axis], u.shape[axis])
        y = np.array(x, copy=True)
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(s, s + u.shape[axis])
        y[tuple(idx)] = u
        return y
    @staticmethod
    def take(t, idx): return t[idx]
    @staticmethod
    def scatter_add(u, idx, rows):
        out = np.zeros((rows,) + u.shape[idx.ndim:], u.dtype)
        np.add.at(out, idx, u)
        return out


    @staticmethod
    def scan(f, init, xs):
        c, ys = init, []
        for t in range(len(xs)):
            c, y = f(c, xs[t])
            ys.append(y)
        if isinstance(ys[0], tuple):  # several ys: stacked one by one
            return c, tuple(np.stack(y) for y in zip(*ys))
        return c, np.stack(ys)
    @staticmethod
    def fori_loop(lo, hi, body, init):
        for i in range(lo, hi):
            init = body(i, init)
        return init
    @staticmethod
    def cond(p, t, f, *ops):
        return t(*ops) if p else f(*ops)
    @staticmethod
    def while_loop(c, b, init):
        while c(init):
            init = b(init)
        return init


@_with_shared_ops(gc)
class GCL:
    scan = staticmethod(gc.scan); fori_loop = staticmethod(gc.fori_loop)
    cond = staticmethod(gc.cond); while_loop = staticmethod(gc.while_loop)
    sum = staticmethod(gc.sum); max = staticmethod(gc.max); cumsum = staticmethod(gc.cumsum)
    softmax = staticmethod(gc.softmax)
    @staticmethod
    def T(x): return gc.swapaxes(x, -1, -2)
    dynamic_slice = staticmethod(gc.dynamic_slice)
    dynamic_update_slice = staticmethod(gc.dynamic_update_slice)
    take = staticmethod(gc.take)
    scatter_add = staticmethod(gc.scatter_add)


DIMS = (2, 3, 4)


class Program:
    def __init__(self, seed, nops=None, dims=DIMS, maxsize=4096, loops=False):
        self.rng = rng = np.random.default_rng(seed)
        # loops=True: also loops of two carries that pass them through, swap them, carry
        # an outer value or a step of xs, and return carries and xs as ys (region plans
        # return their inputs uncopied, runtime/control_flow.py)
        self.loops = loops
        self.dims, self.maxsize = dims, maxsize
        self.lines = []
        self.vals = []  # (name, shape)
        self.consts = {}
        self.nodiff = False
        self.dtype = "float32" if rng.random() < 0.5 else "float64"
        n_in = int(rng.integers(1, 4))
        square = rng.random() < 0.5
        for k in range(n_in):
            nd = int(rng.integers(1, 4))
            if square and nd >= 2:
                d = int(rng.choice(self.dims)); shape = (d,) * nd
            else:
                shape = tuple(int(rng.choice(self.dims)) for _ in range(nd))
            self.vals.append((f"x{k}", shape))
        self.inputs = list(self.vals)
        self.n_starts = 2
        nops = nops or int(rng.integers(5, 31))
        for _ in range(nops):
            for _try in range(20):
                if self.step():
                    break
        self.pick_outputs()

    def pick(self, pred=lambda s: True):
        c = [v for v in self.vals if pred(v[1])]
        if not c:
            return None
        if self.rng.random() < 0.6:
            c = c[-5:]
        return c[int(self.rng.integers(len(c)))]

    def emit(self, expr, shape):
        if int(np.prod(shape)) > self.maxsize or len(shape) > 4:
            return False
        name = f"v{len(self.lines)}"
        self.lines.append(f"{name} = {expr}")
        self.vals.append((name, tuple(shape)))
        return True

    def const(self, arr):
        name = f"C{len(self.consts)}"
        self.consts[name] = arr
        return name

    def step(self):
        rng = self.rng
        a, sa = self.pick()
        kinds = ["unary"] * 3 + ["binary"] * 4 + ["reduce", "matmul", "matmul", "transpose",
                 "swap", "reshape", "slice", "slice", "int", "expand", "bcast", "concat",
                 "stack", "dslice", "dus", "dus", "take", "scatter", "softmax", "cumsum",
                 "where", "inplace", "scan", "fori", "cond", "cond", "while"]
        if self.loops:
            kinds += ["scan2", "scan2", "fori2", "cond2", "while2"]
        kind = kinds[int(rng.integers(len(kinds)))]
        nd = len(sa)
        if kind == "unary":
            e = ["L.exp(L.tanh({0}))", "L.tanh({0})", "-{0}", "{0} * L.tanh({0})", "L.abs({0})",
                 "{0} * 0.5 + 0.25", "L.sin({0})"][int(rng.integers(7))]
            return self.emit(e.format(a), sa)
        if kind == "binary":
            b = self.pick(lambda s: _bc(sa, s) is not None)
            if b is None:
                return False
            op = ["+", "-", "*", "L.maximum", "L.minimum"][int(rng.integers(5))]
            x, y = (a, b[0]) if rng.random() < .5 else (b[0], a)
            e = f"{op}({x}, {y})" if op.startswith("L") else f"{x} {op} {y}"
            return self.emit(e, _bc(sa, b[1]))
        if kind == "inplace" and nd >= 2 and sa[-1] == sa[-2]:
            # a value read with its transpose: in place over a dying operand is wrong
            e = ["{0} + L.T({0})", "L.T({0}) * 2.0 - {0}", "L.exp(L.T({0}) * 0.1) + {0}",
                 "L.T({0} * 2.0) + 1.0"][int(rng.integers(4))]
            return self.emit(e.format(a), sa)
        if kind == "reduce" and nd:
            ax = int(rng.integers(nd)); kd = bool(rng.random() < .5)
            op = "L.sum" if rng.random() < .6 else "L.max"
            shape = tuple(d for k, d in enumerate(sa) if k != ax) if not kd else \
                tuple(1 if k == ax else d for k, d in enumerate(sa))
            return self.emit(f"{op}({a}, axis={ax}, keepdims={kd})", shape)
        if kind == "matmul" and nd >= 2:
            if rng.random() < 0.5:
                return self.emit(f"{a} @ L.T({a})", sa[:-1] + (sa[-2],))
            b = self.pick(lambda s: len(s) == 2 and s[0] == sa[-1])
            if b is None:
                b = self.pick(lambda s: len(s) == 2 and s[1] == sa[-1])
                if b is None:
                    return False
                return self.emit(f"{a} @ L.T({b[0]})", sa[:-1] + (b[1][0],))
            return self.emit(f"{a} @ {b[0]}", sa[:-1] + (b[1][1],))
        if kind == "transpose" and nd >= 2:
            perm = tuple(int(p) for p in rng.permutation(nd))
            return self.emit(f"L.transpose({a}, {perm})", tuple(sa[p] for p in perm))
        if kind == "swap" and nd >= 2:
            i, j = rng.choice(nd, 2, replace=False)
            s = list(sa); s[i], s[j] = s[j], s[i]
            return self.emit(f"L.swapaxes({a}, {int(i)}, {int(j)})", s)
        if kind == "reshape" and nd:
            n = int(np.prod(sa))
            opts = [(n,)] + [(d, n // d) for d in (2, 3, 4) if n % d == 0 and n // d > 1]
            shape = opts[int(rng.integers(len(opts)))]
            return self.emit(f"L.reshape({a}, {shape})", shape)
        if kind == "slice" and nd:
            idx, shape = [], []
            for d in sa:
                c = int(rng.integers(4))
                if c == 0 or d < 2:
                    idx.append(":"); shape.append(d)
                elif c == 1:
                    idx.append("::2"); shape.append(len(range(0, d, 2)))
                elif c == 2:
                    idx.append("1:"); shape.append(d - 1)
                else:
                    idx.append("1::2"); shape.append(len(range(1, d, 2)))
            return self.emit(f"{a}[{', '.join(idx)}]", shape)
        if kind == "int" and nd >= 2:
            k = int(rng.integers(sa[0]))
            return self.emit(f"{a}[{k}]", sa[1:])
        if kind == "expand":
            ax = int(rng.integers(nd + 1))
            return self.emit(f"L.expand_dims({a}, {ax})", sa[:ax] + (1,) + sa[ax:])
        if kind == "bcast":
            shape = (int(rng.choice(self.dims)),) + sa
            return self.emit(f"L.broadcast_to({a}, {shape})", shape)
        if kind in ("concat", "stack") and nd:
            b = self.pick(lambda s: s == sa)
            ax = int(rng.integers(nd + (kind == "stack")))
            if kind == "concat":
                shape = list(sa); shape[ax] *= 2
                return self.emit(f"L.concatenate([{a}, {b[0]}], {ax})", shape)
            return self.emit(f"L.stack([{a}, {b[0]}], {ax})", sa[:ax] + (2,) + sa[ax:])
        if kind == "dslice" and nd:
            ax = int(rng.integers(nd)); size = int(rng.integers(1, sa[ax] + 1))
            st = f"i{int(rng.integers(self.n_starts))}"
            shape = list(sa); shape[ax] = size
            return self.emit(f"L.dynamic_slice({a}, {st}, {size}, {ax})", shape)
        if kind == "dus" and nd:
            ax = int(rng.integers(nd)); size = int(rng.integers(1, sa[ax] + 1))
            st = f"i{int(rng.integers(self.n_starts))}"
            sl = ", ".join(f"{0}:{size}" if k == ax else ":" for k in range(nd))
            c = int(rng.integers(4))
            if c == 0:  # update a view of the operand itself
                u = f"{a}[{sl}]"
            elif c == 1:
                u = f"{a}[{sl}] * 2.0 + 1.0"
            else:
                us = list(sa); us[ax] = size
                b = self.pick(lambda s: s == tuple(us))
                u = b[0] if b else f"L.dynamic_slice({a}, i{int(rng.integers(self.n_starts))}, {size}, {ax}) - 1.0"
            return self.emit(f"L.dynamic_update_slice({a}, {u}, {st}, {ax})", sa)
        if kind == "take" and nd:
            n = int(rng.integers(1, 6))
            idx = self.const(rng.integers(0, sa[0], n))
            return self.emit(f"L.take({a}, {idx})", (n,) + sa[1:])
        if kind == "scatter" and nd:
            rows = int(rng.choice(self.dims))
            idx = self.const(rng.integers(0, rows, sa[0]))
            return self.emit(f"L.scatter_add({a}, {idx}, {rows})", (rows,) + sa[1:])
        if kind == "softmax" and nd:
            ax = int(rng.integers(nd))
            return self.emit(f"L.softmax({a}, {ax})", sa)
        if kind == "cumsum" and nd:
            ax = int(rng.integers(nd))
            return self.emit(f"L.cumsum({a}, {ax})", sa)
        if kind == "where":
            b = self.pick(lambda s: s == sa)
            c = self.pick(lambda s: s == sa)
            return self.emit(f"L.where({a} > {b[0]}, {a}, {c[0]} * 0.5)", sa)
        if kind == "scan" and nd >= 1:
            b = self.pick(lambda s: s[1:] == sa and s[0] <= 4)
            if b is None:
                return False
            sq = nd >= 2 and sa[-1] == sa[-2]
            bodies = ["lambda c, x: (c * 0.5 + x, c)", "lambda c, x: (x, c + x)",
                      "lambda c, x: (c, x * c)", "lambda c, x: (L.tanh(c + x), x)"]
            if sq:
                bodies += ["lambda c, x: (L.T(c) + x, L.T(c))", "lambda c, x: (L.T(c) * 0.5 + c, c)"]
            body = bodies[int(self.rng.integers(len(bodies)))]
            n = len(self.lines)
            self.lines.append(f"v{n}c, v{n}y = L.scan({body}, {a}, {b[0]})")
            self.vals.append((f"v{n}c", sa)); self.vals.append((f"v{n}y", b[1]))
            return True
        if kind == "fori" and nd >= 1:
            sq = nd >= 2 and sa[-1] == sa[-2]
            bodies = ["lambda i, c: c * 0.5 + 1.0", "lambda i, c: L.tanh(c) + c"]
            if sq:
                bodies += ["lambda i, c: L.T(c) * 0.9 + c", "lambda i, c: L.T(c) - 0.1"]
            body = bodies[int(self.rng.integers(len(bodies)))]
            return self.emit(f"L.fori_loop(0, {int(self.rng.integers(0, 4))}, {body}, {a})", sa)
        if kind == "cond":
            b = self.pick(lambda s: s == sa)
            sq = nd >= 2 and sa[-1] == sa[-2]
            brs = ["lambda p, q: (p, q)", "lambda p, q: (q, p)", "lambda p, q: (p * 2.0, q)",
                   "lambda p, q: (q - p, p + q)"]
            if sq:
                brs += ["lambda p, q: (L.T(p), q)", "lambda p, q: (L.T(q) + p, L.T(p))"]
            t = brs[int(self.rng.integers(len(brs)))]
            f = brs[int(self.rng.integers(len(brs)))]
            n = len(self.lines)
            self.lines.append(f"v{n}a, v{n}b = L.cond(L.sum({a}) > 0, {t}, {f}, {a}, {b[0]})")
            self.vals.append((f"v{n}a", sa)); self.vals.append((f"v{n}b", sa))
            return True
        if kind in ("scan2", "fori2", "cond2", "while2"):
            return self.two_carries(kind, a, sa)
        if kind == "while" and not self.nodiff and rng.random() < 0.2:
            self.nodiff = True
            sq = nd >= 2 and sa[-1] == sa[-2]
            body = "lambda c: L.T(c) * 2.0" if sq else "lambda c: c * 2.0"
            return self.emit(f"L.while_loop(lambda c: L.sum(L.abs(c)) < 20.0, {body}, {a} + 0.1)", sa)
        return False

    def two_carries(self, kind, a, sa):
        """A loop or cond over the carry (a, o): o another value of a's shape (or a again,
        or a's transpose), which the bodies also read as a closure."""
        rng, nd = self.rng, len(sa)
        sq = nd >= 2 and sa[-1] == sa[-2]
        o = self.pick(lambda s: s == sa)[0]
        o = [o, a, f"L.T({a})"][int(rng.integers(3 if sq else 2))]
        n = len(self.lines)
        pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
        if kind == "scan2":
            b = self.pick(lambda s: len(s) == nd + 1 and s[1:] == sa and s[0] <= 4)
            if b is None:
                return False
            # (body, how many ys)
            bodies = [("lambda c, x: ((c[1], c[0]), c[0])", 1),
                      ("lambda c, x: ((c[0], c[1] + x), (c[0], x))", 2),
                      ("lambda c, x: ((x, c[0]), c[1])", 1),
                      (f"lambda c, x: (({o}, c[0] * 0.5 + x), (c[1], c[1]))", 2),
                      ("lambda c, x: ((c[0], c[0]), x)", 1),
                      ("lambda c, x: (L.fori_loop(0, 2, lambda i, d: (d[1], d[0] + x), c), c[0])", 1)]
            if sq:
                bodies += [("lambda c, x: ((L.T(c[1]), L.T(c[0])), L.T(c[0]))", 1),
                           ("lambda c, x: ((c[0], L.T(x)), (L.T(c[1]), c[1]))", 2)]
            body, n_ys = pick(bodies)
            ys = f"(v{n}y, v{n}c)" if n_ys == 2 else f"v{n}y"
            self.lines.append(f"(v{n}a, v{n}b), {ys} = L.scan({body}, ({a}, {o}), {b[0]})")
            self.vals += [(f"v{n}a", sa), (f"v{n}b", sa), (f"v{n}y", (b[1][0],) + sa)]
            if n_ys == 2:
                self.vals.append((f"v{n}c", (b[1][0],) + sa))
            return True
        if kind == "fori2":
            bodies = ["lambda i, c: (c[1], c[0])", "lambda i, c: (c[0], c[1] * 0.5)",
                      f"lambda i, c: ({o}, c[0] + 1.0)",
                      "lambda i, c: L.scan(lambda d, x: ((d[1], d[0]), x), c, L.stack([c[0], c[1]]))[0]"]
            if sq:
                bodies += ["lambda i, c: (L.T(c[1]), L.T(c[0]))"]
            self.lines.append(f"v{n}a, v{n}b = L.fori_loop(0, {int(rng.integers(0, 4))}, "
                              f"{pick(bodies)}, ({a}, {o}))")
        elif kind == "cond2":
            brs = ["lambda p, q: (q, p)", f"lambda p, q: ({o}, p)", "lambda p, q: (p, p)",
                   f"lambda p, q: (L.fori_loop(0, 1, lambda i, d: d, {o}), q)"]
            self.lines.append(f"v{n}a, v{n}b = L.cond(L.sum({a}) > 0, {pick(brs)}, {pick(brs)}, "
                              f"{a}, {o})")
        else:
            if self.nodiff or rng.random() < 0.5:
                return False
            self.nodiff = True  # while_loop: no reverse mode
            body = pick(["lambda c: (c[1], c[0], c[2] + 1.0)", f"lambda c: ({o}, c[0], c[2] + 1.0)",
                         "lambda c: (c[0], c[1], c[2] + 1.0)"])
            self.lines.append(f"v{n}a, v{n}b, _ = L.while_loop(lambda c: c[2] < "
                              f"{int(rng.integers(0, 4))}.0, {body}, ({a}, {o}, 0.0))")
        self.vals += [(f"v{n}a", sa), (f"v{n}b", sa)]
        return True

    def pick_outputs(self):
        rng = self.rng
        used = set()
        for l in self.lines:
            used |= set(re.findall(r"\b[vx]\d+[cyab]?\b", l.split(" = ", 1)[1]))
        leaves = [n for n, _ in self.vals if n not in used and n.startswith("v")]
        outs = [self.vals[-1][0]]
        for n in leaves[::-1][:int(rng.integers(2, 8))]:
            if n not in outs:
                outs.append(n)
        for _ in range(int(rng.integers(0, 4))):
            c = int(rng.integers(6))
            v = self.vals[int(rng.integers(len(self.vals)))]
            if c == 0:
                outs.append(outs[0])  # the same value twice
            elif c == 1:
                outs.append(self.inputs[int(rng.integers(len(self.inputs)))][0])
            elif c == 2 and len(v[1]) >= 2:
                outs.append(f"L.T({v[0]})")
            elif c == 3 and len(v[1]) >= 1 and v[1][0] > 1:
                outs.append(f"{v[0]}[1:]")
            else:
                outs.append(v[0])
        self.outputs = outs

    def source(self):
        args = ", ".join([n for n, _ in self.inputs] + [f"i{k}" for k in range(self.n_starts)])
        body = "\n".join("    " + l for l in self.lines)
        return f"def f(L, {args}):\n{body}\n    return ({', '.join(self.outputs)},)\n"

    def make(self, L):
        ns = dict(self.consts)
        exec(self.source(), ns)
        f = ns["f"]
        return lambda *a: f(L, *a)

    def inputs_for(self, rng):
        xs = [rng.standard_normal(s).astype(self.dtype) for _, s in self.inputs]
        starts = [np.int64(int(rng.integers(-5, 6))) for _ in range(self.n_starts)]
        return xs, starts


def _bc(a, b):
    try:
        s = np.broadcast_shapes(a, b)
    except ValueError:
        return None
    return s if s == a else None  # keep the left shape (no growth)
