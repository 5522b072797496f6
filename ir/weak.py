"""Weakly typed graph values: a compiled function's Python-number arguments.

In eager code `x_f32 + k` with a Python int k is float32: the number takes the tensor's dtype
(ir.ops.registry's weak scalars). A compiled function traces k as an int64 input instead, and
`x_f32 + k` used to be refused there ("operands must have one dtype"). As jax.jit does, such an
input is *weakly typed*: where it meets a tensor in an arithmetic or comparison op it takes
that tensor's dtype (a cast in the graph), and values computed from weak values and Python
numbers only stay weak (`x + (k + 1)`). A weak float still does not meet integer tensors (as
in eager code), and everything else (an index, a loop bound, a shape) sees an int64.

Graph.process calls `adopt`; a graph keeps its weak nodes' ids in `weak_ids`.
"""
from __future__ import annotations

import itertools

import numpy as np

from .errors import GraphcError, with_article
from .ops.control_flow import region_feeds, regions_of
from .types import FLOAT_SCALARS, is_float, is_int

# the ops whose operands (at these positions; None: all) must share one dtype, so that a
# weak one takes the dtype of the others
_ADOPTING = {name: None for name in ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                     "lt", "le", "gt", "ge", "eq", "ne", "floor_divide",
                                     "remainder", "fmod", "arctan2", "logaddexp", "hypot")}
_ADOPTING["where"] = (1, 2)  # the values, not the condition

# the unary ops a Python number goes through as a number (-k, abs(k), sqrt(k), as JAX's
# elementwise ops and stop_gradient), and the identity reshape a transformation's fresh
# variable is (graphc.transforms._variables): their result is as weak as their operand
_KEEPING = ("neg", "abs", "reshape", "stop_gradient", "exp", "log", "sqrt", "rsqrt", "tanh", "sin",
            "cos", "sigmoid", "erf", "log1p", "expm1", "softplus", "floor", "ceil", "round", "tan",
            "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "log2",
            "log10", "exp2", "trunc")

# {op: the operand positions (None: all) where eager code (runtime.eager) takes a weak value
# as the number it holds}: where it adopts a dtype; elsewhere (an index, take's indices) a
# weak value is the strong tensor it holds, as a traced one stays int64 there
NUMBER_POSITIONS = {**_ADOPTING, **dict.fromkeys(_KEEPING)}

# the ops whose result is weak where every operand is (eager code: runtime.eager), every
# operand at its NUMBER_POSITIONS: where's two values, not its bool condition (JAX's
# where(c, 2.0, 1.0) is weak; as a strong float32 it was refused beside float64 data)
KEEPS_WEAK = frozenset(NUMBER_POSITIONS)


def is_weak(x) -> bool:
    graph = getattr(x, "graph", None)
    return graph is not None and getattr(x, "id", None) in getattr(graph, "weak_ids", ())


def adopt(opname: str, inputs: list, cast, attrs=None) -> tuple[list, bool]:
    """(the operands with weak ones cast to the dtype of the strong tensors they meet, whether
    the result is weak). `cast(node, dtype)` builds the cast; `attrs` are the op's."""
    if opname in _KEEPING:
        identity = opname != "reshape" or tuple((attrs or {}).get("shape", ())) == \
            tuple(inputs[0].shape)
        return inputs, identity and is_weak(inputs[0])
    positions = _ADOPTING.get(opname, ())
    if positions is None:
        positions = range(len(inputs))
    values = [i for i in positions if i < len(inputs)]
    if not values:
        return inputs, False
    weak = [i for i in values if is_weak(inputs[i])]
    strong = [inputs[i].dtype for i in values if i not in weak and hasattr(inputs[i], "dtype")
              and not isinstance(inputs[i], (np.generic, bool, int, float))]
    target = next((np.dtype(d) for d in strong if np.dtype(d) != np.dtype(bool)), None)
    inputs = list(inputs)
    if target is None:
        if strong:  # only masks: the mixing rules of eager code apply (no cast)
            return inputs, False
        # weak values and Python numbers only: a float among them (a number, or a weak
        # value such as a Python-float argument: lr * step) makes weak integers floats of
        # its dtype, and so do true division and a power (k ** -1: a weak int's power by an
        # int >= 0 or a traced int is an int, ir.ops.api.pow), as Python's 1 / n and k ** -1
        # are floats (float64: exact for the int64 values, cast down where a strong float
        # meets them)
        floats = [np.dtype(inputs[i].dtype) for i in weak if is_float(inputs[i].dtype)]
        if floats or opname in ("div", "pow") or \
                any(isinstance(inputs[i], FLOAT_SCALARS) for i in values):
            dtype = floats[0] if floats else np.dtype(np.float64)
            for i in weak:
                if not is_float(inputs[i].dtype):
                    inputs[i] = cast(inputs[i], dtype)
        return inputs, True
    for i in weak:
        dtype = np.dtype(inputs[i].dtype)
        if dtype == target or (is_float(dtype) and not is_float(target)):
            continue  # (a weak float meeting integers stays an error, as in eager code)
        inputs[i] = cast(inputs[i], target)
    return inputs, False


def result_is_weak(node, index: int) -> bool:
    """Whether result `index` of control-flow `node` (what its tuple_get reads) is weak, as
    eager code leaves a Python number one: a branch result every branch returns weak (cond(p,
    f, g, k) with f and g giving k + 1 and k - 1), and a loop carry weak in the body both as
    it comes in and as the body returns it (scan(lambda c, x: (c + 1, x * c), k, xs)). A
    scan's stacked results (ys) are arrays, as eagerly."""
    if node.op == "cond":
        return all(is_weak(branch.outputs[index]) for branch in node.attrs["branches"])
    if node.op == "scan":
        body, first = node.attrs["body"], node.attrs["consts"]
        if index >= node.attrs["carries"]:
            return False
    elif node.op == "while_loop":
        body, first = node.attrs["body_fn"], node.attrs["body_consts"]
    else:
        return False
    return is_weak(body.inputs[first + index]) and is_weak(body.outputs[index])


# the ops whose weak integer result is its operands' value modulo 2**64 where the graph's
# int64 wraps (a ring's operations, a where's pick of a value): where such a result is used,
# its check sees the exact value, so an operand of one need not fit int64 itself
_WRAPPING = frozenset(("add", "sub", "mul", "neg", "reshape"))


class Bound:
    """A weak int computed inside a branch's or loop's region (`node`: a node of it, or a
    Bound of a region inside it) from weak values passed in: `feeds`, ((region input, the
    node of the enclosing graph it takes), ...), the region's inputs a call can know (not a
    loop's carries, which change at each step). int_limits keys its check so, and
    bound_range computes it as the call's values flow in (cond(p, lambda a: x + (a + a) %
    5, ..., k): (a + a) from k)."""
    __slots__ = ("node", "feeds")

    def __init__(self, node, feeds):
        self.node, self.feeds = node, feeds

    @property
    def dtype(self):
        return self.node.dtype

    def __repr__(self):
        return f"Bound({self.node!r})"


# the key of `known`'s {id(feeds): (feeds, the values fed, the region's own known)}: the
# Bounds of one region share their feeds tuple (int_limits), so what one computes in there
# is reused by the next (N reads in a cond body cost O(N), not O(N**2)). (An object: its
# hash, id's, is no Node's, so a lookup never calls a Node's symbolic ==.)
_REGIONS = object()


def bound_range(key, inputs: dict, known: dict, branches: bool = False):
    """exact_range of an int_limits key (branch_range's where `branches`): a node of the
    graph `inputs` are of, or a Bound, computed from the range of each value it is fed
    (None where one is unknown). `known` is exact_range's, for `inputs` (a Bound's region
    keeps its own in there)."""
    if type(key) is not Bound:
        return branch_range(key, inputs) if branches else exact_range(key, inputs, known)
    regions = known.get(_REGIONS)
    if regions is None:
        regions = known[_REGIONS] = {}
    region = regions.get(id(key.feeds))
    if region is None:
        fed = {}
        for inner, outer in key.feeds:
            span = bound_range(outer, inputs, known)
            if span is not None:
                fed[inner] = span[0] if span[0] == span[1] else span
        region = regions[id(key.feeds)] = (key.feeds, fed, {})  # (feeds: its id stays one)
    if branches and tuple in map(type, region[1].values()):
        # a where's value fed in (gc.cond(p, lambda a: x + (a - a), ..., where(n > 0, k,
        # 0))) keeps its branch identity in there, as at top level: each way the outer
        # wheres pick gives exact feeds (`a - a` is 0 for each); hull of the inner values
        picked = _picked_range(key, inputs)
        if picked is not None:
            return picked
    return bound_range(key.node, region[1], region[2], branches)


def _picked_range(key, inputs: dict, limit: int = 64):
    """branch_range of Bound `key`, whose feeds hold a where's range: the hull, over each way
    the wheres they are computed from pick (grouped by condition, at most `limit` ways), of
    key's value from the feeds computed under that pick; None past `limit` or where one is
    unknown (then each feed counts as an independent range)."""
    known = {}
    for _, outer in key.feeds:
        exact_range(outer, inputs, known)
    groups = _where_groups(known)
    if not groups or 2 ** len(groups) > limit:
        return None

    def under(picks):
        fed = {}
        for inner, outer in key.feeds:
            span = exact_range(outer, inputs, {}, picks)
            if span is not None:
                fed[inner] = span[0] if span[0] == span[1] else span
        return bound_range(key.node, fed, {}, branches=True)
    return _hull_over_picks(groups, under)


def _hull_over_picks(groups, range_under):
    """The hull of range_under(picks) over each way the where groups may pick (a where
    node -> the branch, 1 or 2, its group takes); None where one way's range is unknown."""
    lo = hi = None
    for ways in itertools.product((1, 2), repeat=len(groups)):
        picks = {n: way for way, group in zip(ways, groups.values()) for n in group}
        one = range_under(picks)
        if one is None:
            return None
        lo, hi = (one if lo is None else (min(lo, one[0]), max(hi, one[1])))
    return lo, hi


def call_checks(inputs: list, limits: dict) -> tuple:
    """(int_limits' entries a call can check, a fast path: (B, the positions of the weak int
    inputs) where every entry is proven to fit its dtype while each weak int argument is
    within [-B, B] (B the largest power of two so, by exact_range over those ranges), so
    that a call tests only that, or None), for a graph's weak `inputs`, [(argument position,
    input node)]. An entry exact_range cannot compute even from ranges (one read from a
    loop's result) is never checked: not kept. (Divisions are checked at every call apart:
    a divisor's range holds 0; by 0 exact_range gives numpy's 0, as the graph does.)"""
    ints = [(i, node) for i, node in inputs if node.dtype.kind in "iu"]
    unit = {node: (-1, 1) for _, node in ints}
    known = {}  # (one for all entries: a value read by many is computed once)
    entries = [(key, limit) for key, limit in limits.items()
               if bound_range(key, unit, known) is not None]

    def fit(bound):
        ranges = {node: (-bound, bound) for _, node in ints}
        known = {}
        for key, (dtype, _) in entries:
            lo, hi = bound_range(key, ranges, known)
            info = np.iinfo(dtype)
            if lo < info.min or hi > info.max:
                return False
        return True

    if not fit(1):
        return entries, None
    low, high = 0, 62  # (2**low fits; the largest exponent that does, by bisection)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fit(2 ** middle) else (low, middle - 1)
    return entries, (2 ** low, tuple(i for i, _ in ints))


def int_limits(graph, in_region: bool = False) -> dict:
    """{weak integer node: (the narrowest integer dtype its value must fit, what needs it:
    None where it met a tensor of that dtype, else the op (or "return") that reads the
    int64 the graph computes it in)}: a compiled function checks that the value (a Python
    int argument, or one computed from such arguments and numbers, `k + 1`) fits, as eager
    code checks its scalars. Python computes `(k + k) % 5` exactly where the graph's int64
    wraps, so a computed weak int that an op other than + - * (or a where's pick) reads, or
    that the function returns, must fit int64 (a ring's wrap only comes out right where the
    final value fits, which the check where it is read sees). The node's value comes from
    `exact_range` at each call. One computed by a loop or a branch (a weak carry, a cond's
    result) is known only as the plan runs: its meeting a narrower integer tensor is refused
    here (GraphcError), as a strong int64 would be. `in_region`: graph is a region, whose weak
    inputs may take computed values (a cond's operand k * k), so they are checked as those,
    and a value computed in it from them is keyed as a Bound."""
    limits = {}

    def narrow(source, dtype, reader=None):
        old = limits.get(source)
        if old is None or np.iinfo(dtype).max < np.iinfo(old[0]).max or \
                np.iinfo(dtype).min > np.iinfo(old[0]).min:
            limits[source] = (dtype, reader)

    weak_ids = graph.weak_ids  # (is_weak, inlined: this runs over every operand)

    def computed_int(x):  # (an argument or a constant is an int64 already; not a region's
        # input, which may take a computed value)
        return x.id in weak_ids and x.op != "constant" and (in_region or x.op != "input") and \
            x.dtype.kind in "iu"

    # the nodes a power of weak ints is built of (ir.ops.api.pow: k % 2, rest // 2, ...):
    # the power itself is computed exactly, from its base and exponent, which must fit
    inside = set()
    for power, operands in getattr(graph, "int_powers", {}).items():
        stack, ends = [power], {id(x) for x in operands}  # (a Node's == is an op)
        while stack:
            n = stack.pop()
            if n not in inside and id(n) not in ends:
                inside.add(n)
                stack.extend(n.inputs)
        for x in operands:
            if not is_int(x) and computed_int(x):
                narrow(x, np.dtype(x.dtype), "**")
    for node in graph.nodes:
        # the casts `adopt` made only: a cast the user wrote (gc.cast(k + 1, "int32")) wraps,
        # as it does eagerly
        source = node.inputs[0] if node.id in graph.adopting_casts else None
        if source is not None and is_weak(source) and not is_float(source.dtype):
            dtype = np.dtype(node.attrs["dtype"])
            if dtype.kind in "iu":
                _check_known(source, (), dtype, node.locs)
                narrow(source, dtype)
                continue
        regions = regions_of(node)
        for region in regions:
            # a weak operand of a branch or loop (a Python int argument read inside, or
            # passed as an operand) is cast where it meets a tensor in there
            feeds = region_feeds(node, region)
            carried = _carried(node, region)
            known = tuple((i, x) for i, x in feeds.items() if i not in carried and is_weak(x))
            probe, probed = dict.fromkeys((i for i, _ in known), 0), {}  # (one for the region)
            for inner, (dtype, reader) in int_limits(region, in_region=True).items():
                if dtype != inner.dtype:  # (a narrower tensor's: an int64 wraps as eagerly)
                    for x in ((inner,) if type(inner) is not Bound else
                              (x for _, x in inner.feeds)):
                        _check_known(x, carried, dtype, node.locs)
                if type(inner) is not Bound and inner in feeds:
                    outer = feeds[inner]
                    # (an argument or a number fits int64: nothing to check)
                    if is_weak(outer) and (computed_int(outer) or dtype != outer.dtype):
                        narrow(outer, dtype, reader)
                else:  # computed in there: from the values fed in (or numbers), at each
                    # call; not one a call cannot compute (from a carry, or a slice of xs)
                    key = Bound(inner, known)
                    if bound_range(key.node, probe, probed) is not None:
                        limits[key] = (dtype, reader)
        if regions or node in inside or not weak_ids:  # (no weak value: no reads)
            continue
        for i, x in enumerate(node.inputs):
            if not computed_int(x):
                continue
            if node.id in weak_ids and (node.op in _WRAPPING or node.op == "where" and i > 0):
                continue
            # one that met a strong tensor of its own dtype (int64: no cast) is checked as
            # a cast one is, as eager code refuses `int64_tensor + 2**70`; one that no
            # tensor meets (k + k > 0: a comparison's bool result is not weak, yet no tensor
            # is there) is an int64 the op reads. A cast `adopt` made to a float (xf * (k *
            # k), k / 3) is kept as the reader: the message names what it meets
            reader = node if node.id in graph.adopting_casts else \
                None if _meets_strong(node, graph) else node.op
            narrow(x, np.dtype(x.dtype), reader)
    for x in graph.outputs:
        if computed_int(x):
            narrow(x, np.dtype(x.dtype), "return")
    return limits


def _meets_strong(node, graph) -> bool:
    """Whether adopting op `node` has a strong operand where weak ones take its dtype: a
    tensor that a weak operand meets; not a weak value, one that adopt cast, or a Python
    number the op read (a 0-d constant, not weak itself)."""
    positions = _ADOPTING.get(node.op, ())
    positions = range(len(node.inputs)) if positions is None else positions
    return any(i < len(node.inputs) and node.inputs[i].id not in graph.weak_ids and
               node.inputs[i].id not in graph.adopting_casts and
               not (node.inputs[i].op == "constant" and node.inputs[i].attrs["value"].ndim == 0)
               for i in positions)


def describe_use(reader) -> str:
    """What int_limits' `reader` does with the int64 a graph computes (for a message: "it
    is computed in int64 before ..."): it returns it, an op reads it, or, where it is a
    cast adopt made to a float, a float tensor or number meets it. (Searches the graph
    for the cast's reader: only as a call is refused.)"""
    if isinstance(reader, str):  # (a Node's == is an op)
        return "it returns it" if reader == "return" else f"a {reader} reads it"
    dtype = np.dtype(reader.attrs["dtype"])
    user = next((n for n in reader.graph.nodes if any(x is reader for x in n.inputs)), None)
    if user is not None and user.op in _ADOPTING and _meets_strong(user, reader.graph):
        return f"it meets {with_article(dtype)} tensor (in a {user.op})"
    what = f"a {user.op}" if user is not None else "the function"
    return f"{what} takes it as {with_article(dtype)} number"


def _carried(node, region) -> set:
    """The inputs of loop `node`'s `region` that take its carries."""
    if node.op == "scan":
        first = node.attrs["consts"]
        return set(region.inputs[first:first + node.attrs["carries"]])
    if node.op == "while_loop":
        key = "cond_consts" if region is node.attrs["cond_fn"] else "body_consts"
        return set(region.inputs[node.attrs[key]:])
    return set()


def _check_known(source, carried, dtype, locs):
    """Refuse weak integer `source` meeting a `dtype` tensor where it is computed from a
    loop's carry (`carried`, which changes at each step) or a loop's or branch's result:
    a call cannot compute its value to check that it fits, and the graph would wrap it."""
    seen, stack = set(), [source]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in carried or (n.op == "tuple_get" and regions_of(n.inputs[0])):
            raise GraphcError(f"compiled function: a number that a loop or cond computes from "
                              f"a Python number meets a tensor of {dtype}, and its value is "
                              f"known only as the plan runs, so it cannot be checked to fit "
                              f"{dtype}: cast it with gc.cast, or pass an array", locs)
        stack.extend(x for x in n.inputs if is_weak(x))


# the arithmetic weak integers are computed with, as Python computes numbers (exactly), so
# that a check sees `k + 1`'s value before the graph's int64 wraps it
_EXACT = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "neg": lambda a: -a, "abs": abs, "reshape": lambda a: a,
          # Python's // and % are numpy's on integers; by zero numpy gives 0 (an exact 0
          # divisor of Python ints is refused before: python_divisions)
          "floor_divide": lambda a, b: a // b if b else 0,
          "remainder": lambda a, b: a % b if b else 0,
          # gc.maximum, gc.minimum and gc.fmod of weak ints (C's: the dividend's sign; numpy's
          # 0 by zero) were never checked ("not computed from the inputs": trusted), so
          # `x32 + gc.maximum(k, 1)` wrapped where eager code refuses; as identities,
          # stop_gradient and an int's rounding
          "maximum": max, "minimum": min,
          "fmod": lambda a, b: (abs(a) % abs(b) if a >= 0 else -(abs(a) % abs(b))) if b else 0,
          **dict.fromkeys(("stop_gradient", "floor", "ceil", "round", "trunc"), lambda a: a)}


def python_divisions(graph) -> list:
    """The weak divisions of `graph` computed without a gc.where (`k // j`, `(k + 1) % (2 **
    j)`, `3 // k`, `k / j`, a weak float's `f // g`, and `k ** -1`, a division too): where
    they are Python numbers eagerly, a division by 0 raises ZeroDivisionError, where the
    graph's numpy gives 0 or inf (and warns). A call checks them (zero_division). The graph
    cannot tell `k // j` from gc.floor_divide(k, j), a tensor eagerly (numpy's 0 there), so
    it checks both, and refuses where eager code may not give a value; a where's value is a
    tensor eagerly, so numpy's result there stays."""
    free = {}  # {weak node: computed without a where}

    def where_free(x):
        stack = [x]
        while stack:
            n = stack[-1]
            if n in free:
                stack.pop()
                continue
            operands = graph.int_powers[n] if n in graph.int_powers else n.inputs
            operands = [o for o in operands if not is_int(o)]
            missing = [o for o in operands if o not in free]
            if missing:
                stack.extend(missing)
                continue
            free[n] = n.op != "where" and all(free[o] for o in operands)
            stack.pop()
        return free[x]

    # (a weak division: of weak values and Python numbers only, `k % 0` and `3 // k`; a pow
    # of a weak int by an int is graph.int_powers', JAX's 0 for 0 ** -1: a float pow only)
    # (and one whose divisor a call computes: zero_division finds no exact 0 in 1 - 0.9 ** t)
    probe, probed = dict.fromkeys((x for x in graph.inputs if x.id in graph.weak_ids), 1), {}
    divisions = [n for n in graph.nodes if is_weak(n) and (n.op in _DIVISIONS or n.op == "pow"
                 and is_float(n.dtype) and n not in graph.int_powers) and not _never_zero(n)
                 and None not in (_exact_number(x, probe, probed) for x in n.inputs[:2])
                 and where_free(n)]
    for n in divisions:  # (a computed float operand: as a function, for the calls' checks)
        for x in n.inputs[:2]:
            if hasattr(x, "op") and x.op in _EXACT_FLOAT and x.dtype.kind not in "iu":
                function = _float_function(x)
                if function is not None:
                    graph.float_numbers[x] = function
    return divisions


def _float_function(node, depth: int = 64, seen=None):
    """_exact_number of weak float `node` (of _EXACT_FLOAT's ops) as a function of a call's
    (inputs, known), built once: a call computes `-g` or `1.0 + d * t` in a few Python calls,
    not by walking the graph (5 us a call for the latter). None where `node` is deeper than
    `depth`, or where a value is used twice (`d = d + d`: nested closures would compute it
    once per path, 2**N times; r8): then _exact_number walks it, its `known` kept per call."""
    if not hasattr(node, "op"):  # (a Python number the op holds)
        return lambda inputs, known: node
    seen = set() if seen is None else seen
    if depth == 0 or node in seen:
        return None
    seen.add(node)
    if node.dtype.kind in "iu" or node.op == "cast" and node.inputs[0].dtype.kind in "iu":
        source = node if node.dtype.kind in "iu" else node.inputs[0]
        if source.op == "input":
            return lambda inputs, known: inputs.get(source)
        return lambda inputs, known: _exact_number(source, inputs, known)
    if node.op == "input":
        return lambda inputs, known: None if (x := inputs.get(node)) is None else float(x)
    if node.op == "constant":
        value = node.attrs["value"]
        value = float(value) if value.ndim == 0 else None
        return lambda inputs, known: value
    if node.op not in _EXACT_FLOAT:
        return None
    operands = [_float_function(x, depth - 1, seen) for x in node.inputs]
    if None in operands:
        return None
    function = _EXACT_FLOAT[node.op]
    if len(operands) == 1:
        a, = operands
        return lambda inputs, known: None if (x := a(inputs, known)) is None else function(x)
    a, b = operands
    return lambda inputs, known: None if (x := a(inputs, known)) is None or \
        (y := b(inputs, known)) is None else function(x, y)


def _never_zero(node) -> bool:
    """Whether division `node` can never divide by 0, its divisor (a pow's base) a number
    written in the function (`t / 100`, `0.999 ** t`), or a pow's exponent one >= 0 (`(1 -
    b ** t) ** 0.5`): no check at each call."""
    if node.op == "pow":
        exponent = _exact_number(node.inputs[1], {}, {})
        if exponent is not None and exponent >= 0:
            return True
    operand = node.inputs[0 if node.op == "pow" else 1]
    number = _exact_number(operand, {}, {})
    return number is not None and number != 0


# the divisions a Python number raises ZeroDivisionError at, with their name in its message
_DIVISIONS = {"floor_divide": "//", "remainder": "%", "div": "/"}


def zero_division(node, inputs: dict, known: dict):
    """(what eager Python raises at, the operand that is 0) where division `node` (of
    python_divisions) divides by an exact 0 at `inputs` ({input node: its number}), or a
    pow raises 0 to a negative power; else None."""
    try:
        return _zero_division(node, inputs, known)
    except OverflowError:  # (an int past a float's range: not 0; the int checks say it)
        return None


def _zero_division(node, inputs: dict, known: dict):
    functions = node.graph.float_numbers  # (python_divisions': a computed float operand's)
    if node.op == "pow":
        base, exponent = (functions[x](inputs, known) if hasattr(x, "op") and x in functions
                          else _exact_number(x, inputs, known) for x in node.inputs)
        if base == 0 and exponent is not None and exponent < 0:
            return "0 to a negative power", node.inputs[0]
        return None
    divisor = node.inputs[1]
    if (functions[divisor](inputs, known) if hasattr(divisor, "op") and divisor in functions
            else _exact_number(divisor, inputs, known)) == 0:
        kind = "integer" if node.dtype.kind in "iu" else "float"
        return f"{kind} {_DIVISIONS[node.op]} by zero", node.inputs[1]
    return None


# the weak float arithmetic a divisor may be computed with, in Python floats as eager code
# computes its numbers (`k / -g`, `1 / abs(g)`, `k / (g * 2)`), so that an exact 0 divisor
# is found as eagerly (a 0 divisor inside gives nan: its own division, checked first in the
# graph's order, raises there)
_EXACT_FLOAT = {"neg": lambda a: -a, "abs": abs, "add": lambda a, b: a + b,
                "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
                "div": lambda a, b: a / b if b else float("nan")}


def _exact_number(node, inputs: dict, known: dict):
    """The number weak `node` stands for at `inputs`, where known exactly: an int's by
    exact_range, a weak float argument's or constant's, the float a weak int is cast to
    (`k / j` divides cast(j)), or _EXACT_FLOAT's of such (`-g`, `g * 2`); else None.
    `known`: exact_range's, which this keeps the floats in too. Iterative, as exact_range."""
    if not hasattr(node, "op"):  # (a Python number the op holds)
        return node
    value = known.get(node, known)  # (known itself: not found yet)
    if value is not known:
        return None if type(value) is tuple else value
    stack = [node]
    while stack:
        n = stack[-1]
        if n in known:  # (an operand met twice)
            stack.pop()
            continue
        if n.type.dtype.kind in "iu":
            exact_range(n, inputs, known)  # (fills known[n]: an int, a range or None)
        elif n.op in _EXACT_FLOAT:  # (of weak values: python_divisions' operands are)
            operands = n.inputs
            missing = [x for x in operands if hasattr(x, "op") and x not in known]
            if missing:
                stack.extend(missing)
                continue
            values = [known[x] if hasattr(x, "op") else x for x in operands]
            known[n] = None if None in values or tuple in map(type, values) else \
                _EXACT_FLOAT[n.op](*values)
        elif n.op == "input":
            value = inputs.get(n)
            known[n] = None if value is None else float(value)
        elif n.op == "cast" and n.inputs[0].type.dtype.kind in "iu":
            span = exact_range(n.inputs[0], inputs, known)
            known[n] = span[0] if span is not None and span[0] == span[1] else None
        elif n.op == "constant":
            value = n.attrs["value"]
            known[n] = float(value) if value.ndim == 0 else None
        else:
            known[n] = None
        stack.pop()
    value = known[node]
    return None if type(value) is tuple else value


def exact_range(node, inputs: dict, known: dict | None = None, picks: dict | None = None):
    """(lo, hi): the least and greatest Python int that weak integer `node` may stand for,
    given {input node: int}; lo == hi (the exact value) unless a gc.where of weak ints is
    on the way (where(n > 5, 2**40, 1) + 1): a call cannot tell which value its condition
    picks, so every value either branch may give counts, as JAX checks both as it traces
    (then `node`'s range is computed from its operands' ranges: exact bounds for add, sub,
    mul, neg and abs, wider ones for the rest). None where it is not computed from those
    inputs and integer constants by these ops, where and a power of ints alone (then only
    the graph's own int64 arithmetic decides). `known`: what is found so far (shared between
    calls, so that a value used twice is computed once): an int where exact, as it mostly
    is (a per-call path: no tuples then), else a (lo, hi) tuple. Iterative: a chain of
    thousands of `k = k + 1` neither recurses nor repeats work. `picks`: {where node: the
    index of the input it takes (1 or 2)}, for branch_range."""
    known = {} if known is None else known
    stack = [node]
    while stack:
        n = stack[-1]
        if n in known:
            stack.pop()
            continue
        if n.op == "input":
            value = inputs.get(n)
            known[n] = None if value is None or isinstance(value, bool) else \
                value if type(value) is tuple else int(value)  # (a range: a Bound's feed)
        elif n.op == "constant":
            value = n.attrs["value"]
            known[n] = int(value) if value.ndim == 0 and value.dtype.kind in "iu" else None
        elif n in getattr(n.graph, "int_powers", ()):
            # one node, though built as a chain of wheres (ir.ops.api.pow): the power
            # itself is computed, not the wheres inside
            base, exponent = n.graph.int_powers[n]
            missing = [x for x in (base, exponent) if not is_int(x) and x not in known]
            if missing:
                stack.extend(missing)
                continue
            values = [int(x) if is_int(x) else known[x] for x in (base, exponent)]
            known[n] = None if None in values else _power_range(*values)
        elif n.dtype.kind not in "iu" or (n.op not in _EXACT and n.op != "where"):
            known[n] = None
        else:
            operands = n.inputs if n.op != "where" else n.inputs[1:3] if picks is None \
                else (n.inputs[picks[n]],) if n in picks else n.inputs[1:3]  # (not the condition)
            missing = [x for x in operands if x not in known]
            if missing:
                stack.extend(missing)
                continue
            values = [known[x] for x in operands]
            known[n] = None if None in values else \
                _range(n.op, values) if n.op == "where" or tuple in map(type, values) else \
                _EXACT[n.op](*values)
        stack.pop()
    value = known[node]
    return value if value is None or type(value) is tuple else (value, value)


def _range(op, values):
    """`op`'s value (of _EXACT, or where's hull), an int or a (lo, hi) range, for operands of
    `values`, each an int or a (lo, hi) range."""
    spans = [x if type(x) is tuple else (x, x) for x in values]
    if op == "where":
        lo, hi = min(lo for lo, _ in spans), max(hi for _, hi in spans)
        return lo if lo == hi else (lo, hi)
    if op in ("add", "sub", "mul"):  # each extreme at a corner
        a, b = spans
        values = [_EXACT[op](x, y) for x in a for y in b]
    elif op == "abs":
        (lo, hi), = spans
        return (0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))
    elif op in ("neg", "reshape") or len(spans) == 1:  # (the identities: their bounds)
        values = [_EXACT[op](x) for x in spans[0]]
    elif op in ("maximum", "minimum"):  # monotone in each operand
        values = [_EXACT[op](*lows) for lows in zip(*spans)]
    elif op == "fmod":  # the dividend's sign, nearer to 0 than it and than the divisor
        (a, b), (c, d) = spans
        top = max(abs(c), abs(d), 1) - 1
        return (0 if a >= 0 else max(a, -top)), (0 if b <= 0 else min(b, top))
    elif op == "floor_divide":  # monotone in each operand over divisors of one sign
        (a, b), (c, d) = spans
        divisors = [y for y in (c, min(d, -1), max(c, 1), d) if y and c <= y <= d]
        values = [x // y for x in (a, b) for y in divisors] + [0] * (c <= 0 <= d)
    else:  # remainder: between 0 and the divisor (exclusive); by 0, 0
        (a, b), (c, d) = spans
        if 0 <= a and b < c or b <= 0 and d < a:  # |dividend| < |divisor|, one sign: the dividend
            return a, b
        lo, hi = min(0, c + 1), max(0, d - 1)
        # x % y lies between x and 0, or has y's sign: no farther from 0 than x of one sign
        # (0 % where(n > 0, k, 2) is 0, where(n > 0, 5, 6) % 2**40 5 or 6, whatever k is)
        return (max(lo, a) if b <= 0 else lo), (min(hi, b) if a >= 0 else hi)
    return min(values), max(values)


def branch_range(node, inputs: dict, limit: int = 64):
    """exact_range(node, inputs) taken as the hull of node's exact values over each way the
    gc.wheres on the way may pick (at most `limit` ways, else exact_range's): exact_range
    counts each use of a where apart, so `w - w` of w = where(n > 5, 2**40, 0) is
    (-2**40, 2**40) there, 0 here, as a where picks one branch for all its uses, and so do
    wheres of one condition (one node, or the same comparison of the same nodes written
    twice: `where(n > 5, a, b) - where(n > 5, a, b)`), which pick alike. For a range that
    does not fit (its cost only then)."""
    known = {}
    span = exact_range(node, inputs, known)
    if span is None:
        return span
    groups = _where_groups(known)
    if not groups or 2 ** len(groups) > limit:
        return span
    hull = _hull_over_picks(groups, lambda picks: exact_range(node, inputs, {}, picks))
    return span if hull is None else hull


def _where_groups(known: dict) -> dict:
    """{condition key: the wheres of exact_range's `known` that may give either value and
    have that condition}: each group picks one way."""
    groups, memo = {}, {}
    for n, value in known.items():
        if type(value) is tuple and n.op == "where":
            groups.setdefault(_condition_key(n.inputs[0], memo), []).append(n)
    return groups


# the ops a condition is compared by as a structure (the same op of the same operands is
# the same mask): deterministic and elementwise (not a random draw: two are independent)
_PURE = frozenset(_ADOPTING) | {"cast", "logical_and", "logical_or", "logical_not"} | \
    frozenset(_KEEPING)


def _condition_key(node, memo: dict):
    """A hashable key of condition `node`: equal for two nodes that compute one value (the
    same node, or the same pure op, attributes and constants over the same nodes)."""
    if node in memo:
        return memo[node]
    if node.op == "constant":
        value = node.attrs["value"]
        key = ("constant", value.dtype.str, value.shape, value.tobytes())
    elif node.op in _PURE and len(memo) < 256:  # (a deep condition: by identity past that)
        key = (node.op, repr(sorted(node.attrs.items())),
               tuple(_condition_key(x, memo) for x in node.inputs))
    else:
        key = ("node", id(node))
    memo[node] = key
    return key


def _power_range(base, exponent):
    """base ** exponent (_exact_power), an int, or a (lo, hi) range where base or exponent
    is one (a where's)."""
    if type(base) is not tuple and type(exponent) is not tuple:
        return _exact_power(base, exponent)
    base, exponent = [x if type(x) is tuple else (x, x) for x in (base, exponent)]
    # |b ** e| grows with |b| and with e >= 0 for |b| > 1; a negative e gives -1, 0 or 1
    top = _exact_power(max(abs(base[0]), abs(base[1]), 1), max(exponent[1], 0))
    return top if type(top) is tuple else (-top if base[0] < 0 else 0, top)


# the range a power of more than 256 bits stands for (it is not computed): out of every int
# dtype's range, so that it is refused where it meets a tensor, as eager code refuses it;
# of both signs, so that no arithmetic after it (2 ** k - 3 ** k) comes back into range
HUGE = (-2**257, 2**257)


def _exact_power(base: int, exponent: int):
    """base ** exponent as ir.ops.api.pow defines it for a traced exponent: Python's for one
    >= 0 (HUGE where it may have more than 256 bits), truncated for a negative one (0, or
    +-1 for a base of +-1)."""
    if exponent < 0:
        return base if base in (1, -1) and exponent % 2 else int(base in (1, -1))
    if abs(base) > 1 and exponent * abs(base).bit_length() > 256:
        return HUGE
    return base ** exponent
