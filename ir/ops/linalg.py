"""matmul (batched, numpy broadcasting over leading axes) and einsum."""
from __future__ import annotations

import numpy as np

from ..types import TensorType, broadcast_shapes
from . import api as F
from .registry import check, defop


def _matmul_infer(types):
    a, b = types
    check(a.dtype == b.dtype, f"operands must have one dtype, got {a.dtype} and {b.dtype}")
    check(a.dtype != np.dtype("bool"), "matmul of bool tensors")
    check(a.ndim >= 2 and b.ndim >= 2, "operands need at least 2 axes (use graphc.matmul "
                                       "for vectors)")
    check(a.shape[-1] == b.shape[-2],
          f"contracting dimensions differ: {a.shape[-1]} vs {b.shape[-2]}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    check(batch is not None, "batch dimensions cannot be broadcast together")
    return TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)


def _vjp_matmul(ctx, g):
    a, b = ctx.inputs
    ga = F.unbroadcast(F.matmul(g, F.swapaxes(b, -1, -2)), a.shape) if ctx.needs[0] else None
    gb = F.unbroadcast(F.matmul(F.swapaxes(a, -1, -2), g), b.shape) if ctx.needs[1] else None
    return [ga, gb]


def _matmul_flops(types, out, **_):
    return 2.0 * out.size * types[0].shape[-1]


defop("matmul", _matmul_infer, vjp=_vjp_matmul, arity=2, flops=_matmul_flops)(np.matmul)


def parse_einsum(spec: str, ndims):
    """'bij,bjk->bik' -> (['bij', 'bjk'], 'bik'). The op's spec is canonical (graphc.einsum
    writes it): explicit output, letters only; '' stands for a 0-d operand or result, and a
    letter may repeat within an operand (a diagonal)."""
    check("->" in spec, f"einsum spec {spec!r} needs an explicit output ('...->...')")
    lhs, out = spec.replace(" ", "").split("->")
    ins = lhs.split(",")
    check(len(ins) == len(ndims), f"spec has {len(ins)} operands, got {len(ndims)}")
    for sub, nd in zip(ins, ndims):
        check(all(c.isascii() and c.isalpha() for c in sub) and len(sub) == nd,
              f"subscripts {sub!r} do not match a {nd}-d operand")
    check(len(set(out)) == len(out) and set(out) <= set("".join(ins))
          and all(c.isascii() and c.isalpha() for c in out), f"bad output subscripts {out!r}")
    return ins, out


def _einsum_infer(types, spec):
    dtypes = {t.dtype for t in types}
    check(len(dtypes) == 1, "operands must have one dtype")
    ins, out = parse_einsum(spec, [t.ndim for t in types])
    sizes = {}
    for sub, t in zip(ins, types):
        for c, d in zip(sub, t.shape):
            check(sizes.setdefault(c, d) == d, f"index {c!r} has sizes {sizes[c]} and {d}")
    return TensorType(tuple(sizes[c] for c in out), types[0].dtype)


def _unique(sub):
    return "".join(dict.fromkeys(sub))


def _vjp_einsum(ctx, g):
    spec = ctx.attrs["spec"]
    ins, out = parse_einsum(spec, [x.ndim for x in ctx.inputs])
    sizes = {c: d for sub, x in zip(ins, ctx.inputs) for c, d in zip(sub, x.shape)}
    grads = []
    for i, (sub, x) in enumerate(zip(ins, ctx.inputs)):
        if not ctx.needs[i]:
            grads.append(None)
            continue
        others = [(s, y) for j, (s, y) in enumerate(zip(ins, ctx.inputs)) if j != i]
        present = set(out).union(*(set(s) for s, _ in others))
        uniq = _unique(sub)
        kept = "".join(c for c in uniq if c in present)  # indices summed away only in x
        gx = F.einsum(",".join([out] + [s for s, _ in others]) + "->" + kept,
                      g, *[y for _, y in others])
        if kept != uniq:
            shape = tuple(sizes[c] if c in present else 1 for c in uniq)
            gx = F.broadcast_to(F.reshape(gx, shape), tuple(sizes[c] for c in uniq))
        if uniq != sub:
            # a repeated letter reads a diagonal: its gradient lies on that diagonal, placed
            # there by multiplying with identity matrices over the repeats
            spare = iter(c for c in F.EINSUM_LETTERS if c not in spec)
            renamed, eyes, seen = [], [], set()
            for c in sub:
                if c in seen:
                    fresh = next(spare)
                    renamed.append(fresh)
                    eyes.append((c + fresh, np.eye(sizes[c], dtype=x.dtype)))
                else:
                    seen.add(c)
                    renamed.append(c)
            gx = F.einsum(",".join([uniq] + [s for s, _ in eyes]) + "->" + "".join(renamed),
                          gx, *[e for _, e in eyes])
        grads.append(gx)
    return grads


def _einsum_flops(types, out, spec):
    ins, _ = parse_einsum(spec, [t.ndim for t in types])
    sizes = {c: d for sub, t in zip(ins, types) for c, d in zip(sub, t.shape)}
    total = 1
    for d in sizes.values():
        total *= d
    return 2.0 * total


@defop("einsum", _einsum_infer, vjp=_vjp_einsum, flops=_einsum_flops)
def _einsum(*xs, spec):
    return np.einsum(spec, *xs, optimize=len(xs) > 2)


# ---- a @ b + c (+ d): a dense layer's product, bias and residual in one op ----------------------
def _matmul_add_infer(types):
    check(len(types) in (3, 4), f"matmul_add takes a, b and one or two addends, got "
                                f"{len(types)} operands")
    a, b, *addends = types
    product = _matmul_infer([a, b])
    for c in addends:
        check(c.dtype == product.dtype, f"the addend must be {product.dtype}, got {c.dtype}")
        check(broadcast_shapes(c.shape, product.shape) == product.shape,
              f"the addend {c.shape} does not broadcast to the product {product.shape}")
    return product


def _vjp_matmul_add(ctx, g):
    a, b, *addends = ctx.inputs
    ga = F.unbroadcast(F.matmul(g, F.swapaxes(b, -1, -2)), a.shape) if ctx.needs[0] else None
    gb = F.unbroadcast(F.matmul(F.swapaxes(a, -1, -2), g), b.shape) if ctx.needs[1] else None
    return [ga, gb] + [F.unbroadcast(g, c.shape) if need else None
                       for c, need in zip(addends, ctx.needs[2:])]


def matmul_add(a, b, c, d=None):
    """a @ b + c (+ d), each addend broadcast to the product, added in that order. The compiled
    runtime's fusion stage writes `add(matmul(a, b), bias)` this way, so that the GEMM adds the
    product onto the bias it is given (runtime.gemm, beta = 1) instead of a second pass adding
    the bias, and `add(that, r)` with a full-shape r (a residual stream) as matmul_add(a, b,
    bias, r) or matmul_add(a, b, r): the GEMM adds the product onto r (in r's own buffer when
    r dies there)."""
    out = np.matmul(a, b)
    out += c
    if d is not None:
        out += d
    return out


defop("matmul_add", _matmul_add_infer, vjp=_vjp_matmul_add,
      flops=lambda types, out, **_: _matmul_flops(types, out) + out.size * (len(types) - 2)
      )(matmul_add)


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import defbatch, example_ndim, with_rank
    from .registry import apply

    @defbatch("matmul")
    def _matmul_rule(args, batched, size):
        # the batch axis leads matmul's own (broadcast) batch axes; F.matmul makes a batch of
        # rows times one matrix a single GEMM
        rank = max(example_ndim(x, b) for x, b in zip(args, batched))
        return F.matmul(*[with_rank(x, rank) if b else x for x, b in zip(args, batched)])

    @defbatch("einsum")
    def _einsum_rule(args, batched, size, spec):
        # a fresh letter for the batch axis, leading each batched operand and the result
        ins, out = parse_einsum(spec, [example_ndim(x, b) for x, b in zip(args, batched)])
        letter = next(c for c in F.EINSUM_LETTERS if c not in spec)
        ins = [letter + sub if b else sub for sub, b in zip(ins, batched)]
        return apply("einsum", *args, spec=",".join(ins) + "->" + letter + out)

    @defbatch("matmul_add")
    def _matmul_add_rule(args, batched, size):
        # the batched product, then each addend with its example axes aligned to the product's
        a, b, *addends = args
        product = _matmul_rule([a, b], batched[:2], size) if batched[0] or batched[1] \
            else F.matmul(a, b)
        example_rank = F._ndim(product) - (1 if batched[0] or batched[1] else 0)
        for c, is_batched in zip(addends, batched[2:]):
            product = product + (with_rank(c, example_rank) if is_batched else c)
        return product


_register_batching()
