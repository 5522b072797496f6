"""Collective communication as IR ops: all-reduce across the processes (ranks) of a job.

    %9:f32[8,4]  = allreduce %7 {reduce="mean"}          blocking: every rank gets the mean
    %12:f32[40]  = allreduce_start %7, %10 {bucket=0}    pack operands into one flat bucket,
                                                         start reducing it (non-blocking)
    %13:f32[40]  = allreduce_wait %12 {reduce="mean"}    the reduced bucket, once it arrived

Semantics (SPMD, as JAX's psum and torch.distributed.all_reduce): every rank runs the same
graph; `allreduce(x)` is the sum (or mean) of x over the ranks. `allreduce_start(xs...)` is the
ravelled operands concatenated (its value is the local bucket), and `allreduce_wait(b)` is
`allreduce(b)`, so `wait(start(a, b))[:a.size].reshape(a.shape) == allreduce(a)`. The pair
exists for the compiled runtime: it starts a non-blocking reduction (MPI Iallreduce on the
bucket's contiguous buffer) where `allreduce_start` stands and waits for it where
`allreduce_wait` stands, so that computation placed between them overlaps the communication.
passes/buckets.py places them as PyTorch DDP's reducer and Horovod's tensor fusion do:
gradients packed into ~25 MB buckets in the order the backward pass produces them, each
bucket started as soon as its last gradient exists, waited for just before its first reader.
A start's only reader must be its wait: while a reduction is in flight, the runtime reduces
the bucket in place.

Gradient rules: with the loss of the whole job taken as the sum of every rank's loss, the
vjp of a sum all-reduce is the sum all-reduce of the cotangent (and mean of mean); the vjp of
the packing is the unpacking.

Evaluation goes through a communicator registered from above (`set_communicator`, done by
graphc.distributed with MPI); this module never imports the runtime or mpi4py. With none
registered the job is one process and every all-reduce is the identity. A communicator needs
`size` and `allreduce_sum(array) -> new array` (blocking); the compiled runtime
(runtime/collectives.py) also uses its `start_sum(buffer)` for the non-blocking form.

Collective ops are never constant-folded (`OpDef.collective`): every rank must reach every
collective in the same order when the plan runs, not when one rank happens to compile it.
"""
from __future__ import annotations

import math

import numpy as np

from ..types import TensorType, as_dtype, is_float
from . import api as F
from .registry import apply, check, defop

REDUCTIONS = ("sum", "mean")
_HALF = {np.dtype("float16"), as_dtype("bfloat16")}
_COMMUNICATOR = []


def set_communicator(comm) -> None:
    """Route every all-reduce through `comm` (None: back to one process)."""
    _COMMUNICATOR[:] = [] if comm is None else [comm]


def communicator():
    """The registered communicator, or None for a single process."""
    return _COMMUNICATOR[0] if _COMMUNICATOR else None


def reduce_array(x: np.ndarray, reduce: str) -> np.ndarray:
    """The sum or mean of x over the ranks, as a new array."""
    comm = communicator()
    if comm is None or comm.size == 1:
        return np.array(x, copy=True)
    # (np.ascontiguousarray makes a 0-d value 1-d: the total takes back x's shape)
    total = comm.allreduce_sum(np.ascontiguousarray(x)).reshape(np.shape(x))
    if reduce == "mean":
        np.divide(total, comm.size, out=total)
    return total


# ---- type rules -----------------------------------------------------------------------------
def _check_reduce(t, reduce):
    check(reduce in REDUCTIONS, f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    check(reduce == "sum" or is_float(t.dtype), f"a mean all-reduce needs floating point, "
                                                f"got {t.dtype}")


def _allreduce_infer(types, reduce):
    (t,) = types
    _check_reduce(t, reduce)
    check(t.dtype != np.dtype("bool"), "all-reduce of a bool tensor")
    return t


def _start_infer(types, bucket):
    check(len(types) >= 1, "allreduce_start needs at least one operand")
    dtypes = {t.dtype for t in types}
    check(len(dtypes) == 1, f"a bucket holds one dtype, got {sorted(str(d) for d in dtypes)}")
    check(types[0].dtype != np.dtype("bool"), "all-reduce of bool tensors")
    check(isinstance(bucket, int) and bucket >= 0, f"bucket must be an index >= 0, got {bucket!r}")
    return TensorType((sum(t.size for t in types),), types[0].dtype)


def _wait_infer(types, reduce):
    (t,) = types
    check(t.ndim == 1, f"allreduce_wait reads a flat bucket, got {t.ndim} axes")
    _check_reduce(t, reduce)
    return t


# ---- gradient rules ---------------------------------------------------------------------------
def _vjp_allreduce(ctx, g):
    return [allreduce(g, ctx.attrs["reduce"])]


def _vjp_start(ctx, g):
    return [piece if need else None
            for piece, need in zip(unpack(g, [x.shape for x in ctx.inputs]), ctx.needs)]


def _flops(types, out, **_):
    return float(out.size)  # one addition per element and rank


@defop("allreduce", _allreduce_infer, vjp=_vjp_allreduce, arity=1, flops=_flops,
       collective=True)
def _allreduce(x, reduce):
    return reduce_array(x, reduce)


@defop("allreduce_start", _start_infer, vjp=_vjp_start, collective=True)
def _allreduce_start(*xs, bucket):
    return np.concatenate([np.ravel(x) for x in xs])


@defop("allreduce_wait", _wait_infer, vjp=_vjp_allreduce, arity=1, flops=_flops,
       collective=True)
def _allreduce_wait(bucket, reduce):
    return reduce_array(bucket, reduce)


# ---- functional API ---------------------------------------------------------------------------
def allreduce(x, reduce: str = "mean"):
    """The sum or mean of x over all ranks (identity for one process). A float16 or bfloat16
    x is reduced in float32 and rounded once: MPI has no half-precision types, and the
    runtime's buckets are plain float32 buffers (a bucket of halves went to the library
    implementation, which packs without reducing: each rank kept its own gradients)."""
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype) in _HALF:
        return F.cast(apply("allreduce", F.cast(x, "float32"), reduce=reduce), dtype)
    return apply("allreduce", x, reduce=reduce)


def allreduce_start(xs, bucket: int = 0):
    return apply("allreduce_start", *xs, bucket=bucket)


def allreduce_wait(flat, reduce: str = "mean"):
    return apply("allreduce_wait", flat, reduce=reduce)


def unpack(flat, shapes):
    """The pieces of a flat bucket, in packing order, with their shapes (views, no copies)."""
    pieces, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        piece = F.slice_(flat, (offset,), (offset + size,), (1,))
        pieces.append(F.reshape(piece, tuple(shape)))
        offset += size
    return pieces


def bucketed_allreduce(xs, reduce: str = "mean", bucket: int = 0):
    """allreduce of every x through one bucket: start, wait, unpack."""
    flat = allreduce_wait(allreduce_start(xs, bucket), reduce)
    return unpack(flat, [F._shape(x) for x in xs])


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import broadcasting, defbatch, loop_over_batch

    defbatch("allreduce")(broadcasting("allreduce"))  # elementwise across ranks
    for name in ("allreduce_start", "allreduce_wait"):
        loop_over_batch(name, "a bucket is one flat message whose layout the gradient "
                              "buckets fix; all-reduce after vmap, not inside it")


_register_batching()
