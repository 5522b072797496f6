"""The per-call check of a compiled function's weak (Python number) int arguments.

The trace computes a Python int argument, and the numbers computed from it, in a fixed
integer dtype, where eager code computes Python ints exactly. ir.weak works out, once per
plan, which values must fit which dtype and which divisors must not be 0
(weak.call_checks); each call of the plan checks its arguments here, before running it,
and refuses one that would give a value eager code does not in one line.
"""
from __future__ import annotations

import numpy as np

from ir import weak
from ir.errors import GraphcError, user_location


class WeakIntZeroDivision(GraphcError, ZeroDivisionError):
    """A compiled function's number argument divided by an exact 0 (`k // j`, `k / j`, j = 0,
    or `k ** -1`, k = 0), which eager code's Python numbers refuse with ZeroDivisionError:
    the same error, in one line (weak.python_divisions)."""


def check_weak_ints(leaves, limits):
    """A Python int argument, or a number computed from such arguments (`k + 1`), that the
    trace cast to a narrower integer dtype (where it met an int32 tensor, say) must fit it:
    eager code refuses `int32_tensor + 2**40` too; one that an op other than + - * reads
    (`(k + k) % 5`) must fit the int64 the graph computes it in, where eager code computes
    Python ints exactly (weak.int_limits)."""
    if not limits:
        return
    weak_inputs, casts, divisions, fast = limits
    # (the fits are proven for weak int arguments within [-B, B]: weak.call_checks)
    fits = fast is not None
    if fits:  # (a loop: all() of a generator costs twice as much)
        bound = fast[0]
        for i in fast[1]:
            if not -bound <= leaves[i] <= bound:
                fits = False
                break
    if fits and not divisions:
        return
    values = {node: leaves[i] for i, node in weak_inputs}
    known = {}
    for division in divisions:  # (first: eager code raises there, before a tensor meets it)
        zero = weak.zero_division(division, values, known)
        if zero is not None:
            what, operand = zero
            if operand.op == "cast":  # (k / j divides the float j is cast to)
                operand = operand.inputs[0]
            read = inputs_read(operand, values)
            whose = f"argument {operand.attrs['name']}" if operand.op == "input" else \
                f"computed from {', '.join(n.attrs['name'] for n in read)}" if read else \
                "a number the function wrote"
            role = "base" if division.op == "pow" else "divisor"
            raise WeakIntZeroDivision(f"compiled function: {what}: the {role} ({whose}) is 0, "
                                      "where eager code's Python numbers raise "
                                      "ZeroDivisionError (gc.* ops of them give numpy's value, "
                                      "but the compiled function cannot tell the two apart, "
                                      "so it refuses both)", (user_location(),))
    if fits:
        return
    for node, (dtype, reader) in casts:
        span = weak.bound_range(node, values, known)
        info = np.iinfo(dtype)
        if span is None or info.min <= span[0] and span[1] <= info.max:
            continue
        if span[0] != span[1]:  # a where on the way: (the same where used twice picks once)
            span = weak.bound_range(node, values, known, branches=True)
            if info.min <= span[0] and span[1] <= info.max:
                continue
        value = span[1] if span[1] > info.max else span[0]
        read = inputs_read(node, values)
        if type(node) is weak.Bound:  # (computed in a cond's or loop's region)
            node = None
        if max(-span[0], span[1]) >= weak.HUGE[1]:  # from a power too big to compute
            names = " from " + ", ".join(n.attrs["name"] for n in read) if read else ""
            what = (f"a number of more than 256 bits (an int power, 2 ** k with k = 1000, or "
                    f"what is computed from one), computed{names},")
        elif span[0] != span[1]:  # (either branch of a where, whichever its condition picks)
            names = "from " + ", ".join(n.attrs["name"] for n in read) + " " if read else ""
            what = (f"{value}, computed {names}with a gc.where (each branch is checked, as "
                    "jax.jit checks them),")
        elif node is not None and node.op == "input":
            what = f"argument {node.attrs['name']} = {value}"
        elif read:
            what = f"{value}, computed from {', '.join(n.attrs['name'] for n in read)},"
        else:  # a number the function wrote: cond(p, f, g, x, 2**40)
            what = f"the number {value}"
        if reader is not None:  # an int64 the graph computes, read by a non-ring op
            use = weak.describe_use(reader)
            raise GraphcError(f"compiled function: {what} does not fit in {dtype}, in which "
                              f"the compiled function computes it before {use} (eager code "
                              "computes Python ints exactly); pass smaller numbers, or "
                              "compute it outside the compiled function", (user_location(),))
        raise GraphcError(f"compiled function: {what} does not fit in {dtype} (the dtype of "
                          "the tensor it meets); pass an array of a wider dtype or cast the "
                          "tensor first", (user_location(),))


def inputs_read(node, inputs) -> list:
    """The nodes among `inputs` that node is computed from, in the graph's input order (a
    weak.Bound: those its feeds are computed from)."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if type(n) is weak.Bound:
            stack.extend(x for _, x in n.feeds)
        elif n not in seen:
            seen.add(n)
            stack.extend(n.inputs)
    return [n for n in inputs if n in seen]
