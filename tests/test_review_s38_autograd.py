"""Session 38's fixes of autograd defects (grad mode in traces, the tape's requires_grad
flags, gc.gradients' arguments, weak detach, index messages); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc

X = np.array([1.0, 2.0])
INNER_NO_GRAD_GRAD = [3.0, 6.0]  # d/dx sum(c * x) with c = 3x a constant: torch's [3, 6]


def _inner_no_grad(x):
    with gc.no_grad():
        h = x * 3.0
    return gc.sum(h * x)


@gc.no_grad()
def _times_three(x):
    return x * 3.0


def _decorated(x):
    return gc.sum(_times_three(x) * x)


def _statement(x):
    gc.set_grad_enabled(False)
    h = x * 3.0
    gc.set_grad_enabled(True)
    return gc.sum(h * x)


def _set_grad_enabled_block(x):
    with gc.set_grad_enabled(False):
        h = x * 3.0
    return gc.sum(h * x)


@pytest.mark.parametrize("f", [_inner_no_grad, _decorated, _statement,
                               _set_grad_enabled_block])
def test_no_grad_inside_a_traced_function_makes_a_constant(f):
    """A no_grad (with, decorator, set_grad_enabled) entered inside a function was ignored
    when the function was traced: gc.compile on the tape, gc.grad and compile(grad) gave
    [6, 12] where eager graphc, torch and torch.compile give [3, 6]; the block's results are
    constants for differentiation now."""
    x = gc.tensor(X, requires_grad=True)
    f(x).backward()
    np.testing.assert_allclose(x.grad, INNER_NO_GRAD_GRAD)
    x = gc.tensor(X, requires_grad=True)
    gc.compile(f)(x).backward()
    np.testing.assert_allclose(x.grad, INNER_NO_GRAD_GRAD)
    np.testing.assert_allclose(gc.grad(f)(X), INNER_NO_GRAD_GRAD)
    np.testing.assert_allclose(gc.compile(gc.grad(f))(X), INNER_NO_GRAD_GRAD)
    assert gc.is_grad_enabled()


def test_no_grad_around_a_transformation_changes_nothing():
    """A no_grad entered outside gc.grad does not stop its gradient (torch.func.grad
    computes under an outer torch.no_grad too), the inner one still counts, and a compiled
    inference call under it builds the same graph as without."""
    with gc.no_grad():
        np.testing.assert_allclose(gc.grad(_inner_no_grad)(X), INNER_NO_GRAD_GRAD)
        np.testing.assert_allclose(gc.grad(lambda x: gc.sum(x * x))(X), 2 * X)
        traced = str(gc.trace(lambda x: gc.tanh(x) * 2.0, gc.spec((2,))))
        assert not gc.is_grad_enabled()
    assert traced == str(gc.trace(lambda x: gc.tanh(x) * 2.0, gc.spec((2,))))
    assert "stop_gradient" not in traced


def test_the_tape_keeps_what_each_op_needed_when_it_ran():
    """A tape entry read its operands' requires_grad at backward time: D frozen for the
    generator's loss and unfrozen before backward() (the GAN pattern) got D.weight.grad, and
    a leaf turned on after the forward got a gradient; both stay None now, as torch's. A leaf
    frozen after the forward still gets none (torch's)."""
    D = gc.nn.Linear(2, 1)
    fake = gc.tensor(np.ones((4, 2), np.float32), requires_grad=True)
    D.requires_grad_(False)
    loss = gc.mean(D(fake))
    D.requires_grad_(True)
    loss.backward()
    assert D.weight.grad is None and D.bias.grad is None
    np.testing.assert_allclose(fake.grad, np.tile(D.weight.data.reshape(1, 2) / 4, (4, 1)),
                               rtol=1e-6)

    x = gc.tensor([1.0, 2.0], requires_grad=True)
    w = gc.tensor([3.0, 4.0])
    y = gc.sum(x * w)
    w.requires_grad_()
    y.backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad, [3.0, 4.0])

    w = gc.tensor([3.0, 4.0], requires_grad=True)
    y = gc.sum(x * w)
    w.requires_grad_(False)
    y.backward()
    assert w.grad is None


def test_gradients_takes_a_single_value_for_ys_or_xs():
    """gc.gradients iterated a single traced value as its rows: gradients([y], x) gave one
    zero per row of x and gradients(y, [x]) failed with "len() of a 0-d symbolic value";
    either may be one value now, as tf.gradients takes it, and the result is a list."""
    points = np.array([1.0, 2.0, 3.0])
    for f in (lambda x: gc.gradients([gc.sum(x * x)], x),
              lambda x: gc.gradients(gc.sum(x * x), [x]),
              lambda x: gc.gradients(gc.sum(x * x), x)):
        (g,) = gc.compile(f)(points)
        np.testing.assert_allclose(g, 2 * points)

    def seeded(x):
        y = x * x
        return gc.gradients(y, x, seeds=gc.ones_like(y) * 3.0)
    (g,) = gc.compile(seeded)(points)
    np.testing.assert_allclose(g, 6 * points)


def test_detach_and_stop_gradient_keep_a_weak_scalar_weak():
    """detach() and gc.stop_gradient of a weak eager scalar (gc.sqrt(2.0)) gave a strong
    float32 tensor, so `x_f64 * s.detach()` was refused ("operands must have one dtype");
    they stay weak now (JAX's stop_gradient keeps weak types), eagerly and traced."""
    s = gc.sqrt(2.0)
    assert s.detach().weak and gc.stop_gradient(s).weak
    x = gc.tensor(X, requires_grad=True)
    y = x * s.detach() + x * gc.stop_gradient(s)
    assert y.dtype == np.float64
    gc.sum(y).backward()
    np.testing.assert_allclose(x.grad, 2 * np.float32(np.sqrt(2.0)) * np.ones(2))

    def f(x):
        r = gc.sqrt(3.0)
        return gc.sum(x * r.detach() + x * gc.stop_gradient(r) + x * s.detach())
    expected = (2 * np.float32(np.sqrt(3.0)) + np.float32(np.sqrt(2.0))) * np.ones(2)
    np.testing.assert_allclose(gc.grad(f)(X), expected)
    assert gc.compile(f)(X).dtype == np.float64


def test_an_index_array_beside_other_indices_is_numpys_gather():
    """x[:, np.array([0, 2])] said "unsupported index array([0, 2]) of type ndarray" while
    x[np.array([0, 2])] works; it was then refused naming the alternative, and is now
    numpy's gather (tests/test_arrays.py); two arrays are numpy's pairing (session 51)."""
    x = gc.tensor(np.arange(12.0).reshape(3, 4))
    idx = np.array([0, 2])
    for index in ((slice(None), idx), (Ellipsis, idx), (-1, idx), (slice(None), [0, 2]),
                  (slice(None), gc.tensor(idx)), (idx, slice(1, None))):
        np.testing.assert_array_equal(x[index].data, x.data[tuple(
            np.asarray(k.data) if isinstance(k, gc.Tensor) else k for k in index)])
    np.testing.assert_array_equal(x[idx, idx].data, x.data[idx, idx])
    np.testing.assert_array_equal(gc.compile(lambda v: v[:, idx])(np.ones((2, 3))),
                                  np.ones((2, 2)))


def _normalize_rows(x, w):
    h = x
    for _ in range(2):
        h = gc.tanh(h @ w) * 0.5 + h * 0.5
        h = h / gc.sqrt(gc.mean(h * h, axis=-1, keepdims=True) + 1e-5)
    return h


def test_a_no_grad_function_compiles_to_the_plan_of_the_same_function_without_it():
    """Tracing under a no_grad wraps each float result in stop_gradient (its results are
    constants for differentiation), and those nodes reached the lowered plan: a compiled
    @gc.no_grad() inference function ran 56 extra nodes and no fused kernel (45 -> 117 kernel
    graph nodes for 4 such blocks). Lowering now drops them: the same kernel graph as
    without no_grad, and the same values."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8)).astype(np.float32)
    w = rng.standard_normal((8, 8)).astype(np.float32) * 0.1
    plain, inference = gc.compile(_normalize_rows), gc.compile(gc.no_grad()(_normalize_rows))
    np.testing.assert_allclose(inference(x, w), plain(x, w), rtol=1e-4, atol=1e-5)
    kernels = [f.plan_for(x, w).lowered.kernel_graph for f in (plain, inference)]
    assert [n.op for n in kernels[1].nodes] == [n.op for n in kernels[0].nodes]
    assert "stop_gradient" not in {n.op for n in kernels[1].nodes}
    # a stop_gradient in the graph still shapes its gradient: the gradient is taken first
    assert "stop_gradient" in {n.op for n in gc.trace(gc.no_grad()(_normalize_rows),
                                                        x, w).nodes}
    from runtime.stages import without_stop_gradients
    assert without_stop_gradients(kernels[0]) is kernels[0]


def test_a_custom_vjp_closing_over_a_weight_frozen_during_the_forward_is_not_refused():
    """A custom_vjp closing over w, run while w was frozen (the GAN freeze pattern) and
    backward() after w.requires_grad = True, was refused as closing over a differentiated
    value: the closure check read requires_grad at backward time. It now follows the flags the
    tape stored when each op ran, as backward() does: x.grad is torch's cos(x) * w * 2 sin(x)
    * w and w.grad None. A w requiring grad during the forward is still refused."""
    xs, w0 = np.array([0.3, 0.7]), np.array([1.5, -2.0])
    w = gc.tensor(w0, requires_grad=False)
    f = gc.custom_vjp(lambda x: gc.sin(x) * w)
    f.defvjp(lambda x: (f(x), x), lambda x, g: (gc.cos(x) * w * g,))
    x = gc.tensor(xs, requires_grad=True)
    loss = gc.sum(f(x) ** 2)
    w.requires_grad = True
    loss.backward()
    np.testing.assert_allclose(x.grad, np.cos(xs) * w0 * 2 * np.sin(xs) * w0)  # [1.27, 3.94]
    assert w.grad is None
    with pytest.raises(gc.GraphcError, match="closes over a value that is being differentiated"):
        gc.sum(f(gc.tensor(xs, requires_grad=True)) ** 2).backward()


def test_gradients_refuses_a_seed_count_other_than_the_ys_count():
    """gc.gradients(y, x, seeds=[s1, s2]) zipped one y with two seeds and dropped the second
    silently ([2, 4, 6], the first seed's gradient); a count of seeds other than of ys is now
    one line naming both, as tf.gradients refuses its grad_ys. One seed per y still works."""
    points = np.array([1.0, 2.0, 3.0])

    def two_seeds(x):
        y = gc.sum(x * x)
        return gc.gradients(y, x, seeds=[gc.ones_like(y), gc.ones_like(y) * 2.0])

    def one_seed_two_ys(x):
        y = gc.sum(x * x)
        return gc.gradients([y, gc.sum(x)], x, seeds=[gc.ones_like(y)])

    for f, message in ((two_seeds, "2 seeds for 1 ys"), (one_seed_two_ys, "1 seeds for 2 ys")):
        with pytest.raises(gc.GraphcError, match=message):
            gc.compile(f)(points)
    def seeded(x):
        y = gc.sum(x * x)
        return gc.gradients(y, x, seeds=[gc.ones_like(y) * 2.0])
    (g,) = gc.compile(seeded)(points)
    np.testing.assert_allclose(g, 4 * points)


# ---- no_grad blocks of several shapes, against torch (session 40) ---------------------------
# Each function is written once for both libraries (`lib` is graphc or torch): x and w are
# differentiated; the no_grad block's results are read later, it reads values from outside
# (arguments, a result computed before it), and enable_grad and a loop nest inside it.
def _block_read_later(lib, x, w):
    h = lib.tanh(x @ w)
    with lib.no_grad():
        s = lib.sqrt(lib.sum(h * h) + 1e-5) * 2.0 - 1.0
        t = lib.exp(s * 0.1) + h
    return lib.sum(h / s * x) + lib.sum(t * h)


def _block_of_arguments(lib, x, w):
    with lib.no_grad():
        c = lib.exp(x * 0.5) * lib.sum(w)
        d = c @ w
    return lib.sum(c * x) + lib.sum(d * (x @ w)) + lib.sum(w * w)


def _enable_grad_inside(lib, x, w):
    with lib.no_grad():
        a = x * 2.0
        with lib.enable_grad():
            b = a * x + w[0]  # differentiable again: b depends on x (not through a) and w
        c = b * 3.0
    return lib.sum(c * x) + lib.sum(b * b)


def _nested_blocks(lib, x, w):
    with lib.no_grad():
        a = lib.tanh(x)
        with lib.no_grad():
            b = a * w[1]
        a = a + b
    with lib.set_grad_enabled(False):
        e = lib.exp(a * 0.25)
    return lib.sum(e * x * w[2]) + lib.sum(a)


def _loop_after_block(lib, x, w):
    with lib.no_grad():
        scale = lib.sum(x * x) ** 0.5
    h = x
    if lib is gc:
        h = gc.fori_loop(0, 3, lambda i, h: lib.tanh(h @ w) / scale, h)
    else:
        for _ in range(3):
            h = lib.tanh(h @ w) / scale
    return lib.sum(h * x)


def _no_grad_inside_loop(lib, x, w):
    def step(h):
        with lib.no_grad():
            s = lib.sum(h * h) + 1.0  # a carry and an outer w enter the block
            u = w * s
        return lib.tanh(h @ u) + h / s + (h @ w) * 0.1
    if lib is gc:
        return gc.sum(gc.fori_loop(0, 2, lambda i, h: step(h), x) * x)
    h = x
    for _ in range(2):
        h = step(h)
    return lib.sum(h * x)


_BLOCKS = [_block_read_later, _block_of_arguments, _enable_grad_inside, _nested_blocks,
           _loop_after_block, _no_grad_inside_loop]


@pytest.mark.parametrize("block", _BLOCKS, ids=lambda f: f.__name__.strip("_"))
def test_no_grad_blocks_differentiate_as_torch(block):
    """gc.grad, compile(grad) and a compiled call on the tape differentiate functions with
    no_grad blocks of these shapes as torch does (eager graphc too)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 3)) * 0.5
    w = rng.standard_normal((3, 3)) * 0.5
    tx, tw = (torch.tensor(v, requires_grad=True) for v in (x, w))
    torch.autograd.backward(block(torch, tx, tw))
    expected = (tx.grad.numpy(), tw.grad.numpy())

    def f(x, w):
        return block(gc, x, w)
    for got in (gc.grad(f, argnums=(0, 1))(x, w),
                gc.compile(gc.grad(f, argnums=(0, 1)))(x, w)):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    for run in (f, gc.compile(f)):
        gx, gw = (gc.tensor(v, requires_grad=True) for v in (x, w))
        run(gx, gw).backward()
        for g, e in zip((gx.grad, gw.grad), expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_a_no_grad_block_of_a_layer_differentiates_its_parameters_as_torch():
    """A layer's parameters read in a no_grad block (a target the loss is compared with) and
    again outside it: their gradients are torch's, through gc.grad of the parameters, on
    the tape and eagerly."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    weight, bias = rng.standard_normal((3, 4)) * 0.5, rng.standard_normal(3) * 0.5

    def loss(lib, layer, x):
        with lib.no_grad():
            target = lib.tanh(layer(x)) * 0.5
        return lib.sum((layer(x) - target) ** 2)

    t_layer = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        t_layer.weight.copy_(torch.tensor(weight))
        t_layer.bias.copy_(torch.tensor(bias))
    loss(torch, t_layer, torch.tensor(x)).backward()
    expected = (t_layer.weight.grad.numpy(), t_layer.bias.grad.numpy())
    for run in (lambda layer: loss(gc, layer, x),
                lambda layer: gc.compile(lambda x: loss(gc, layer, x))(x)):
        layer = gc.nn.Linear(4, 3, dtype="float64")
        layer.weight.data, layer.bias.data = weight.T.copy(), bias.copy()  # (in x out)
        run(layer).backward()
        for g, e in zip((layer.weight.grad.T, layer.bias.grad), expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)

    def of_params(weight, bias, x):
        with gc.no_grad():
            target = gc.tanh(x @ weight.T + bias) * 0.5
        return gc.sum((x @ weight.T + bias - target) ** 2)
    for g, e in zip(gc.grad(of_params, argnums=(0, 1))(weight, bias, x), expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_a_no_grad_block_stops_the_gradient_where_values_enter_it():
    """Tracing put a stop_gradient after every float op run under a no_grad in the traced
    function (9 in _block_read_later's trace, 7 in _nested_blocks', 5 in
    _block_of_arguments'); one per value that enters a block from outside suffices, since
    every path into the block's values crosses it: 1 (h), 2 (x and w; the inner block reads
    only values of the outer one) and 2 (x and w). The gradients stay the same (above)."""
    x, w = np.ones((3, 3)), np.ones((3, 3))
    for block, entering in ((_block_read_later, 1), (_nested_blocks, 2),
                            (_block_of_arguments, 2)):
        graph = gc.trace(lambda x, w: block(gc, x, w), x, w)
        stops = [n for n in graph.nodes if n.op == "stop_gradient"]
        assert len(stops) == entering, block.__name__
        assert all(n.inputs[0].op in ("input", "tanh") for n in stops)


def test_a_tuple_from_outside_read_in_a_no_grad_block_is_a_constant():
    """A control-flow node's tuple made in grad mode and read (tuple_get) in a no_grad block
    cannot be read through a stop_gradient: the float value read from it is stopped instead,
    so it is a constant as torch's detached loop result (the gradient [18, 9, 8] below is
    torch's for sum(c.detach() * x) + c, c = x0 * x0 * x1 * x2)."""
    from ir.ops.registry import apply

    def f(x):
        carry, _ = gc.scan(lambda c, v: (c * v, c + v), x[0], x)
        with gc.no_grad():
            again = apply("tuple_get", carry.inputs[0], index=0)  # (the scan's tuple)
        return gc.sum(again * x) + gc.sum(carry)
    np.testing.assert_allclose(gc.grad(f)(np.array([1.0, 2.0, 3.0])), [18.0, 9.0, 8.0])


# ---- transformations called inside a no_grad block of a traced function (r6) ---------------
# Each pair is (graphc, torch.func) of one inner transformation of f0 or s0; called eagerly
# under no_grad it gives the real derivative (a no_grad around gc.grad does not stop its
# gradient, torch.func.grad's). Before a5e2f80 the same call inside a block of a compiled or
# differentiated function gave zeros: every op of the inner gradient was stopped.
def _f0(lib, x):
    return lib.sin(x) * x * x


def _s0(lib, x):
    return lib.sum(lib.sin(x) * x * x)


def _through_a_block(lib, v, x):
    with lib.no_grad():
        v = v * 1.0
    return lib.sum(v * x)


def _torch_loop(torch, x):
    h = x
    for _ in range(2):
        h = torch.sin(h) * x
    return torch.sum(h)


_INNER_TRANSFORMS = {
    "grad": (lambda x: gc.grad(lambda x: _s0(gc, x))(x),
             lambda torch, x: torch.func.grad(lambda x: _s0(torch, x))(x)),
    "value_and_grad": (lambda x: gc.value_and_grad(lambda x: _s0(gc, x))(x)[1],
                       lambda torch, x: torch.func.grad_and_value(lambda x: _s0(torch, x))(x)[0]),
    "vjp": (lambda x: gc.vjp(lambda x: _f0(gc, x), x)[1](gc.ones_like(x))[0],
            lambda torch, x: torch.func.vjp(lambda x: _f0(torch, x), x)[1](torch.ones_like(x))[0]),
    "jacrev": (lambda x: gc.jacrev(lambda x: _f0(gc, x))(x),
               lambda torch, x: torch.func.jacrev(lambda x: _f0(torch, x))(x)),
    "grad_of_loop": (
        lambda x: gc.grad(lambda x: gc.sum(gc.fori_loop(0, 2, lambda i, h: gc.sin(h) * x, x)))(x),
        lambda torch, x: torch.func.grad(lambda x: _torch_loop(torch, x))(x)),
    "grad_of_vmap": (
        lambda x: gc.grad(lambda x: gc.sum(gc.vmap(lambda r: gc.sin(r) * r)(x)))(x),
        lambda torch, x: torch.func.grad(
            lambda x: torch.sum(torch.func.vmap(lambda r: torch.sin(r) * r)(x)))(x)),
    # differentiating a gradient taken in the block (jvp is a vjp's derivative): zero, and
    # the g term alone for grad_of_grad_times_x, before the gradient's nodes were the block's
    "jvp": (lambda x: gc.jvp(lambda x: _f0(gc, x), (x,), (gc.ones_like(x),))[1],
            lambda torch, x: torch.func.jvp(lambda x: _f0(torch, x), (x,),
                                            (torch.ones_like(x),))[1]),
    "grad_of_grad": (
        lambda x: gc.grad(lambda x: gc.sum(gc.grad(lambda x: _s0(gc, x))(x)))(x),
        lambda torch, x: torch.func.grad(
            lambda x: torch.sum(torch.func.grad(lambda x: _s0(torch, x))(x)))(x)),
    "grad_of_grad_times_x": (
        lambda x: gc.grad(lambda x: gc.sum(gc.grad(lambda x: _s0(gc, x))(x) * x))(x),
        lambda torch, x: torch.func.grad(
            lambda x: torch.sum(torch.func.grad(lambda x: _s0(torch, x))(x) * x))(x)),
    # a block of the differentiated function's own, inside the outer block, stops what it
    # reads: d sum(stop(v) * x) / dx = v. Its gradient went through v instead (through the
    # inner gradient g: [0.0896 1.3350 3.4567]; through sin(x) x: [0.0299 ...]): every value
    # computed in the outer block counted as the inner block's
    "grad_of_a_block_holding_a_gradient": (
        lambda x: gc.grad(lambda x: _through_a_block(gc, gc.grad(lambda x: _s0(gc, x))(x), x))(x),
        lambda torch, x: torch.func.grad(
            lambda x: _through_a_block(torch, torch.func.grad(lambda x: _s0(torch, x))(x), x))(x)),
    "grad_of_a_block_holding_a_value": (
        lambda x: gc.grad(lambda x: _through_a_block(gc, gc.sin(x) * x, x))(x),
        lambda torch, x: torch.func.grad(
            lambda x: _through_a_block(torch, torch.sin(x) * x, x))(x)),
}


@pytest.mark.parametrize("name", list(_INNER_TRANSFORMS))
def test_a_transformation_inside_a_no_grad_block_of_a_traced_function_is_real(name):
    """gc.grad, value_and_grad, vjp, jacrev, and grad of a loop and of vmap, called inside
    `with gc.no_grad():` in a compiled or differentiated function: their values are the eager
    ones, torch.func's (zeros before a5e2f80), and the block makes them a constant for the
    outer gradient (d sum(r * x) / dx = r, torch.func's). So are jvp and second derivatives
    (r6: zero, or a plausible wrong number, until the gradient's nodes were the block's), and
    grad of a function with a no_grad block of its own (r1: the derivative through it)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    ours, theirs = _INNER_TRANSFORMS[name]
    x = np.array([0.1, -0.4, 0.7])
    with torch.no_grad():
        expected = theirs(torch, torch.tensor(x)).numpy()
    with gc.no_grad():
        np.testing.assert_allclose(ours(x), expected, rtol=1e-12)

    def in_block(x):
        with gc.no_grad():
            return ours(x)
    np.testing.assert_allclose(gc.compile(in_block)(x), expected, rtol=1e-12)
    contracted = (lambda r, x: gc.sum(r * x)) if expected.ndim == 1 else \
        (lambda r, x: gc.sum(r @ x))
    outer = expected if expected.ndim == 1 else expected.sum(0)
    np.testing.assert_allclose(gc.grad(lambda x: contracted(in_block(x), x))(x), outer,
                               rtol=1e-12)


def test_a_vjp_taken_in_a_no_grad_block_pulls_back_the_real_gradient_outside_it():
    """A vjp made inside a no_grad block of a compiled function and pulled outside it gives
    the eager gradient, d/dx sin(x) x^2 = [0.0299, 0.4589, 1.2767] (zeros before a5e2f80)."""
    x = np.array([0.1, -0.4, 0.7])

    def f(x):
        with gc.no_grad():
            y, pull = gc.vjp(lambda x: _f0(gc, x), x)
        return pull(gc.ones_like(y))[0]
    expected = 2 * x * np.sin(x) + x * x * np.cos(x)  # d/dx sin(x) x^2
    np.testing.assert_allclose(gc.compile(f)(x), expected, rtol=1e-12)


def test_a_vjp_taken_outside_a_no_grad_block_and_pulled_in_it_is_a_constant():
    """The pullback of a vjp made outside a block, run in it, is a constant for an outer
    derivative, as eagerly (the tape) and torch's: d sum(r * x) / dx = r. gc.grad gave the
    full derivative of sum(g(x) * x), [0.0896, 1.3350, 3.4567], while the backward nodes
    built in the block counted as built in grad mode."""
    x = np.array([0.1, -0.4, 0.7])

    def f(x):
        y, pull = gc.vjp(lambda x: _f0(gc, x), x)
        with gc.no_grad():
            r = pull(gc.ones_like(y))[0]
        return gc.sum(r * x)
    expected = 2 * x * np.sin(x) + x * x * np.cos(x)  # r = d/dx sin(x) x^2
    np.testing.assert_allclose(gc.grad(f)(x), expected, rtol=1e-12)
    np.testing.assert_allclose(gc.compile(gc.grad(f))(x), expected, rtol=1e-12)
    on_tape = gc.tensor(x, requires_grad=True)
    f(on_tape).backward()
    np.testing.assert_allclose(on_tape.grad, expected, rtol=1e-12)



@gc.custom_vjp
def _custom_sin_times(x):
    return gc.sin(x) * x


_custom_sin_times.defvjp(lambda x: (_custom_sin_times(x), x),
                         lambda x, g: (g * (gc.cos(x) * x + gc.sin(x)),))


@pytest.mark.parametrize("kind", ["custom_vjp", "remat"])
def test_a_custom_rule_or_remat_called_in_a_no_grad_block_is_a_constant(kind):
    """A custom_vjp or gc.remat function called inside a no_grad block of a traced function
    is a constant for the outer derivative, as eagerly (the tape) and torch's:
    d sum(r * x) / dx = r = sin(x) x. gc.grad and compile(grad) gave the full derivative,
    2 x sin(x) + x^2 cos(x), before c9cb3cf."""
    fn = _custom_sin_times if kind == "custom_vjp" else gc.remat(lambda x: gc.sin(x) * x)
    x = np.array([0.1, -0.4, 0.7])

    def f(x):
        with gc.no_grad():
            r = fn(x)
        return gc.sum(r * x)
    expected = np.sin(x) * x
    np.testing.assert_allclose(gc.grad(f)(x), expected, rtol=1e-12)
    np.testing.assert_allclose(gc.compile(gc.grad(f))(x), expected, rtol=1e-12)
    for run in (f, gc.compile(f)):
        on_tape = gc.tensor(x, requires_grad=True)
        run(on_tape).backward()
        np.testing.assert_allclose(on_tape.grad, expected, rtol=1e-12)


# A derivative with respect to x, a value from outside a loop, of a function that also reads
# the loop's carry h, taken in a no_grad block of the body; and its value (closed form)
_IN_A_LOOP_BODY = {
    "jvp": (lambda x, h: gc.jvp(lambda x: gc.sin(x) * h, (x,), (gc.ones_like(x),))[1],
            lambda x, h: np.cos(x) * h),
    "grad_of_grad": (
        lambda x, h: gc.grad(lambda x: gc.sum(gc.grad(lambda x: gc.sum(gc.sin(x) * x * h))(x)))(x),
        lambda x, h: (2 * np.cos(x) - x * np.sin(x)) * h),
    "grad_of_grad_times_x": (
        lambda x, h: gc.grad(
            lambda x: gc.sum(gc.grad(lambda x: gc.sum(gc.sin(x) * x * h))(x) * x))(x),
        lambda x, h: (np.sin(x) + 3 * x * np.cos(x) - x * x * np.sin(x)) * h),
}


@pytest.mark.parametrize("loop", ["fori_loop", "scan", "while_loop"])
@pytest.mark.parametrize("name", list(_IN_A_LOOP_BODY))
def test_a_derivative_in_a_no_grad_block_of_a_loop_body_is_real(name, loop):
    """jvp and second derivatives with respect to an outer value, taken in a no_grad block of
    a compiled loop's body, are the real ones, as at the top level of the function. They
    were zeros (jvp, grad_of_grad) or the g term alone (grad_of_grad_times_x) before c9cb3cf
    made the inner gradient's nodes values of the block."""
    ours, derivative = _IN_A_LOOP_BODY[name]
    x, h0 = np.array([0.1, -0.4, 0.7]), np.array([0.3, 0.5, -0.2])
    expected = h0
    for _ in range(2):
        expected = expected + 0.1 * derivative(x, expected)

    def step(h, x):
        with gc.no_grad():
            d = ours(x, h)
        return h + 0.1 * d

    def run(x, h):
        if loop == "fori_loop":
            return gc.fori_loop(0, 2, lambda i, h: step(h, x), h)
        if loop == "scan":
            return gc.scan(lambda h, _: (step(h, x), None), h, length=2)[0]
        return gc.while_loop(lambda c: c[0] < 2, lambda c: (c[0] + 1, step(c[1], x)), (0, h))[1]
    np.testing.assert_allclose(gc.compile(run)(x, h0), expected, rtol=1e-12)
