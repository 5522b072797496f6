"""Bad input gets a graphc error naming the op, the shapes and the user's own line."""
import inspect
import operator

import numpy as np
import pytest

import graphc as gc
from ir.graph import Graph
from ir.types import TensorType
from ir.verify import verify


def _line_of(fn, marker):
    lines, start = inspect.getsourcelines(fn)
    for k, text in enumerate(lines):
        if marker in text:
            return start + k
    raise AssertionError(marker)


def test_shape_mismatch_names_op_shapes_and_user_line():
    def model(x, w):
        return x @ w  # MISMATCH

    with pytest.raises(gc.GraphcError) as info:
        gc.trace(model, gc.spec((4, 3)), gc.spec((5, 2)))
    message = str(info.value)
    assert "matmul" in message and "f32[4,3]" in message and "f32[5,2]" in message
    assert info.value.locs[0][0].endswith("test_errors.py")
    assert info.value.locs[0][1] == _line_of(model, "# MISMATCH")


def test_broadcast_mismatch_in_eager_mode_is_a_graphc_error():
    a, b = gc.tensor(np.ones((3, 4))), gc.tensor(np.ones((5,)))
    with pytest.raises(gc.GraphcError, match=r"add\(f64\[3,4\], f64\[5\]\).*broadcast"):
        a + b  # noqa: B018


def test_dtype_mismatch_is_caught_while_building():
    def model(x, y):
        return x + y

    with pytest.raises(gc.GraphcError, match="one dtype"):
        gc.trace(model, gc.spec((2,), "float32"), gc.spec((2,), "float64"))


def test_python_if_on_a_symbolic_value_says_what_to_use():
    def model(x):
        if x.sum() > 0:  # BRANCH
            return x
        return -x

    with pytest.raises(gc.GraphcError, match="graphc.where") as info:
        gc.trace(model, gc.spec((3,)))
    assert info.value.locs[0][1] == _line_of(model, "# BRANCH")


def test_converting_a_symbolic_value_to_numpy_is_an_error():
    with pytest.raises(gc.GraphcError, match="numpy"):
        gc.trace(lambda x: np.asarray(x), gc.spec((3,)))


def test_bad_reshape_and_bad_axis():
    with pytest.raises(gc.GraphcError, match="reshape"):
        gc.trace(lambda x: x.reshape(5, 5), gc.spec((4, 3)))
    with pytest.raises(gc.GraphcError, match="axis 2 is out of range"):
        gc.trace(lambda x: x.sum(2), gc.spec((4, 3)))


_X23 = np.zeros((2, 3), np.float32)


# each call on a line of its own: the error's location is that line (co_firstlineno)
@pytest.mark.parametrize("call, first", [
    (lambda x: gc.swapaxes(x, 3, 0), "swapaxes: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.moveaxis(x, 3, 0), "moveaxis: source axis 3 is out of range for a 2-d value"),
    (lambda x: gc.moveaxis(x, 0, 2),
     "moveaxis: destination axis 2 is out of range for a 2-d value"),
    (lambda x: gc.expand_dims(x, 4), "expand_dims: axis 4 is out of range for a 3-d value"),
    (lambda x: gc.squeeze(x, 3), "squeeze: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.cumsum(x, 3), "cumsum: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.argmax(x, 3), "argmax: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.argmin(x, -3), "argmin: axis -3 is out of range for a 2-d value"),
    (lambda x: gc.sum(x, 3), "sum: axis 3 is out of range for a 2-d value"),
    (lambda x: x.sum((0, 3)), "sum: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.sum(x, (0, -2)), "sum: axis (0, -2) names an axis twice"),
    (lambda x: gc.mean(x, 3), "mean: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.max(x, 3), "max: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.min(x, 3), "min: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.var(x, 3), "var: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.std(x, 3), "std: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.any(x, 3), "any: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.logsumexp(x, 3), "logsumexp: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.stack([x, x], 4), "stack: axis 4 is out of range for a 3-d value"),
    (lambda x: gc.concatenate([x, x], 3), "concatenate: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.softmax(x, 3), "softmax: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.log_softmax(x, -3), "log_softmax: axis -3 is out of range for a 2-d value"),
    (lambda x: gc.split(x, 2, 3), "split: axis 3 is out of range for a 2-d value"),
    (lambda x: gc.sum(x, 1.5), "sum: axis must be an int, got 1.5"),
])
@pytest.mark.parametrize("compiled", [False, True])
def test_an_axis_out_of_range_names_the_function_called_and_the_users_line(
        call, first, compiled):
    """These said 'axis 3 is out of range for a 2-d value', naming no function (var's,
    std's and any's would have named the mean or sum they are built on); each names the
    one the user called now, then the user's line, eagerly and compiled."""
    with pytest.raises(gc.GraphcError) as info:
        (gc.compile(call) if compiled else call)(gc.tensor(_X23) if not compiled else _X23)
    assert str(info.value).splitlines()[0] == first
    assert info.value.locs[0][0].endswith("test_errors.py")
    assert info.value.locs[0][1] == call.__code__.co_firstlineno


def test_cross_entropy_target_shape_is_checked():
    with pytest.raises(gc.GraphcError, match="targets of shape"):
        gc.trace(lambda z, t: gc.cross_entropy(z, t), gc.spec((4, 7)), gc.spec((5,), "int64"))


def test_gradient_of_integer_input_is_refused():
    with pytest.raises(gc.GraphcError, match="int64"):
        gc.grad(lambda i: gc.sum(gc.cast(i, "float32")))(np.arange(3))


def test_compiled_call_with_wrong_shape_recompiles_and_wrong_arity_is_an_error():
    f = gc.compile(lambda x: x * 2.0)
    assert f(np.ones(3, np.float32)).shape == (3,)
    assert f(np.ones((2, 2), np.float32)).shape == (2, 2)  # a new signature: a new plan
    plan = f.plan_for(np.ones(3, np.float32))
    with pytest.raises(gc.GraphcError, match="expects shape"):
        plan(np.ones(4, np.float32))


def test_verifier_names_the_bad_node():
    g = Graph("bad")
    x = g.input("x", (2, 3))
    y = g.add_node("matmul", [x, x], {}, TensorType((2, 3), "float32"))
    g.set_outputs([y])
    with pytest.raises(gc.GraphcError, match="node 1 \\(matmul\\): ill-typed"):
        verify(g)


def test_verifier_rejects_dangling_values_and_wrong_types():
    g, other = Graph("g"), Graph("other")
    x = g.input("x", (2,))
    z = other.input("z", (2,))
    node = g.add_node("add", [x, z], {}, TensorType((2,), "float32"))
    g.set_outputs([node])
    with pytest.raises(gc.GraphcError, match="not defined before it"):
        verify(g)
    g2 = Graph("g2")
    a = g2.input("a", (2,))
    g2.set_outputs([g2.add_node("exp", [a], {}, TensorType((3,), "float32"))])
    with pytest.raises(gc.GraphcError, match="type f32\\[3\\] but its operands give f32\\[2\\]"):
        verify(g2)


def test_out_of_range_token_ids_name_the_op_and_line_compiled_and_eager():
    table = np.ones((5, 3), np.float32)

    def embed(ids):
        return gc.take(table, ids)  # LOOKUP

    plan = gc.compile(embed)
    with pytest.raises(gc.GraphcError, match=r"take\(f32\[5,3\], i64\[2\]\) failed") as info:
        plan(np.array([1, 9]))
    assert info.value.locs[0][1] == _line_of(embed, "# LOOKUP")
    with pytest.raises(gc.GraphcError, match="take.*failed") as info:
        embed(gc.tensor(np.array([1, 9])))
    assert info.value.locs[0][1] == _line_of(embed, "# LOOKUP")


def test_the_public_api_exports_the_functional_api_and_nothing_else():
    import graphc
    from ir.ops import api
    namespace = {}
    exec("from graphc import *", namespace)
    for leaked in ("np", "math", "builtins", "itertools", "apply", "as_dtype"):
        assert leaked not in namespace, leaked
    for name in api.__all__ + ["compile", "grad", "jvp", "trace", "tensor", "nn"]:
        assert namespace[name] is getattr(graphc, name), name
    assert graphc.exp is api.exp and graphc.sum is api.sum and graphc.max is api.max


def _assert_one_line_here(run, line):
    """run() raises a GraphcError whose message is `line`, located in this file."""
    with pytest.raises(gc.GraphcError) as info:
        run()
    first, where = str(info.value).splitlines()
    assert first == line and "test_errors.py" in where


def test_a_type_or_dtype_is_named_with_its_article():
    """s50 f6 item 4: messages put "a" before every type or dtype name: an array.array was
    "cannot use a array as a tensor operand", an int "a int", an int64 value "a int64
    value". ir.errors.with_article (and a_type, for a value's type) chooses the article."""
    from array import array

    from ir.errors import a_type, with_article
    assert [with_article(w) for w in ("array", "int64", "ndarray", "OrderedDict", "list",
                                      "uint8", "float32", "bool", "ellipsis")] == [
        "an array", "an int64", "an ndarray", "an OrderedDict", "a list", "a uint8",
        "a float32", "a bool", "an ellipsis"]
    assert (a_type(3), a_type([]), a_type(np.ones(1))) == ("an int", "a list", "an ndarray")
    values = array("f", [1.0, 2.0])
    for run, line in [
            (lambda: gc.relu(values), "relu: cannot use an array as a tensor operand"),
            (lambda: gc.vmap(lambda x: x * 2)(values),
             "vmap: x is an array, which has no axis 0 to map over; give it in_axes None"),
            (lambda: gc.group_norm(np.ones((1, 2, 3), np.int64), 2),
             "group_norm of an int64 value; cast it to a float type first"),
            (lambda: operator.iadd(gc.nn.ModuleList(), 3),
             "ModuleList += takes an iterable of modules, got an int")]:
        _assert_one_line_here(run, line)


def test_review_r11_type_names_f6_left_with_a_hard_coded_a_take_their_article():
    """Review r11 of s50 f6 item 4: ten messages spelled over two lines ('got a "' then
    f"{type(x).__name__}") and control flow's object summary were left with 'a' before
    every type: 'the module's emb is a Embedding already', 'got a ndarray', 'got a int'."""
    module = gc.nn.Module()
    module.emb = gc.nn.Embedding(3, 2)
    strings = np.array(["a", "b"])
    for run, line in [
            (lambda: module.register_buffer("emb", np.ones(2)),
             "register_buffer('emb'): the module's emb is an Embedding already"),
            (lambda: gc.nn.Module().register_buffer("b", strings),
             "register_buffer('b'): a buffer holds an array of numbers, got an ndarray (dtype "
             "<U1 is not supported (supported: float32, float64, float16, bfloat16, int32, "
             "int64, bool))"),
            (lambda: operator.add(gc.nn.Sequential(), 3),
             "Sequential + takes another Sequential, got an int"),
            (lambda: gc.nn.utils.vector_to_parameters(3, []),
             "vector_to_parameters: vec must be a tensor or an array, got an int"),
            (lambda: setattr(gc.nn.Parameter(np.ones(2, np.float32)), "data", object()),
             "Parameter.data = ...: expected an array (or a tensor), got an object"),
            (lambda: gc.nn.utils.rnn.pad_sequence(3),
             "pad_sequence: expected a list of sequences (tensors), got an int")]:
        _assert_one_line_here(run, line)


def test_review_m4_a_tree_mismatch_names_a_namedtuple_with_its_article():
    """Review m4 of 1719624 (f6 item 4): leaves_like's container mismatch still said 'where
    a {kind.__name__} of n is' ('where a Out of 2 is'), its expected() beside it articled."""
    import collections
    Out = collections.namedtuple("Out", "a b")
    x = np.ones(2, np.float32)
    with pytest.raises(gc.GraphcError) as info:
        gc.jvp(lambda t: t.a * 2 + t.b, (Out(x, x),), ((x, x),))
    first, where = str(info.value).splitlines()
    assert first == "jvp: tangent 0 does not match its primal: a tuple of 2 where an Out of 2 is"
    assert "test_errors.py" in where
