"""Training-library loose ends a helper's fuzzing against torch found (session 28): the
infinity-norm clip missing a NaN, RMSNorm and LayerNorm over a tuple normalized_shape,
LayerNorm's arguments in torch's order, and LossScaler on numpy state. Each test failed
before its fix."""
import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), is not installed")

RNG = np.random.default_rng(28)


@pytest.mark.parametrize("nan_in", [0, 1])
def test_the_infinity_norm_clip_sees_a_nan_in_any_gradient(nan_in):
    # Python's max(norms) keeps a NaN only when it comes first: the second gradient's NaN
    # gave a total of 2.0 and a finite clip
    grads = [np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.2, 0.1])]
    grads[nan_in][1] = np.nan
    ours = [gc.nn.Parameter(np.zeros(3)) for _ in grads]
    theirs = [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = g.copy(), torch.tensor(g)
    total = float(np.asarray(gc.nn.utils.clip_grad_norm_(ours, 1.0, norm_type=np.inf).data))
    expected = float(torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=float("inf")))
    assert np.isnan(total) and np.isnan(expected)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(p.grad), q.grad.numpy())
    ours[nan_in].grad = grads[nan_in].copy()
    with pytest.raises(gc.GraphcError, match="error_if_nonfinite"):
        gc.nn.utils.clip_grad_norm_(ours, 1.0, norm_type=np.inf, error_if_nonfinite=True)


def _copy_affine(ours, theirs):
    with torch.no_grad():
        for name in ("weight", "bias"):
            mine = getattr(ours, name, None)
            if mine is not None:
                value = RNG.normal(size=np.shape(np.asarray(mine.data)))
                mine.data = value
                getattr(theirs, name).copy_(torch.tensor(value))


@pytest.mark.parametrize("shape", [6, (6,), (4, 6), (2, 4, 6)])
@pytest.mark.parametrize("kind", ["LayerNorm", "RMSNorm"])
def test_norm_layers_normalise_over_the_whole_normalized_shape(kind, shape):
    # RMSNorm((4, 6)) normalised over the last axis only (max error 0.93); LayerNorm
    # refused a tuple
    ours = getattr(gc.nn, kind)(shape, eps=1e-5, dtype="float64")
    theirs = getattr(torch.nn, kind)(shape, eps=1e-5, dtype=torch.float64)
    _copy_affine(ours, theirs)
    x = RNG.normal(size=(3, 2, 4, 6))
    xt = torch.tensor(x, requires_grad=True)
    expected = theirs(xt)
    expected.sum().backward()
    np.testing.assert_allclose(np.asarray(ours(x)), expected.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(gc.compile(lambda a: ours(a))(x)),
                               expected.detach().numpy(), atol=1e-12)
    grad = gc.grad(lambda a: gc.sum(ours(a)))(x)
    np.testing.assert_allclose(np.asarray(grad), xt.grad.numpy(), atol=1e-10)


def test_layer_norm_takes_torchs_arguments_in_torchs_order():
    # graphc's order was (dim, bias, eps): LayerNorm(6, 0.5) took 0.5 as bias, and
    # LayerNorm(6, 1e-6, False) an eps of False (0: NaN on a constant row)
    x = np.concatenate([RNG.normal(size=(2, 6)), np.full((1, 6), 3.0)])
    for args in [(6, 0.5), (6, 1e-6, False), (6, 1e-5, True, False)]:
        ours = gc.nn.LayerNorm(*args, dtype="float64")
        theirs = torch.nn.LayerNorm(*args, dtype=torch.float64)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
        np.testing.assert_allclose(np.asarray(ours(x)), theirs(torch.tensor(x)).detach().numpy(),
                                   atol=1e-12)
    layer = gc.nn.LayerNorm(normalized_shape=(2, 3), elementwise_affine=False)
    assert layer.weight is None and layer.bias is None
    with pytest.raises(gc.GraphcError, match="normalized_shape must be a positive int"):
        gc.nn.LayerNorm(2.5)
    with pytest.raises(gc.GraphcError, match=r"trailing axes \(4, 6\) are not the "
                                             r"normalized_shape \(6, 4\)"):
        gc.nn.RMSNorm((6, 4))(np.zeros((2, 4, 6), np.float32))


def test_the_loss_scaler_runs_on_numpy_state():
    # numpy's 0-d comparisons are np.bool_ scalars, which `where` took as weak scalars of
    # the float operands' dtype: "where: condition must be bool, got float32"
    scaler = gc.amp.LossScaler(init_scale=4.0, growth_interval=1)
    grads, finite, state = scaler.unscale({"w": np.full(3, 8.0, np.float32)}, scaler.init())
    np.testing.assert_array_equal(np.asarray(grads["w"]), np.full(3, 2.0, np.float32))
    assert bool(np.asarray(finite)) and float(np.asarray(state["scale"])) == 8.0
    np.testing.assert_array_equal(np.asarray(gc.where(np.bool_(False), 1.0, np.zeros(2))),
                                  np.zeros(2))


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_takes_an_unbatched_query_as_torchs(batch_first):
    # a 2-d query failed with "not enough values to unpack" from inside forward
    E, H, L, S = 8, 2, 5, 4
    ours = gc.nn.MultiheadAttention(E, H, batch_first=batch_first, dtype="float64")
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=batch_first, dtype=torch.float64)
    ours.load_torch_state_dict(theirs.state_dict())
    q, kv = RNG.normal(size=(L, E)), RNG.normal(size=(S, E))
    padding = np.array([False, False, True, False])
    out, weights = ours(q, kv, kv, key_padding_mask=padding)
    expected, expected_weights = theirs(torch.tensor(q), torch.tensor(kv), torch.tensor(kv),
                                        key_padding_mask=torch.tensor(padding))
    np.testing.assert_allclose(np.asarray(out), expected.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(weights), expected_weights.detach().numpy(),
                               atol=1e-12)
    with pytest.raises(gc.GraphcError, match=r"query must be \(L, E\) or batched"):
        ours(np.zeros(E))
    # torch's fifth positional argument is add_bias_kv (refused before it was offered)
    assert gc.nn.MultiheadAttention(E, H, 0.0, True, True).bias_k.shape == (1, 1, E)
    with pytest.raises(TypeError):  # torch's seventh is kdim: graphc's is by keyword
        gc.nn.MultiheadAttention(E, H, 0.0, True, False, False, 4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_means_variances_and_rms_norms_are_computed_in_float32(dtype):
    # float16: the mean of 256 x 1000.0 was inf (the sum rounded to half first), rms_norm
    # of +-300 was 0 (x * x overflowed) and of 1e-4 about 20% low (subnormal squares)
    x = np.full((2, 256), 1000.0, np.float32)
    x[1] = RNG.normal(1000.0, 30.0, 256)
    ours = gc.tensor(x).astype(dtype)
    theirs = torch.tensor(x).to(getattr(torch, dtype))
    for f, g in ((lambda a: gc.mean(a, -1), lambda a: a.mean(-1)),
                 (lambda a: gc.var(a, -1), lambda a: a.var(-1, unbiased=False)),
                 (lambda a: gc.std(a, -1), lambda a: a.std(-1, unbiased=False))):
        want = g(theirs).float().numpy()
        for got in (f(ours), gc.compile(f)(np.asarray(ours))):
            got = np.asarray(got).astype(np.float32)
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)
    for scale in (300.0, 1e-4):
        y = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, -2.0, 3.0, -1.0]], np.float32) * scale
        # (eps given: torch's default for a half x on the CPU is float32's epsilon, its
        # documented one the half dtype's, which graphc takes)
        want = torch.nn.functional.rms_norm(torch.tensor(y).to(getattr(torch, dtype)), (4,),
                                            eps=1e-7)
        got = np.asarray(gc.rms_norm(gc.tensor(y).astype(dtype), eps=1e-7)).astype(np.float32)
        np.testing.assert_allclose(got, want.float().numpy(), rtol=1e-2, atol=1e-3)


def test_the_trainer_refuses_a_loss_that_is_not_one_number_before_any_step():
    # a loss of shape (1,) was trained on (parameters moved), then float(loss) failed
    layer = gc.nn.Linear(3, 1, rng=np.random.default_rng(0), dtype="float64")
    x = RNG.normal(size=(4, 3))
    before = {k: np.array(v) for k, v in layer.params().items()}
    with pytest.raises(gc.GraphcError, match=r"returned a value of shape \(1,\); it must "
                                             r"return one number"):
        trainer = gc.Trainer(lambda p, b: gc.mean(layer.apply(p, b[0]), axis=0),
                             layer.params(), gc.optim.SGD(0.1), lambda rng: (x,), steps=2)
        trainer.train_step()
    for k, v in layer.params().items():
        np.testing.assert_array_equal(np.asarray(v), before[k])
    with pytest.raises(gc.GraphcError, match="a batch must be a tuple of arrays or one "
                                             "array, got dict"):
        trainer = gc.Trainer(lambda p, b: gc.mean(layer.apply(p, b[0])), layer.params(),
                             gc.optim.SGD(0.1), lambda rng: {"x": x}, steps=2)
        trainer.train_step()
