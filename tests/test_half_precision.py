"""float16 and bfloat16: every op computes on them in float32 and rounds its result once.

Each op case of tests/opcases.py runs on half-precision inputs (eagerly, in the reference
interpreter and compiled) and is compared with its float64 numpy reference on the same
(already rounded) inputs: the difference is the result's own rounding (half an ulp, eps/2
relative) plus, for cases built from several ops, the rounding of each intermediate result;
the tolerance is a few of the dtype's eps: float16 eps = 2**-10, bfloat16 eps = 2**-7.
"""
import re

import numpy as np
import pytest

import graphc as gc
from ir.types import as_dtype, finfo
from runtime.interpreter import run

from opcases import CASES

HALF = ["float16", "bfloat16"]
# cases with float operands; cast, one_hot and creators build float64 tensors in their
# functions (a float64 tensor meeting a half one is an error): their half forms are below
FLOAT64_BUILDERS = {"cast", "one_hot", "creators"}
FLOAT_CASES = [c for c in CASES if len(c.ints) < len(c.inputs) and c.name not in
               FLOAT64_BUILDERS]


def half_inputs(case, dtype, seed=0):
    rng = np.random.default_rng(seed)
    xs = [mk(rng) for mk in case.inputs]
    return [x if i in case.ints else np.asarray(x).astype(as_dtype(dtype))
            for i, x in enumerate(xs)]


def expected(case, xs):
    """The float64 reference on the rounded inputs."""
    return np.asarray(case.reference(*[x if x.dtype.kind in "iub" else x.astype(np.float64)
                                       for x in xs]))


def assert_rounded_close(out, ref, dtype, ulps):
    """|out - ref| <= ulps * eps * (|ref| + mean |ref|): relative to each value, with an
    absolute floor at the scale of the result (sums that cancel round at their operands'
    scale, not their own)."""
    eps = float(finfo(dtype).eps)
    out64 = np.asarray(out).astype(np.float64)
    scale = np.abs(ref).mean() if ref.size else 0.0
    bound = ulps * eps * (np.abs(ref) + scale)
    worst = np.max(np.abs(out64 - ref) - bound) if ref.size else 0.0
    assert worst <= 0, f"off by more than {ulps} eps: max excess {worst}"


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("case", FLOAT_CASES, ids=[c.name for c in FLOAT_CASES])
def test_op_on_half_inputs_is_the_float_result_rounded(case, dtype):
    xs = half_inputs(case, dtype)
    ref = expected(case, xs)
    eager = case.fn(*[gc.tensor(x) for x in xs]).data
    (interpreted,) = run(gc.trace(case.fn, *xs), *xs)
    compiled = gc.compile(case.fn)(*xs)
    for out in (eager, interpreted, compiled):
        assert out.shape == ref.shape
        if ref.dtype.kind == "f":
            assert out.dtype == as_dtype(dtype)
            assert_rounded_close(out, ref, dtype, ulps=4)
        else:
            np.testing.assert_array_equal(out, ref)


def _three_ways(fn, *xs):
    """fn's result eagerly, in the reference interpreter and compiled."""
    (interpreted,) = run(gc.trace(fn, *xs), *xs)
    return [fn(*[gc.tensor(x) for x in xs]).data, interpreted, gc.compile(fn)(*xs)]


@pytest.mark.parametrize("dtype", HALF)
def test_casts_creators_and_one_hot_in_half(dtype):
    a = np.random.default_rng(0).uniform(-2, 2, (3, 4)).astype(as_dtype(dtype))
    idx = np.array([0, 3, 1])

    def fn(a, i):
        wide = gc.cast(a, "float32") * 3.0  # a half value is exact in float32
        back = gc.cast(wide, dtype)          # rounds once
        ones = gc.ones((3, 4), dtype) + gc.full((3, 1), 2.5, dtype)
        return back * ones + gc.one_hot(i, 4, dtype)
    ref = a.astype(np.float64) * 3.0
    ref = ref.astype(as_dtype(dtype)).astype(np.float64) * 3.5 + np.eye(4)[idx]
    for out in _three_ways(fn, a, idx):
        assert out.dtype == as_dtype(dtype)
        assert_rounded_close(out, ref, dtype, ulps=2)


@pytest.mark.parametrize("dtype", HALF)
def test_matmul_einsum_and_sum_accumulate_in_float32(dtype):
    """4096 ones summed: a float16 running sum stops at 2048 (2048 + 1 rounds back to 2048),
    a bfloat16 one at 256; float32 accumulation gives 4096, which both hold exactly."""
    ones = np.ones((2, 4096), as_dtype(dtype))
    running = ones[0, 0] * 0
    for v in ones[0]:  # what accumulating in the storage dtype gives
        running = (running + v).astype(ones.dtype)
    assert float(running) == {"float16": 2048.0, "bfloat16": 256.0}[dtype]

    def fn(a):
        return gc.stack([(a @ gc.transpose(a))[0, 0], gc.einsum("ij,ij->i", a, a)[1],
                         gc.sum(a[0]), gc.mean(a) * 4096.0])
    for out in _three_ways(fn, ones):
        assert out.dtype == as_dtype(dtype)
        np.testing.assert_array_equal(out.astype(np.float32), [4096.0] * 4)


@pytest.mark.parametrize("dtype", HALF)
def test_softmax_of_large_half_logits_is_finite_and_normalised(dtype):
    """exp of the raw logits overflows float16 at 11.1; the max-subtracted float32 formula
    does not, and the rounded probabilities still sum to 1 within the dtype's eps."""
    x = np.array([[12.0, 11.0, -3.0, 0.0]]).astype(as_dtype(dtype))
    for out in _three_ways(lambda x: gc.softmax(x * 8.0, axis=-1), x):
        assert np.isfinite(out.astype(np.float32)).all()
        assert abs(float(out.astype(np.float32).sum()) - 1.0) <= 2 * float(finfo(dtype).eps)


def test_checkpoint_round_trip_of_half_arrays(tmp_path):
    from graphc import checkpoint
    rng = np.random.default_rng(0)
    arrays = {"param/w": rng.normal(size=(3, 5)).astype(as_dtype("bfloat16")),
              "param/h": rng.normal(size=(4,)).astype(np.float16),
              "param/f": rng.normal(size=(2, 2)).astype(np.float32)}
    path = str(tmp_path / "c.npz")
    checkpoint.save(path, arrays, {"step": 3, "rng": np.random.default_rng(1).bit_generator.state,
                                   "history": [], "val_history": []})
    wanted = {k: (a.shape, a.dtype) for k, a in arrays.items()}
    loaded, meta = checkpoint.load_arrays(path, wanted)
    for k, a in arrays.items():
        assert loaded[k].dtype == a.dtype
        np.testing.assert_array_equal(loaded[k].view(np.uint8), a.view(np.uint8))  # bit-exact
    assert meta["step"] == 3
    # a bfloat16 array where float32 is expected is refused with one line naming both
    with pytest.raises(checkpoint.CheckpointError, match="param/w is bfloat16.*needs float32"):
        checkpoint.load_arrays(path, {"param/w": ((3, 5), np.dtype("float32"))})


@pytest.mark.parametrize("dtype", HALF)
def test_half_types_print_parse_and_serialise(dtype):
    from ir.parser import parse
    from ir.printer import format_graph
    from ir.serialize import from_json, to_json
    short = {"float16": "f16", "bfloat16": "bf16"}[dtype]
    const = np.array([1.5, -2.25], as_dtype(dtype))
    graph = gc.trace(lambda x: gc.softmax(x * const, axis=-1), gc.spec((3, 2), dtype))
    text = format_graph(graph)
    assert f"%0:{short}[3,2] x" in text
    x = np.random.default_rng(0).normal(size=(3, 2)).astype(as_dtype(dtype))
    for back in (parse(text), from_json(to_json(graph))):
        assert format_graph(back) == text
        np.testing.assert_array_equal(run(back, x)[0], run(graph, x)[0])


@pytest.mark.parametrize("dtype", HALF)
def test_finite_check_names_the_half_op_that_overflowed(dtype):
    """float16 overflows above 65504: the checked run blames the exp, with its operand's
    range (bfloat16's range is float32's; its exp overflows past 88.7)."""
    x = np.array([1.0, 12.0, 100.0]).astype(as_dtype(dtype))
    fn = gc.compile(lambda x: gc.exp(x * 1.0) + 1.0)
    out = fn(x)
    assert not np.isfinite(out.astype(np.float32)).all()
    with pytest.raises(gc.GraphcError, match=r"non-finite value: .* exp"):
        fn.call((x,), checked=True)


@pytest.mark.parametrize("dtype", HALF)
def test_compiled_half_ops_run_float32_kernels_between_casts(dtype):
    """runtime/widen.py: the plan computes a bf16/f16 matmul -> gelu -> softmax chain with
    its float32 kernels (no library calls), each result rounded to the half dtype, and
    agrees with the reference interpreter (library implementations) to a rounding."""
    from runtime.stages import LoweringOptions, lower
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 32)).astype(as_dtype(dtype))
    w = rng.normal(size=(32, 8)).astype(as_dtype(dtype))

    def fn(x, w):
        return gc.softmax(gc.gelu(x @ w) * 0.5, axis=-1)
    graph = gc.trace(fn, x, w)
    kernel_graph = lower(graph, LoweringOptions(), until="fuse").kernel_graph
    computing = [n for n in kernel_graph.nodes if n.op not in ("input", "constant", "cast")]
    assert [n.op for n in computing] == ["matmul", "gelu", "mul", "softmax"]
    assert all(n.dtype == np.float32 and all(i.dtype == np.float32 for i in n.inputs)
               for n in computing)
    # every result is rounded: a cast to the half dtype after each computing node
    rounded = [n for n in kernel_graph.nodes if n.op == "cast" and n.dtype == as_dtype(dtype)]
    assert [n.inputs[0] for n in rounded] == computing
    plan = gc.compile(fn).plan_for(x, w)
    assert "op_" not in plan.source  # no library implementation runs
    compiled = gc.compile(fn)(x, w)
    (interpreted,) = run(graph, x, w)
    np.testing.assert_allclose(compiled.astype(np.float32), interpreted.astype(np.float32),
                               rtol=float(finfo(dtype).eps), atol=0)


@pytest.mark.parametrize("dtype", HALF)
def test_rms_and_layer_norms_of_half_inputs_are_torchs_bits(dtype):
    # torch computes both in float32, weight included, and rounds once, taking float32
    # parameters beside a half input (its mixed-type kernel); its RMS norm's eps=None is
    # float32's epsilon. graphc's eps=None was half's own (0.032 for 0.001s, torch 0.945),
    # its half weight was applied after rounding (1 ulp off), and float32 parameters were
    # refused ("operands must have one dtype")
    torch = pytest.importorskip("torch", reason="torch (the oracle) is not installed")
    rng = np.random.default_rng(0)
    x = rng.normal(scale=[[1e-3], [1.0], [30.0]], size=(3, 64)).astype(np.float32)
    w32, b32 = rng.normal(size=(2, 64)).astype(np.float32)
    xh, tdt = gc.tensor(x).astype(dtype), getattr(torch, dtype)
    xt = torch.tensor(x).to(tdt)

    def same(got, want):
        assert got.dtype == as_dtype(dtype)
        np.testing.assert_array_equal(np.asarray(got).astype(np.float32),
                                      want.detach().float().numpy())

    F = torch.nn.functional
    for w in (None, w32, w32.astype(as_dtype(dtype))):
        wt = None if w is None else torch.tensor(w.astype(np.float32)).to(
            torch.float32 if w.dtype == np.float32 else tdt)
        same(gc.rms_norm(xh, w), F.rms_norm(xt, (64,), wt))
        same(gc.compile(lambda a: gc.rms_norm(a, w))(xh), F.rms_norm(xt, (64,), wt))
    same(gc.layer_norm(xh, w32, b32), F.layer_norm(xt, (64,), torch.tensor(w32),
                                                   torch.tensor(b32)))
    same(gc.compile(lambda a: gc.layer_norm(a, w32, b32))(xh),
         F.layer_norm(xt, (64,), torch.tensor(w32), torch.tensor(b32)))
    # the layers, float32 as built, given a half input; the gradient reaches the float32
    # weight in float32
    for ours, theirs in ((gc.nn.LayerNorm(64), torch.nn.LayerNorm(64)),
                         (gc.nn.RMSNorm(64), torch.nn.RMSNorm(64))):
        ours.weight.data[...] = w32
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w32))
        same(ours(xh), theirs(xt))
        grads = gc.grad(lambda p: ours.apply(p, xh).astype("float32").sum())(ours.params())
        theirs(xt).float().sum().backward()
        assert grads["weight"].dtype == np.float32
        np.testing.assert_allclose(grads["weight"], theirs.weight.grad.numpy(), rtol=1e-2,
                                   atol=1e-2)


NORM_DTYPES = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm", "group_norm"])
@pytest.mark.parametrize("x_dtype", NORM_DTYPES)
def test_norm_parameter_dtypes_follow_torchs_rule(fn, x_dtype):
    # torch's rule, checked on every mix: layer_norm's and group_norm's weight and bias of one
    # dtype, x's or (half x) float32; rms_norm's weight of any float dtype, the product in the
    # wider one, rounded to x's. graphc widened any half parameter to float32, so
    # layer_norm(x16, w16, b32) and (x16, w_bf16, b32) ran (torch refuses both), and rms_norm
    # refused every other mix ("mul(f32[2,4], f64[4]): operands must have one dtype")
    torch = pytest.importorskip("torch", reason="torch (the oracle) is not installed")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 8)) * [[1e-3], [1.0], [30.0]]).astype(as_dtype(x_dtype))
    w, b = rng.normal(size=(2, 8))
    biases = [None] if fn == "rms_norm" else [None] + NORM_DTYPES
    for wd, bd in ((wd, bd) for wd in [None] + NORM_DTYPES for bd in biases):
        params = [None if d is None else v.astype(as_dtype(d)) for v, d in ((w, wd), (b, bd))]
        tparams = [None if p is None else torch.tensor(p.astype(np.float64)).to(
            getattr(torch, str(p.dtype))) for p in params]
        tx = torch.tensor(x.astype(np.float64)).to(getattr(torch, x_dtype))
        ours = {"layer_norm": lambda a: gc.layer_norm(a, *params),
                "rms_norm": lambda a: gc.rms_norm(a, params[0]),
                "group_norm": lambda a: gc.group_norm(a, 2, *params)}[fn]
        try:
            want = {"layer_norm": lambda: F.layer_norm(tx, (8,), *tparams),
                    "rms_norm": lambda: F.rms_norm(tx, (8,), tparams[0]),
                    "group_norm": lambda: F.group_norm(tx, 2, *tparams)}[fn]()
        except RuntimeError:
            want = None
        for run_ in (ours, gc.compile(ours)):
            if want is None:  # one line naming the function and the parameter
                allowed = (x_dtype, "float32") if x_dtype in HALF else (x_dtype,)
                bad, got = ("bias", bd) if wd in allowed + (None,) else ("weight", wd)
                with pytest.raises(gc.GraphcError) as e:
                    run_(x)
                assert re.fullmatch(f"{fn}: {bad} .*, got {got}",
                                    str(e.value).splitlines()[0]), (wd, bd, str(e.value))
                continue
            got = run_(x)
            assert got.dtype == as_dtype(x_dtype), (wd, bd)
            got, want64 = np.asarray(got).astype(np.float64), want.double().numpy()
            if fn == "rms_norm" and x_dtype in HALF:  # torch's bits (a float32 sum's
                # order may put a float32 x's 1 ulp off)
                np.testing.assert_array_equal(got, want64, err_msg=str((wd, bd)))
            else:
                np.testing.assert_allclose(got, want64, rtol=2 * float(finfo(x_dtype).eps),
                                           atol=2 * float(finfo(x_dtype).eps),
                                           err_msg=str((wd, bd)))


SUPPORTED = "float32, float64, float16, bfloat16, int32, int64, bool"


def test_a_norm_parameter_of_another_shape_is_named_as_the_user_gave_it():
    # a float32 weight of a half x was checked after x's float32 copy was made (the op's
    # 'layer_norm(f32[2,4], f32[3], f32[4])'), and layer_norm read no shape itself
    x = gc.tensor(np.ones((2, 4), np.float16))
    w3, w4 = np.ones(3, np.float32), np.ones(4, np.float32)
    for call, line in (
            (lambda: gc.layer_norm(x, w3, w4), "layer_norm: weight must have shape (4,), got "
             "(3,); graphc.nn.LayerNorm normalises over several trailing axes"),
            (lambda: gc.layer_norm(x, w4, w3), "layer_norm: bias must have shape (4,), got "
             "(3,); graphc.nn.LayerNorm normalises over several trailing axes"),
            (lambda: gc.rms_norm(x, w3), "rms_norm: weight must have shape (4,), got (3,); "
             "graphc.nn.RMSNorm normalises over several trailing axes"),
            (lambda: gc.group_norm(x, 2, w4, w3), "group_norm: bias must have shape (4,), "
             "got (3,)"),
            (lambda: gc.layer_norm(x.astype("int32")), "layer_norm of an int32 value; cast it "
             "to a float type first"),
            # a dtype graphc holds no values of is named so, as every op's refusal
            (lambda: gc.group_norm(np.ones((2, 4), np.complex64), 2), "group_norm: dtype "
             f"complex64 is not supported (supported: {SUPPORTED})"),
            (lambda: gc.rms_norm(x, np.ones(4, np.int8)), "rms_norm: weight: dtype int8 is not "
             f"supported (supported: {SUPPORTED}); cast it first (x.astype(np.int32))")):
        with pytest.raises(gc.GraphcError) as e:
            call()
        assert str(e.value).splitlines()[0] == line


def test_review_r13_a_norm_parameter_that_is_no_array_is_named_so():
    # _norm_parameters read a str, dict, list or tuple as numpy reads it: layer_norm(x, 'abc')
    # was 'weight must have shape (3,), got ()', layer_norm(x, [1., 2., 3.]) 'weight of a
    # float32 x must be float32, got float64' (a dtype the user never gave; the parent said
    # 'cannot use a list'), and rms_norm of a list x numpy's raw TypeError
    x = np.ones((2, 3), np.float32)
    for call, line in (
            (lambda: gc.layer_norm(x, "abc"), "layer_norm: cannot use a str as a tensor operand"),
            (lambda: gc.layer_norm(x, [1., 2., 3.]), "layer_norm: cannot use a list as a tensor "
             "operand"),
            (lambda: gc.layer_norm(x.astype(np.float16), None, (1., 2., 3.)), "layer_norm: "
             "cannot use a tuple as a tensor operand"),
            (lambda: gc.group_norm(x, 1, [1., 2., 3.]), "group_norm: cannot use a list as a "
             "tensor operand"),
            (lambda: gc.rms_norm(x, {"w": 1}), "rms_norm: cannot use a dict as a tensor "
             "operand"),
            (lambda: gc.rms_norm([[1., 2., 3.]]), "rms_norm: cannot use a list as a tensor "
             "operand")):
        with pytest.raises(gc.GraphcError) as e:
            call()
        assert str(e.value).splitlines()[0] == line
