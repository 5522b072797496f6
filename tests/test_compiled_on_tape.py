"""A gc.compile'd function called on requires_grad tensors records on the eager tape (session 35).

Session 35's fixes of compiled calls off the eager tape; each test failed before its fix (a
compiled call returned arrays, warning once, so backward() never reached through it)."""
import numpy as np
import pytest

import graphc as gc


def _t(a, grad=True):
    return gc.tensor(np.asarray(a, np.float64), requires_grad=grad)


def _mlp(x, w1, b1, w2):
    return gc.tanh(gc.relu(x @ w1 + b1) @ w2)


def _mlp_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in ((4, 3), (3, 5), (5,), (5, 2))]


def _grads(tensors):
    grads = [t.grad for t in tensors]
    for t in tensors:
        t.grad = None
    return grads


def test_gradients_through_a_compiled_mlp_are_the_eager_tapes():
    """x.grad and the weights' .grad of sum(compiled_mlp(x, w1, b1, w2) ** 2) were not there
    (the call returned an array; loss.backward() then had nothing that required grad). Now
    the call is one entry of the tape and its backward runs the compiled pullback: the
    gradients equal the eager tape's (float64) and torch.autograd's."""
    arrays = _mlp_arrays()
    tensors = [_t(a) for a in arrays]
    compiled = gc.compile(_mlp)
    y = compiled(*tensors)
    assert isinstance(y, gc.Tensor) and y.requires_grad
    gc.sum(y * y).backward()
    got = _grads(tensors)
    gc.sum(_mlp(*tensors) ** 2).backward()
    for g, e in zip(got, _grads(tensors)):
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-13)
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    (torch.tanh(torch.relu(tt[0] @ tt[1] + tt[2]) @ tt[3]) ** 2).sum().backward()
    for g, t in zip(got, tt):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_parameters_a_compiled_function_closes_over_get_gradients_too():
    """A compiled model (closing over its Linear layers' Parameters) called on an x that
    requires grad: x.grad and each Parameter's .grad are the eager tape's, as torch.compile's
    call fills a module's parameters' .grad."""
    model = gc.nn.Sequential(gc.nn.Linear(3, 4, dtype="float64"), gc.nn.Tanh(),
                             gc.nn.Linear(4, 2, dtype="float64"))
    x = _t(np.linspace(-1, 1, 6).reshape(2, 3))
    params = [x] + list(model.parameters())
    gc.sum(gc.compile(model)(x) ** 2).backward()
    got = _grads(params)
    assert all(g is not None for g in got)
    gc.sum(model(x) ** 2).backward()
    for g, e in zip(got, _grads(params)):
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-14)


def test_a_compiled_function_used_twice_in_one_loss():
    """Two calls of one compiled function in one loss: each is its own tape entry holding
    its own residuals; t.grad of sum(t * t) + cube_sum(t) + cube_sum(2 t) is
    2t + 3t^2 + 2 * 3 (2t)^2 (it was 2t: both calls were off the tape)."""
    t = _t([1.0, 2.0, -0.5])
    cube_sum = gc.compile(lambda v: gc.sum(v ** 3))
    loss = gc.sum(t * t) + cube_sum(t) + cube_sum(t * 2.0)
    assert float(loss) == pytest.approx(5.25 + 8.875 + 71.0)
    loss.backward()
    v = np.array([1.0, 2.0, -0.5])
    np.testing.assert_allclose(t.grad, 2 * v + 3 * v ** 2 + 6 * (2 * v) ** 2, rtol=1e-14)


def test_outputs_partially_used_and_pytree_outputs():
    """A compiled function returning a tuple and a dict: the results are tensors on the tape
    in the same structure; only the outputs the loss reads send gradients (the pullback is
    built for those outputs' cotangents, zeros for the others), and an output the loss
    reads twice sends both."""
    a, b = _t([0.5, -1.0, 2.0]), _t([1.5, 0.25, -2.0])

    def parts(a, b):
        return (gc.sin(a) * b, {"sq": a * a, "log": gc.log(gc.abs(b))})

    compiled = gc.compile(parts)
    first, rest = compiled(a, b)
    assert set(rest) == {"sq", "log"} and all(v.requires_grad for v in rest.values())
    (gc.sum(rest["sq"]) + gc.sum(rest["sq"] * 2.0)).backward()  # "log" and first unused
    np.testing.assert_allclose(a.grad, 6 * a.data, rtol=1e-14)
    assert b.grad is None  # no result the loss reads depends on b: none, as eagerly
    a.grad = b.grad = None
    first, rest = compiled(a, b)
    gc.sum(first * rest["log"]).backward()
    eager_first, eager_rest = parts(*(w := [_t(a.data), _t(b.data)]))
    gc.sum(eager_first * eager_rest["log"]).backward()
    np.testing.assert_allclose(a.grad, w[0].grad, rtol=1e-14)
    np.testing.assert_allclose(b.grad, w[1].grad, rtol=1e-14)


def test_the_gradient_is_that_of_the_values_at_the_call():
    """Inputs changed after the call do not change the gradient: the backward reads the
    residuals the forward kept (torch raises on a saved tensor changed in place; graphc
    differentiates the values the call computed with, as its tape does for a numpy operand).
    Here w is updated under no_grad and the numpy operand a refilled before backward()."""
    w, a = _t([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    compiled = gc.compile(lambda w, a: gc.sum(gc.exp(w * 0.1) * a))
    loss = compiled(w, a)
    with gc.no_grad():
        w -= 100.0
    a[:] = -1.0
    loss.backward()
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(w.grad, 0.1 * np.exp(0.1 * v) * [4.0, 5.0, 6.0], rtol=1e-14)


def test_no_grad_and_tensors_that_do_not_require_grad_record_nothing():
    """Under no_grad, or with no argument that requires grad, the call runs the plain plan
    and returns arrays, as before (no split plans built)."""
    compiled = gc.compile(lambda v: gc.sum(v * v))
    t = _t([1.0, 2.0])
    with gc.no_grad():
        out = compiled(t)
    assert type(out) is np.ndarray and float(out) == 5.0
    out = compiled(gc.tensor(np.array([1.0, 3.0])))
    assert type(out) is np.ndarray and float(out) == 10.0
    assert compiled.on_tape is None


def test_a_new_shape_compiles_a_new_pullback():
    """A second call with another shape splits fn again and builds its own cotangent plan
    (at its first backward); the first shape's plans serve the third call."""
    compiled = gc.compile(lambda v: gc.sum(gc.sin(v) * v))
    for values in ([0.5, 1.0], [0.1, 0.2, 0.3, 0.4, 0.5], [2.0, -1.0]):
        t = _t(values)
        compiled(t).backward()
        v = np.array(values)
        np.testing.assert_allclose(t.grad, np.cos(v) * v + np.sin(v), rtol=1e-14)
    splits = [p for entries in compiled.on_tape._plans.values() for _, p in entries]
    assert sorted(s.known_plan.graph.inputs[0].shape for s in splits) == [(2,), (5,)]
    assert all(len(s._cotangent_plans) == 1 for s in splits)
    assert len(compiled.on_tape.recompiles) == 1


def test_dropout_gives_the_gradient_of_the_mask_actually_used():
    """The backward reads the mask the forward drew (a residual), not a new draw: for
    y = dropout(x * w) (the key drawn per call) d sum(y) / dw = y / w elementwise, for
    each of two calls, whose masks differ."""
    drop = gc.nn.Dropout(0.5)
    compiled = gc.compile(lambda x, w: drop(x * w))
    x = np.linspace(1.0, 2.0, 64)
    w = _t(np.linspace(0.5, 1.5, 64))
    y1, y2 = compiled(x, w), compiled(x, w)
    assert not np.array_equal(y1.data == 0, y2.data == 0)  # two masks
    gc.sum(y1 + y2 * 3.0).backward()
    np.testing.assert_allclose(w.grad, (y1.data + 3.0 * y2.data) / w.data, rtol=1e-14)


def test_outputs_without_a_gradient_say_so_at_backward():
    """An integer output is a tensor that requires no grad (as torch marks it), and its
    backward() says why in one line; an output computed through while_loop (no reverse
    rule) is on the tape, the call and the other outputs' gradients work, and a backward
    reaching it names the compiled function and the rule that is missing."""
    def summary(v):
        loop = gc.while_loop(lambda c: gc.sum(c) < 100.0, lambda c: c * 2.0, v)
        return gc.sum(v * v), gc.argmax(v), loop

    compiled = gc.compile(summary)
    t = _t([1.0, 2.0, 3.0])
    total, index, loop = compiled(t)
    assert index.item() == 2 and not index.requires_grad and loop.requires_grad
    np.testing.assert_allclose(loop.data, [32.0, 64.0, 96.0])
    with pytest.raises(gc.GraphcError, match=r"^backward\(\) on a tensor of dtype int64: "
                                             r"only floating-point tensors have gradients\n"):
        index.backward()
    total.backward()
    np.testing.assert_allclose(t.grad, [2.0, 4.0, 6.0])
    with pytest.raises(gc.GraphcError, match=r"^backward\(\) through result\.2 of compiled "
                                             r"summary: while_loop has no reverse-mode "
                                             r"gradient") as info:
        gc.sum(loop + total).backward()
    assert "\n" not in info.value.message


def test_create_graph_through_a_compiled_call_is_refused_in_one_line():
    """backward(create_graph=True) through the compiled call: its backward is a plan, whose
    results have no tape, so it is refused rather than giving a .grad that does not
    differentiate again."""
    t = _t([1.0, 2.0])
    y = gc.compile(lambda v: gc.sum(v ** 3))(t)
    with pytest.raises(gc.GraphcError, match=r"^backward\(create_graph=True\) through "
                                             r"compiled lambda is not supported"):
        y.backward(create_graph=True)


def test_a_closed_over_tensor_set_to_require_grad_later_gets_its_gradient():
    """The tensors fn closes over that require grad are differentiated as they are at each
    call: one set to require grad after the first call gets its gradient at the next (a
    split of its own), and one no longer requiring grad gets none."""
    w = gc.tensor(np.array([2.0, 3.0]))
    compiled = gc.compile(lambda v: gc.sum(v * w))
    x = _t([1.0, 1.0])
    compiled(x).backward()
    assert w.grad is None
    w.requires_grad = True
    compiled(x).backward()
    np.testing.assert_allclose(w.grad, [1.0, 1.0])
    np.testing.assert_allclose(x.grad, [4.0, 6.0])


def test_finite_differences_of_a_composite_in_float64():
    """The gradient through a compiled composite (softmax, layer_norm-like normalisation,
    matmul, exp, a reduction), mixed with eager ops before and after the call, matches
    central finite differences of the whole loss."""
    rng = np.random.default_rng(3)
    x0, w0 = rng.normal(size=(3, 4)), rng.normal(size=(4, 4))

    def inner(h, w):
        z = gc.softmax(h @ w, axis=-1)
        z = (z - gc.mean(z, axis=-1, keepdims=True)) / gc.sqrt(
            gc.mean(z * z, axis=-1, keepdims=True) + 1e-3)
        return gc.exp(z * 0.5), gc.sum(z ** 2, axis=0)

    compiled = gc.compile(inner)

    def loss(x, w, run):
        a, b = run(gc.tanh(x), w)
        return gc.sum(a * x) + gc.sum(b * b)

    x, w = _t(x0), _t(w0)
    loss(x, w, compiled).backward()
    for value, grad, which in ((x0, x.grad, 0), (w0, w.grad, 1)):
        fd = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            args = [x0.copy(), w0.copy()]
            args[which][i] += 1e-6
            up = float(loss(*args, inner))
            args[which][i] -= 2e-6
            fd[i] = (up - float(loss(*args, inner))) / 2e-6
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_a_compiled_model_called_on_an_array_fills_its_parameters_grads():
    """gc.compile(model)(x) on a plain array, with grad mode on, returned arrays: a loss built
    from its result left every Parameter's .grad None. Now the call is on the tape when fn
    closes over a float tensor that requires grad (as torch.compile(model)(x) fills
    model.weight.grad): the Parameters' gradients equal the eager tape's and torch's, and
    BatchNorm's running statistics are updated once per call, as eagerly."""
    model = gc.nn.Sequential(gc.nn.Linear(3, 4, dtype="float64"),
                             gc.nn.BatchNorm1d(4, dtype="float64"), gc.nn.Tanh(),
                             gc.nn.Linear(4, 2, dtype="float64"))
    x = np.linspace(-1.0, 1.5, 15).reshape(5, 3)
    compiled = gc.compile(model)
    y = compiled(x)
    assert isinstance(y, gc.Tensor) and y.requires_grad
    gc.sum(y ** 2).backward()
    got, mean = _grads(list(model.parameters())), model[1].running_mean.data.copy()
    model[1].running_mean.data[...] = 0.0
    model[1].running_var.data[...] = 1.0
    eager = model(gc.tensor(x))
    gc.sum(eager ** 2).backward()
    np.testing.assert_allclose(y.data, eager.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mean, model[1].running_mean.data, rtol=1e-14)
    for g, e in zip(got, _grads(list(model.parameters()))):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13)
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    w1, b1, w2, b2 = (torch.tensor(p.data, requires_grad=True)
                      for p in (model[0].weight, model[0].bias, model[3].weight,
                                model[3].bias))
    gamma, beta = (torch.tensor(p.data, requires_grad=True)
                   for p in (model[1].weight, model[1].bias))
    h = torch.nn.functional.batch_norm(torch.tensor(x) @ w1 + b1, None, None, gamma, beta,
                                       training=True)
    ((torch.tanh(h) @ w2 + b2) ** 2).sum().backward()
    for g, t in zip(got, (w1, b1, gamma, beta, w2, b2)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_a_closed_over_tensor_that_requires_grad_mixed_with_eager_terms():
    """A compiled function reading a closed-over w (requires_grad=True) called on an array:
    the loss sum(w * w) + f(x) had w.grad 2w (the call was left out); now it is
    2w + x exp(x w). Under no_grad, and for a function closing over no tensor, the call
    returns arrays and builds no split (the per-call check is one attribute read there)."""
    w = _t([0.5, -1.0, 2.0])
    x = np.array([1.0, 2.0, -0.5])
    f = gc.compile(lambda x: gc.sum(gc.exp(x * w)))
    loss = gc.sum(w * w) + f(x)
    assert float(loss) == pytest.approx(5.25 + np.exp(0.5) + np.exp(-2.0) + np.exp(-1.0))
    loss.backward()
    np.testing.assert_allclose(w.grad, 2 * w.data + x * np.exp(x * w.data), rtol=1e-14)
    with gc.no_grad():
        assert type(f(x)) is np.ndarray
    plain = gc.compile(lambda x: gc.sum(x * x))
    assert type(plain(x)) is np.ndarray and float(plain(x)) == 5.25
    assert plain.on_tape is None and not plain._closed_floats


def test_an_operand_no_used_result_depends_on_gets_no_gradient():
    """An operand of the call (an argument, a closed-over tensor) that no result the loss
    reads depends on had a zero .grad (the call's one tape entry gave every operand one);
    the eager tape and torch leave its .grad None. Now it is None, and a later loss reading
    the other result gives it its gradient."""
    a, b = _t([0.5, -1.0]), _t([2.0, 3.0])
    scale = _t([1.5, 2.5])
    f = gc.compile(lambda a, b: (a * a, gc.sin(b) * scale))
    first, second = f(a, b)
    gc.sum(first).backward()
    np.testing.assert_allclose(a.grad, [1.0, -2.0], rtol=1e-15)
    assert b.grad is None and scale.grad is None
    gc.sum(second).backward()
    np.testing.assert_allclose(a.grad, [1.0, -2.0], rtol=1e-15)
    np.testing.assert_allclose(b.grad, np.cos([2.0, 3.0]) * [1.5, 2.5], rtol=1e-14)
    np.testing.assert_allclose(scale.grad, np.sin([2.0, 3.0]), rtol=1e-14)
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    ta, tb, ts = (torch.tensor(v, requires_grad=True)
                  for v in ([0.5, -1.0], [2.0, 3.0], [1.5, 2.5]))
    t_first, _ = torch.compile(lambda a, b: (a * a, torch.sin(b) * ts), backend="eager")(ta, tb)
    t_first.sum().backward()
    assert tb.grad is None and ts.grad is None


def test_polymorphic_shapes_hold_for_calls_on_the_tape():
    """gc.compile(model, polymorphic_shapes=[("batch", 3)]) called on tensors that require
    grad split fn once per batch size (Differentiated.of dropped polymorphic_shapes): three
    sizes made three splits and two recompiles. Now one split serves them all, with the
    eager tape's gradients at each size."""
    model = gc.nn.Sequential(gc.nn.Linear(3, 4, dtype="float64"), gc.nn.Tanh(),
                             gc.nn.Linear(4, 2, dtype="float64"))
    compiled = gc.compile(model, polymorphic_shapes=[("batch", 3)])
    params = list(model.parameters())
    for n in (2, 5, 7):
        x = _t(np.linspace(-1.0, 1.0, 3 * n).reshape(n, 3))
        gc.sum(compiled(x) ** 3).backward()
        got = _grads([x] + params)
        gc.sum(model(x) ** 3).backward()
        for g, e in zip(got, _grads([x] + params)):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    assert sum(len(entries) for entries in compiled.on_tape._plans.values()) == 1
    assert compiled.on_tape.recompiles == []


def test_an_output_without_a_gradient_is_named_by_its_pytree_path():
    """backward() reaching a result computed through while_loop named it by its flattened
    position ("result leaf 2"); it is named by its path in the result, as graphc names an
    argument's leaves (leaf_input_names: params.l1.weight): here result.aux.1."""
    def summary(v):
        loop = gc.while_loop(lambda c: gc.sum(c) < 100.0, lambda c: c * 2.0, v)
        return {"total": gc.sum(v * v), "aux": (v * 2.0, loop)}

    out = gc.compile(summary)(_t([1.0, 2.0, 3.0]))
    with pytest.raises(gc.GraphcError, match=r"^backward\(\) through result\.aux\.1 of "
                                             r"compiled summary: while_loop has no "
                                             r"reverse-mode gradient"):
        gc.sum(out["aux"][1]).backward()


def _backbone_and_head():
    gc.nn.manual_seed(0)
    backbone = gc.nn.Sequential(gc.nn.Linear(4, 6, dtype="float64"), gc.nn.Tanh())
    return backbone, gc.nn.Linear(6, 3, dtype="float64")


def test_a_training_step_closing_over_a_model_it_does_not_train_stays_off_the_tape():
    """A JAX-style compiled step (value_and_grad and opt.update inside, params and state
    passed and donated) closing over a pretrained backbone that is not frozen went on the
    tape (the closure trigger): its new params were Tensors that required grad, fed back
    next step, so the tape chained every step to the last and memory grew without bound.
    Now a function whose trace takes gradients itself treats its closures as constants, as
    jax.jit does: params and state come back as arrays, step after step, with the values
    of the same step computed eagerly; a Tensor argument that requires grad still puts a
    call on the tape."""
    backbone, head = _backbone_and_head()
    opt = gc.optim.SGD(lr=0.1)
    x = np.linspace(-1.0, 1.0, 20).reshape(5, 4)
    y = np.array([0, 2, 1, 0, 2])

    def loss_of(p, feats):
        return gc.cross_entropy(head.apply(p, feats), y)

    @gc.compile(donate_argnums=(0, 1))
    def step(params, state, x):
        loss, grads = gc.value_and_grad(loss_of)(params, backbone(x))
        params, state = opt.update(grads, state, params)
        return loss, params, state

    params = {k: v.copy() for k, v in head.params().items()}
    state = opt.init(params)
    expected = {k: v.copy() for k, v in params.items()}
    for _ in range(3):
        loss, params, state = step(params, state, x)
        assert type(loss) is np.ndarray
        assert all(type(v) is np.ndarray for v in params.values())
        with gc.no_grad():
            feats = backbone(gc.tensor(x)).data
        want, grads = gc.value_and_grad(loss_of)(expected, feats)
        expected = {k: v - 0.1 * grads[k] for k, v in expected.items()}
        assert float(loss) == pytest.approx(float(want), rel=1e-12)
        for k in expected:
            np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14)
    assert step.on_tape is None and all(p.grad is None for p in backbone.parameters())
    # the other gradient transforms, traced, make a function differentiate itself too
    w = backbone[0].weight
    for name, f in [
            ("grad", lambda v: gc.grad(lambda u: gc.sum(backbone(u) ** 2))(v)),
            ("vjp", lambda v: gc.vjp(backbone, v)[1](gc.ones((5, 6), "float64"))[0]),
            ("jvp", lambda v: gc.jvp(backbone, (v,), (gc.ones((5, 4), "float64"),))[1]),
            ("jacrev", lambda v: gc.jacrev(lambda u: backbone(u[None])[0])(v[0])),
            ("hessian", lambda v: gc.hessian(lambda u: gc.sum(backbone(u[None])))(v[0]))]:
        assert type(gc.compile(f)(x)) is np.ndarray, name
    on_tape = step(params, state, gc.tensor(x, requires_grad=True))
    assert isinstance(on_tape[0], gc.Tensor) and on_tape[0].requires_grad
    assert w.grad is None


def test_a_call_whose_float_results_do_not_depend_on_closed_tensors_returns_arrays():
    """gc.compile(lambda v: gc.argmax(m(v), axis=1)) on an array, with grad mode on, built
    fn's split and returned a Tensor (m's Parameters require grad), where it returned an
    array before the closure trigger; np.mean(r == labels) then failed. Now a closed-over
    tensor puts a call on the tape only where some float result depends on it: these
    return arrays and build no split, and a float result that does still goes on it."""
    backbone, _ = _backbone_and_head()
    x = np.linspace(-1.0, 1.0, 20).reshape(5, 4)
    predict = gc.compile(lambda v: gc.argmax(backbone(v), axis=1))
    labels = predict(x)
    assert type(labels) is np.ndarray and labels.dtype == np.int64
    assert np.mean(labels == np.argmax(np.tanh(x @ backbone[0].weight.data
                                               + backbone[0].bias.data), axis=1)) == 1.0
    both = gc.compile(lambda v: (gc.argmax(backbone(v), axis=1), v * 2.0))
    first, second = both(x)
    assert type(first) is np.ndarray and type(second) is np.ndarray
    assert predict.on_tape is None and both.on_tape is None
    scores = gc.compile(lambda v: (gc.argmax(backbone(v), axis=1), gc.sum(backbone(v))))
    _, total = scores(x)
    assert isinstance(total, gc.Tensor) and total.requires_grad
