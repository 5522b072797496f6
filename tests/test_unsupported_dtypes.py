"""An array of a dtype the IR cannot hold (uint8, int8, complex) is one GraphcError at the
user's line, naming the dtype and the cast to make, where it was a bare TypeError from deep
inside (ir/types.as_dtype)."""
import numpy as np
import pytest

import graphc as gc


@pytest.mark.parametrize("make", [
    lambda: gc.compile(lambda x: x * 2)(np.zeros(3, np.uint64)),
    lambda: gc.tensor(np.zeros(3, np.int8)),
    lambda: gc.grad(lambda x: gc.sum(x))(np.zeros(3, np.complex64)),
    lambda: gc.zeros(3, "uint16"),
], ids=["compile-uint64", "tensor-int8", "grad-complex64", "zeros-uint16"])
def test_one_line_at_the_users_call(make):
    with pytest.raises(gc.GraphcError, match=r"dtype \w+ is not supported") as info:
        make()
    assert info.value.locs and "test_unsupported_dtypes.py" in str(info.value.locs[0])
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("dtype, wide", [(np.int8, np.int32), (np.uint8, np.int32),
                                         (np.int16, np.int32), (np.uint16, np.int32),
                                         (np.uint32, np.int64)])
def test_a_small_integer_argument_of_compile_or_vmap_is_widened_to_an_ir_dtype(dtype, wide):
    """gc.compile refused an int8, uint8, int16 or uint16 array argument ('dtype uint8 is not
    supported'), so a batch of uint8 images could not feed a compiled step. The IR has no
    such dtype: the argument is taken as the narrowest IR integer dtype holding every value
    (int32; uint32 as int64), as numpy promotes it; values against eager on the widened
    array and numpy, each dtype's extremes included. Computed wide, uint8's 255 + 1 is 256
    where numpy's uint8 arithmetic wraps to 0 (documented)."""
    info = np.iinfo(dtype)
    images = np.random.default_rng(0).integers(info.min, info.max, (4, 3), dtype=dtype,
                                               endpoint=True)
    images[0, :2] = info.min, info.max
    w = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)

    def step(x, w):
        return x + 1, gc.sum((x.astype(np.float32) / 255) @ w, axis=0)
    ints, floats = gc.compile(step)(images, w)
    eager_ints, eager_floats = step(gc.tensor(images.astype(wide)), w)
    assert ints.dtype == wide
    np.testing.assert_array_equal(ints, eager_ints.numpy())
    np.testing.assert_array_equal(ints, images.astype(np.int64) + 1)
    np.testing.assert_allclose(floats, eager_floats.numpy(), rtol=1e-6)
    np.testing.assert_allclose(floats, ((images / 255) @ w).sum(0), rtol=1e-5)
    per_row = gc.vmap(lambda row: row * 2)(images)
    assert per_row.dtype == wide
    np.testing.assert_array_equal(per_row, images.astype(np.int64) * 2)
    # one plan for int32 and the narrower dtypes it holds: each call's values are its own
    same = gc.compile(lambda x: -x)
    np.testing.assert_array_equal(same(images.astype(wide)), -images.astype(np.int64))
    np.testing.assert_array_equal(same(images), -images.astype(np.int64))


def test_the_hint_names_a_cast_for_integers():
    with pytest.raises(gc.GraphcError, match=r"cast it first \(x.astype\(np.int32\)\)"):
        gc.tensor(np.zeros(3, np.uint8))


_UNSUPPORTED = ("dtype complex128 is not supported (supported: float32, float64, float16, "
                "bfloat16, int32, int64, bool)")


def _one_line(run) -> str:
    """The refusal's first line, checked to be one line at this file's call."""
    with pytest.raises(gc.GraphcError) as info:
        run()
    first, where = str(info.value).splitlines()
    assert "test_unsupported_dtypes.py" in where
    return first


def test_a_complex_argument_of_a_transformation_names_the_function_and_the_argument():
    """(s51) gc.compile(f), gc.grad(f) and gc.vmap(f) of a complex array said only "dtype
    complex128 is not supported", naming neither the transformation, f nor the argument (as
    a torch tensor's refusal names them). Each names all three, a pytree's leaf by its path;
    the error is an UnsupportedDtype still (a TypeError)."""
    z = np.array([1 + 2j, 3j])

    def double(x):
        return x * 2

    def total(x, d):
        return gc.sum(x * d["scale"])
    for run, line in [
            (lambda: gc.compile(double)(z), f"compiled double: argument x: {_UNSUPPORTED}"),
            (lambda: gc.compile(total)(np.ones(2), {"scale": z}),
             f"compiled total: argument d.scale: {_UNSUPPORTED}"),
            (lambda: gc.grad(total)(z, {"scale": np.ones(2)}),
             f"grad of total: argument x: {_UNSUPPORTED}"),
            (lambda: gc.value_and_grad(total, argnums=1)(np.ones(2), {"scale": z}),
             f"value_and_grad of total: argument d.scale: {_UNSUPPORTED}"),
            (lambda: gc.jacrev(double)(z), f"jacrev of double: argument x: {_UNSUPPORTED}"),
            (lambda: gc.vjp(double, z), f"vjp of double: argument x: {_UNSUPPORTED}"),
            (lambda: gc.jvp(double, (z,), (z,)), f"jvp of double: argument x: {_UNSUPPORTED}"),
            (lambda: gc.linearize(double, z), f"linearize of double: argument x: "
                                              f"{_UNSUPPORTED}"),
            (lambda: gc.vmap(double)(z), f"vmap: x: {_UNSUPPORTED}"),
            (lambda: gc.vmap(total, in_axes=(0, None))(np.ones(2), {"scale": z}),
             f"vmap: d.scale: {_UNSUPPORTED}")]:
        assert _one_line(run) == line
    with pytest.raises(TypeError):  # (callers that try a value and fall back)
        gc.compile(double)(z)
    np.testing.assert_array_equal(gc.compile(double)(z.real), z.real * 2)  # the real part runs


def test_a_complex_input_of_a_layer_or_a_control_flow_construct_names_it():
    """(s51) BatchNorm1d's and Embedding's refusal of a complex input named their internal ops
    (batch_moments, take), Dropout's a mask of an i64[] seed ("mask dtype must be floating
    point"), gc.cond's and gc.while_loop's a cast. Each names the layer or the construct
    and, for a construct, the operand."""
    z = np.ones((3, 2)) * (1 + 1j)
    for run, line in [
            (lambda: gc.nn.BatchNorm1d(2)(z), f"BatchNorm1d: {_UNSUPPORTED}"),
            (lambda: gc.nn.Embedding(4, 2)(z), f"Embedding: {_UNSUPPORTED}"),
            (lambda: gc.nn.Dropout(0.5)(z), f"Dropout: {_UNSUPPORTED}"),
            (lambda: gc.nn.Sequential(gc.nn.Dropout(0.5))(z), f"Dropout: {_UNSUPPORTED}"),
            (lambda: gc.dropout(z, 0.5, seed=1), f"dropout: {_UNSUPPORTED}"),
            (lambda: gc.cond(True, lambda x: x, lambda x: x * 2, z),
             f"cond: operands[0]: {_UNSUPPORTED}"),
            (lambda: gc.switch(0, [lambda x: x], z), f"switch: operands[0]: {_UNSUPPORTED}"),
            (lambda: gc.while_loop(lambda c: False, lambda c: c, z),
             f"while_loop: init_val: {_UNSUPPORTED}"),
            (lambda: gc.fori_loop(0, 2, lambda i, c: c, z), f"fori_loop: init_val: "
                                                             f"{_UNSUPPORTED}"),
            (lambda: gc.scan(lambda c, x: (c, x), 0.0, z), f"scan: xs: {_UNSUPPORTED}"),
            (lambda: gc.map(lambda x: x, z), f"map: xs: {_UNSUPPORTED}")]:
        assert _one_line(run) == line
    # a layer of one's own names the op its forward called, as before (its line is the user's)

    class Mine(gc.nn.Module):
        def forward(self, x):
            return gc.exp(x)
    assert _one_line(lambda: Mine()(z)) == f"exp: {_UNSUPPORTED}"
    np.testing.assert_allclose(np.asarray(gc.nn.BatchNorm1d(2)(z.real.astype(np.float32))), 0.0)


def test_a_complex_array_given_to_a_parameters_or_buffers_data_is_refused_naming_it():
    """(s51) `param.data = complex_array` was accepted (a later op failed, naming neither the
    parameter nor the assignment; the constructor refuses complex data): refused where it
    is set, naming the parameter or buffer, nothing changed."""
    linear = gc.nn.Linear(2, 2)
    before = linear.weight.data
    assert _one_line(lambda: setattr(linear.weight, "data", np.ones((2, 2)) * 1j)) == \
        f"Parameter 'weight'.data = ...: {_UNSUPPORTED}"
    assert linear.weight.data is before
    norm = gc.nn.BatchNorm1d(2)
    assert _one_line(lambda: setattr(norm.running_mean, "data", np.ones(2) * 1j)) == \
        f"Buffer 'running_mean'.data = ...: {_UNSUPPORTED}"
    assert _one_line(lambda: gc.nn.Buffer(np.ones(2) * 1j)) == f"Buffer: {_UNSUPPORTED}"
    linear.weight.data = np.zeros((2, 2), np.float32)  # a real array is taken
    np.testing.assert_array_equal(linear.weight.numpy(), 0.0)


def test_a_complex_or_torch_argument_of_a_compiled_function_on_the_tape_is_named():
    """Review r12 (s51): gc.compile(f)'s call on the tape (an argument requiring grad) named
    neither f nor the complex argument beside the tensor ("dtype complex128 is not
    supported"), and a torch argument there was named after an internal class
    ("Differentiated: got a torch.Tensor"). Both are named as off the tape."""
    import torch
    weight = gc.nn.Parameter(np.ones(2, np.float32))

    def scaled(w, x):
        return w * 2

    assert _one_line(lambda: gc.compile(scaled)(weight, np.ones(2) * 1j)) == \
        f"compiled scaled: argument x: {_UNSUPPORTED}"
    assert _one_line(lambda: gc.compile(scaled)(weight, torch.ones(2))).startswith(
        "compiled scaled: argument x is a torch.Tensor, another library's array")


def test_only_a_layers_forward_names_the_op_it_calls():
    """Review r12 (s51): _called_op named an op after the class of any library frame called
    `forward` (split_vjp's Differentiated.forward: "Differentiated: ..."), not only a
    layer's. A forward of another library class names the op, as before."""
    import os
    source = "class Thing:\n    def forward(self, x):\n        return gc.exp(x)\n"
    scope = {"gc": gc}
    exec(compile(source, os.path.join(os.path.dirname(gc.__file__), "_thing.py"), "exec"),
         scope)
    with pytest.raises(gc.GraphcError) as info:
        scope["Thing"]().forward(np.ones(2) * 1j)
    assert str(info.value).splitlines()[0] == f"exp: {_UNSUPPORTED}"
