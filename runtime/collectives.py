"""Running the collective ops (ir/ops/collective.py) in a compiled plan, on MPI.

A plan calls these from its generated code:

    _collectives.start(t12, (t7, t10))       # allreduce_start: pack the operands into the
                                             # bucket's buffer, start an in-place Iallreduce
    ...                                      # kernels that overlap the communication
    t13 = _collectives.wait(t12, 'mean')     # allreduce_wait: wait, divide by the rank count

The bucket's buffer is a plan buffer like any other (runtime.memory) and `allreduce_wait` is a
view of it (form="view" in its runtime/op_lowering.py record), so the reduced gradients are
read in place through slices of the bucket. Nothing else writes the buffer between start
and wait: it is live from the start to its last reader.

Open MPI moves the data of a non-blocking collective only inside MPI calls (it has no progress
thread by default), so while a bucket is in flight the plan calls `progress()` after its
heavier kernels (mpi_progress=True in runtime/op_lowering.py): one MPI_Testall, about a
microsecond when nothing arrived.

`MPICommunicator` wraps an mpi4py communicator for ir.ops.collective (registered by
graphc.distributed); mpi4py is imported only by code that is given an MPI communicator.
"""
from __future__ import annotations

import numpy as np

from ir.ops.collective import communicator

_IN_FLIGHT = {}  # id(bucket buffer) -> MPI request
# A request's data must stay alive (and unmoved) until the wait: the plan keeps its buffers.
_WAITING = [0]  # > 0 while the main thread waits inside a collective
_ENTERED = [0]  # collectives entered so far (the watchdog tells one long wait from many)


def waiting() -> bool:
    """Whether this process is now blocked in a collective (graphc.watchdog reports it: a
    rank that waits is not the one that hangs)."""
    return _WAITING[0] > 0


def entered() -> int:
    """How many collectives this process has entered: a rank seen waiting at two heartbeats
    with another count between them went through collectives meanwhile (progress), rather
    than waiting in one."""
    return _ENTERED[0]


class _Waiting:
    def __enter__(self):
        _WAITING[0] += 1
        _ENTERED[0] += 1

    def __exit__(self, *exc):
        _WAITING[0] -= 1


_waiting = _Waiting()
# the same, for graphc.distributed's collectives outside any graph (the agreements at each
# step boundary and save, broadcasts): a rank waiting in one while rank 0 writes a checkpoint
# was not 'waiting' to the watchdog, which then blamed it, not rank 0, for the pause
in_collective = _waiting


class MPICommunicator:
    """Sum all-reduces over an mpi4py communicator (blocking and non-blocking)."""

    def __init__(self, comm):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        out = np.array(array, copy=True, order="C")
        with _waiting:
            self.comm.Allreduce(self._mpi.IN_PLACE, out, op=self._mpi.SUM)
        return out

    def start_sum(self, buffer: np.ndarray):
        """A request reducing the contiguous `buffer` in place; `.Wait()` completes it."""
        return self.comm.Iallreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)


def start(buffer: np.ndarray, operands) -> None:
    """allreduce_start: copy the operands into the bucket, then start reducing it."""
    offset = 0
    for x in operands:
        buffer[offset:offset + x.size] = x.reshape(-1)
        offset += x.size
    comm = communicator()
    if comm is not None and comm.size > 1:
        _IN_FLIGHT[id(buffer)] = comm.start_sum(buffer)


def wait(buffer: np.ndarray, reduce: str) -> np.ndarray:
    """allreduce_wait: the bucket reduced over every rank (the same buffer)."""
    request = _IN_FLIGHT.pop(id(buffer), None)
    if request is None and communicator() is not None and communicator().size > 1:
        # (its start ran as the library op, which packs without reducing: each rank would
        # go on with its own values)
        raise RuntimeError("allreduce_wait: the bucket was never started on MPI")
    if request is not None:
        with _waiting:
            request.Wait()
        if reduce == "mean":
            np.divide(buffer, communicator().size, out=buffer)
    return buffer


def progress() -> None:
    """Let MPI move the data of the buckets in flight (a no-op when none is)."""
    if _IN_FLIGHT:
        for request in list(_IN_FLIGHT.values()):
            request.Test()


def in_flight() -> int:
    """Buckets started and not yet waited for (0 between plan calls)."""
    return len(_IN_FLIGHT)
