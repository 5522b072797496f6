"""Session 32's findings (left from session 31, then this session's helpers); each test
failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint
from graphc.cli import main
from test_review_s30_cli import TINY
from test_review_s31 import _trained


def test_vmap_types_an_unmapped_numpy_scalar_as_compile_does():
    """A numpy float scalar given in_axes None takes the float dtype the arrays share, as
    gc.compile's: float32 examples times np.float64(2) are float32 (before: refused as
    float32 meeting float64); a numpy int scalar is weakly typed, as in eager code."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = gc.vmap(lambda a, s: a * s, in_axes=(0, None))(x, np.float64(2.0))
    assert np.asarray(out).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(out), x * 2)
    counts = gc.vmap(lambda a, n: a + n, in_axes=(0, None))(x.astype(np.int32), np.int64(3))
    assert np.asarray(counts).dtype == np.int32
    np.testing.assert_array_equal(np.asarray(counts), x.astype(np.int32) + 3)


def test_resume_refuses_a_negative_second_moment(tmp_path, capsys):
    """A checkpoint with a negative Adam second moment was resumed: the first step made the
    weights NaN and training stopped as diverged. It is refused as changed, and the file is
    left as it was."""
    out, data = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    name = next(k for k in arrays if k.startswith("adam_v/"))
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = -1e-3
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})
    before = ckpt.read_bytes()
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"graphc: error: checkpoint {name} holds a negative value, which AdamW's "
                   "running average of squared gradients never does (the file was changed "
                   "or damaged)"], err
    assert ckpt.read_bytes() == before


# ---- generation and GPT-2 directories (helper's findings) ----------------------------------
def _bpe(path, setup=None):
    """A small byte-level BPE tokenizer.json, changed by `setup(tokenizer)` before saving."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["But soft, what light through yonder window breaks"] * 5,
                            trainers.BpeTrainer(vocab_size=280, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel
                                                .alphabet(), show_progress=False))
    if setup is not None:
        setup(tok)
    tok.save(str(path))
    return str(path)


@pytest.mark.parametrize("setup", [
    lambda t: t.enable_truncation(max_length=3),
    lambda t: t.enable_padding(length=40, pad_id=0, pad_token="<|endoftext|>"),
])
def test_a_tokenizer_file_saved_with_truncation_or_padding_does_not_cut_or_pad(tmp_path, setup):
    """Encoding used the file's truncation/padding: a prompt was cut to 3 tokens or padded
    with <|endoftext|> (transformers' tokenizers turn both off unless a call asks)."""
    from graphc.models import gpt2
    text = "But soft, what light through yonder window"
    plain = gpt2.Tokenizer(_bpe(tmp_path / "plain.json")).encode(text)
    assert len(plain) > 3
    assert gpt2.Tokenizer(_bpe(tmp_path / "set.json", setup)).encode(text) == plain


def test_tokenizer_failures_are_one_line_naming_the_file(tmp_path):
    """The Rust library's errors (a word-level vocabulary without its unknown token) came out
    of encode as a bare Exception: a traceback from `graphc sample`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from graphc.models import gpt2
    from ir.errors import GraphcError
    t = Tokenizer(models.WordLevel({f"w{i}": i for i in range(50)}, unk_token=None))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    path = str(tmp_path / "tokenizer.json")
    t.save(path)
    tok = gpt2.Tokenizer(path)
    assert tok.encode("w1 w2") == [1, 2]
    with pytest.raises(GraphcError, match=f"^{path} cannot encode the text \\(WordLevel error: "
                                          "Missing \\[UNK\\] token from the vocabulary\\)$"):
        tok.encode("hello")


def test_a_stream_ending_inside_a_character_yields_decodes_replacement(tmp_path):
    """decode_stream dropped the U+FFFD of a character cut short by the end of generation,
    which decode (and so the saved sample) keeps."""
    from graphc.models import gpt2
    tok = gpt2.Tokenizer(_bpe(tmp_path / "tokenizer.json"))
    ids = tok.encode("ab\u6771")[:-1]
    assert tok.decode(ids).endswith("\ufffd")
    assert "".join(tok.decode_stream(ids)) == tok.decode(ids)
    whole = tok.encode("ab\u6771 soft")
    assert "".join(tok.decode_stream(whole)) == tok.decode(whole) == "ab\u6771 soft"


def test_logits_all_minus_inf_are_refused_not_token_0():
    """A row of logits all -inf: greedy returned token 0 silently, sampling failed with
    numpy's "Probabilities contain NaN"."""
    from graphc.generate import choose
    row = np.full(5, -np.inf)
    for temperature in (0.0, 1.0):
        with pytest.raises(ValueError, match="or are all -Inf, so no token can be chosen"):
            choose(row, temperature, rng=np.random.default_rng(0))
    row[3] = -1e300
    assert choose(row, 0.0) == 3
    assert choose(row, 1.0, rng=np.random.default_rng(0)) == 3


def test_sample_dtype_float64_keeps_a_weight_beyond_float32s_range(tmp_path, capsys):
    """--dtype float64 checked the weights by casting them to float32 first, so a finite
    float64 weight past 3.4e38 was 'too large for float64' (and a warning line)."""
    data = tmp_path / "t.txt"
    data.write_text("abcdefgh ijklmnop\n" * 200)
    out = tmp_path / "o"
    assert main(["train", *TINY, "--data", str(data), "--out", str(out), "--dtype",
                 "float64"]) == 0
    ckpt = out / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    arrays["param/ln_f.bias"] = arrays["param/ln_f.bias"].copy()
    arrays["param/ln_f.bias"][0] = 1e39
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(out), "--tokens", "3", "--temperature", "0",
                 "--dtype", "float64"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["sample", "--checkpoint", str(out), "--tokens", "3", "--dtype",
                 "float32"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"graphc: error: --dtype float32: ln_f.bias of {str(ckpt)!r} holds values too large "
        "for float32"]


def test_generator_names_a_missing_or_misshapen_parameter():
    from graphc.generate import Generator
    from graphc.models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=5, n_layer=1, n_head=1, n_embd=4, block_size=4))
    params = model.params()
    assert Generator(model, params).generate([[1]], 2, temperature=0)
    with pytest.raises(ValueError, match="^Generator: params has no 'ln_f.weight'"):
        Generator(model, {k: v for k, v in params.items() if k != "ln_f.weight"})
    with pytest.raises(ValueError, match=r"^Generator: params\['ln_f.bias'\] has shape \(3,\), "
                                         r"the model's is \(4,\)$"):
        Generator(model, {**params, "ln_f.bias": np.zeros(3, np.float32)})


def test_sum_of_a_broadcast_half_value_is_not_rounded_through_its_count():
    """simplify's sum(broadcast_to(x)) -> x * copies took the count in the half dtype:
    70000 copies overflowed float16 to inf and bfloat16 rounded 257 to 256."""
    import ml_dtypes
    x = np.array([0.001], np.float16)
    f = gc.compile(lambda x: gc.sum(gc.broadcast_to(x, (70000,))))
    assert float(f(x)) == pytest.approx(70.0, rel=1e-3)
    g = gc.compile(gc.grad(lambda b, x: gc.sum(x + b) * 1e-3))
    assert float(g(np.array(0.0, np.float16), np.zeros(70000, np.float16))) == \
        pytest.approx(70.0, rel=1e-3)
    y = np.array([3.0], ml_dtypes.bfloat16)
    h = gc.compile(lambda y: gc.sum(gc.broadcast_to(y, (257,))))
    assert float(h(y)) == 772.0  # bfloat16's nearest to 771 (the O0 pipeline's sum)


@pytest.mark.parametrize("f, k, says", [
    (lambda x, k: x < k + 0, 2**32 + 2, "4294967298, computed from k,"),
    (lambda x, k: x + (k + 1), 2**40, "1099511627777, computed from k,"),
    (lambda x, k: x * (2 * k), 2**31, "4294967296, computed from k,"),
    (lambda x, k: x + k, 2**31, "argument k = 2147483648"),
])
def test_a_number_computed_from_int_arguments_must_fit_the_tensor_it_meets(f, k, says):
    """Only a weak int argument cast as it was (x < k) was range-checked: x < k + 0 compared
    with k wrapped to int32 (2**32 + 2 as 2), silently. Eager code refuses these values."""
    x = np.array([1, 2, 3], np.int32)
    compiled = gc.compile(f)
    np.testing.assert_array_equal(compiled(x, 5), f(gc.tensor(x), 5).data)
    with pytest.raises(gc.GraphcError, match=f"^compiled function: {says} does not fit in "
                                             "int32"):
        compiled(x, k)
    with pytest.raises(gc.GraphcError):
        f(gc.tensor(x), k)


def test_an_int_argument_beyond_int64_is_one_line():
    x = np.ones(3, np.float32)
    with pytest.raises(gc.GraphcError, match="^the int 18446744073709551616 does not fit in "
                                             "int64, the dtype an int argument is traced as"):
        gc.compile(lambda x, k: x * k)(x, 2**64)


@pytest.mark.parametrize("key", [True, False, (slice(None), True), np.True_])
def test_a_bool_index_is_refused_not_taken_as_0_or_1(key):
    """x[True] gave row 1 (True is an int) where numpy adds an axis of size 1."""
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    for run in (lambda: gc.tensor(x)[key], lambda: gc.compile(lambda a: a[key])(x)):
        with pytest.raises(gc.GraphcError, match="^a bool index|^boolean-mask"):
            run()


def test_small_op_edges_found_by_fuzzing():
    """argmax/argmin of a 0-d value raised IndexError (numpy: 0); stack([]) IndexError; min and
    argmin over an empty axis named max and argmax; var of integers named mean;
    where(c, 1.0, 0) was refused as float32 meeting int64 (numpy and JAX: a float)."""
    assert int(gc.argmax(np.float32(2.0), 0).data) == 0
    assert int(gc.compile(lambda x: gc.argmin(x, 0))(np.float32(2.0))) == 0
    empty = np.zeros((3, 0), np.float32)
    for call, message in [
            (lambda: gc.stack([]), "stack needs at least one array"),
            (lambda: gc.min(empty, 1), "min over axis 1 of size 0: an empty axis has no "
                                       "smallest element"),
            (lambda: gc.argmin(empty, 1), "argmin over axis 1 of size 0"),
            (lambda: gc.var(np.arange(3, dtype=np.int32)), "var of int32 values; cast them "
                                                           "to a float type first")]:
        with pytest.raises(gc.GraphcError, match=f"^{message}"):
            call()
    cond = np.array([True, False])
    for out in (gc.where(cond, 1.0, 0).data, gc.compile(lambda c: gc.where(c, 1.0, 0))(cond)):
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, [1.0, 0.0])


# ---- control flow (helper's findings) -------------------------------------------------------
def test_a_closed_over_tensor_as_predicate_or_bound_is_read_per_call():
    """A compiled cond's predicate or fori_loop's bound that was a closed-over eager tensor
    was baked in at its traced value, where the README says a plan reads such a tensor at
    each call (and `where(p > 0, ...)` did)."""
    x = np.array([1.0, 2.0])
    p, n = gc.tensor(np.array(1)), gc.tensor(np.array(2))
    c = gc.compile(lambda x: gc.cond(p, lambda a: a * 2.0, lambda a: a * 3.0, x))
    f = gc.compile(lambda x: gc.fori_loop(0, n, lambda i, v: v * 2.0, x))
    np.testing.assert_array_equal(c(x), [2.0, 4.0])
    np.testing.assert_array_equal(f(x), [4.0, 8.0])
    with gc.no_grad():
        p -= 1
        n += 1
    np.testing.assert_array_equal(c(x), [3.0, 6.0])
    np.testing.assert_array_equal(f(x), [8.0, 16.0])
    with pytest.raises(gc.GraphcError, match="^scan: length is an eager tensor"):
        gc.compile(lambda x: gc.scan(lambda v, _: (v * 2.0, None), x, None, length=n))(x)


def test_an_eager_scan_of_no_steps_does_not_run_its_body():
    """The ys of an eager scan over 0 rows came from running f on zero rows: a body that
    stops on real rows looped forever on those."""
    def step(c, x):
        v = gc.while_loop(lambda v: gc.sum(v) < 10.0, lambda v: v * 2.0, x)
        return c + v, {"v": v, "n": gc.sum(v > 0)}
    carry, ys = gc.scan(step, np.zeros(3), np.ones((0, 3)))
    np.testing.assert_array_equal(np.asarray(carry), np.zeros(3))
    assert ys["v"].shape == (0, 3) and ys["v"].dtype == np.float64
    assert ys["n"].shape == (0,) and ys["n"].dtype == np.int64


def test_an_eager_scan_types_a_float_carry_as_traced():
    """scan(step, 0.0, float64 xs) emitting the carry as y failed eagerly (concat of f32 and
    f64), where compiled the 0.0 carry is float64."""
    xs = np.array([1.0, 2.0, 3.0])
    step = lambda c, x: (c + x, c)  # noqa: E731
    for run in (lambda: gc.scan(step, 0.0, xs), lambda: gc.compile(
            lambda xs: gc.scan(step, 0.0, xs))(xs)):
        carry, ys = run()
        assert float(np.asarray(carry)) == 6.0
        assert np.asarray(ys).dtype == np.float64
        np.testing.assert_array_equal(np.asarray(ys), [0.0, 1.0, 3.0])


def test_control_flow_arguments_are_checked_in_one_line():
    for call, message in [
            (lambda: gc.scan(3, 0.0, None, length=2), "scan: f must be a function, got int"),
            (lambda: gc.while_loop(None, lambda v: v, 1.0),
             "while_loop: cond_fun must be a function"),
            (lambda: gc.cond(True, None, lambda: 1), "cond: true_fun must be a function"),
            (lambda: gc.fori_loop(0, 2, "body", 1.0), "fori_loop: body_fun must be a function"),
            (lambda: gc.scan(lambda c, x: (c, c), 0.0, None, length=-1),
             "scan: length must be >= 0, got -1"),
            (lambda: gc.scan(lambda c, x: (c, c), 0.0, np.ones(2), unroll=0),
             "scan: unroll must be an int >= 1 or a bool")]:
        with pytest.raises(gc.GraphcError, match=f"^{message}"):
            call()
    # JAX's unroll is taken (code written for JAX runs) and changes nothing
    carry, ys = gc.scan(lambda c, x: (c + x, c), 0.0, np.ones(3), unroll=2)
    np.testing.assert_array_equal(np.asarray(ys), [0.0, 1.0, 2.0])


# ---- the training library (helper's findings) -----------------------------------------------
@pytest.mark.parametrize("reduce", ["mean", "pool"])
def test_batch_norm_followed_by_a_spatial_reduction_trains(reduce):
    """conv -> BatchNorm2d -> global average pool -> linear: the paired BatchNorm gradient
    kernel got the mean's gradient, a broadcast view, and numba could not flatten it (a
    TypingError traceback from the first training step)."""
    from graphc import nn
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(3, 8, 3, padding=1, dtype="float64")
    bn, fc = nn.BatchNorm2d(8, dtype="float64"), nn.Linear(8, 2, dtype="float64")
    pool = nn.AdaptiveAvgPool2d(1)
    x = rng.normal(size=(16, 3, 6, 6))
    y = rng.integers(0, 2, 16)

    def loss(params, x):
        h = bn.apply(params["bn"], conv.apply(params["conv"], x))
        h = gc.mean(h, axis=(2, 3)) if reduce == "mean" else gc.reshape(pool(h), (16, 8))
        return gc.cross_entropy(fc.apply(params["fc"], h), y)
    params = {"conv": conv.params(), "bn": bn.params(), "fc": fc.params()}
    grads = gc.compile(gc.grad(loss))(params, x)
    eps = 1e-6
    w = params["bn"]["weight"]
    for c in (0, 5):
        up, down = w.copy(), w.copy()
        up[c] += eps
        down[c] -= eps
        numeric = (float(loss({**params, "bn": {**params["bn"], "weight": up}}, x).data)
                   - float(loss({**params, "bn": {**params["bn"], "weight": down}}, x).data)
                   ) / (2 * eps)
        assert grads["bn"]["weight"][c] == pytest.approx(numeric, rel=1e-5, abs=1e-9)
    eager_dx = gc.grad(lambda x: loss(params, x))(x)
    np.testing.assert_allclose(gc.compile(gc.grad(lambda x: loss(params, x)))(x), eager_dx,
                               rtol=1e-9, atol=1e-12)


def test_the_trainer_leaves_a_parameter_frozen_torchs_way_alone():
    """gc.Trainer updated a Parameter with requires_grad = False (moments and weight decay
    too), where bind() and torch leave it."""
    from graphc import nn, optim
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    for p in net[0].parameters():
        p.requires_grad = False
    x, t = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    frozen = net[0].weight.data.copy()
    trained = net[2].weight.data.copy()
    loss = lambda p, b: gc.mean((net.apply(p, b[0]) - b[1]) ** 2)  # noqa: E731
    trainer = gc.Trainer(loss, net.params(), optim.AdamW(lr=0.1), [(x, t)], steps=3)
    for _ in range(3):
        trainer.train_step()
    np.testing.assert_array_equal(trainer.params["0.weight"], frozen)
    assert not np.array_equal(trainer.params["2.weight"], trained)
    grads = gc.grad(loss)(net.params(), (x, t))
    np.testing.assert_array_equal(grads["0.weight"], np.zeros_like(frozen))
    assert np.abs(grads["2.weight"]).sum() > 0


def test_a_layers_own_training_branch_is_guarded():
    """A user's layer reading self.training kept its training-mode plan after eval(), in
    gc.compile and in the Trainer's step (only the built-in layers' reads were guarded)."""
    from graphc import nn, optim

    class Net(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(3, 1, dtype="float64")

        def forward(self, x):
            y = self.fc(x)
            return y * 2.0 if self.training else y
    net, x = Net(), np.ones((4, 3))
    f = gc.compile(lambda p, x: net.apply(p, x))
    train_out = f(net.params(), x)
    net.eval()
    np.testing.assert_allclose(f(net.params(), x), train_out / 2, rtol=1e-15)
    np.testing.assert_allclose(f(net.params(), x), net(gc.tensor(x)).data, rtol=1e-15)
    net.train()
    t = np.zeros((4, 1))
    loss = lambda p, b: gc.mean((net.apply(p, b[0]) - b[1]) ** 2)  # noqa: E731
    trainer = gc.Trainer(loss, net.params(), optim.SGD(lr=0.0), [(x, t)], steps=2)
    in_training = trainer.train_step()
    net.eval()
    assert trainer.train_step() == pytest.approx(in_training / 4, rel=1e-12)


def test_the_trainer_warns_of_a_loss_that_reads_no_parameter():
    """A loss calling model(x) instead of model.apply(params, x) reached no parameter: the
    Trainer ran, the loss never moved and the gradient norm stayed 0, silently. It still
    runs (tests/test_review_s29.py: a parameterless loss is allowed), with a warning."""
    from graphc import nn, optim
    m = nn.Linear(3, 1)
    x, t = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    with pytest.warns(UserWarning, match="^Trainer: no parameter gets a gradient: the loss "
                                         "reads none of the params"):
        gc.Trainer(lambda p, b: gc.mean((m(b[0]) - b[1]) ** 2), m.params(),
                   optim.AdamW(lr=0.1), [(x, t)], steps=5).train_step()


@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed"])
def test_a_loss_scaler_without_float16_is_refused(precision):
    """It was dropped silently (trainer.scaler None), where the user asked for scaling."""
    from graphc import nn, optim
    m = nn.Linear(3, 1)
    x, t = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(gc.GraphcError, match="^Trainer: a loss_scaler is for "
                                             "precision='fp16-mixed'"):
        gc.Trainer(lambda p, b: gc.mean((m.apply(p, b[0]) - b[1]) ** 2), m.params(),
                   optim.SGD(lr=0.1), [(x, t)], steps=2, precision=precision,
                   loss_scaler=gc.amp.LossScaler(init_scale=1024.0))


# ---- the review of this session's changes ---------------------------------------------------
def test_freezing_a_parameter_after_the_first_call_traces_again():
    """Module.apply read requires_grad without a guard: a compiled gradient (and the
    Trainer's step) kept the plan traced before a parameter was frozen or unfrozen."""
    from graphc import nn
    net = nn.Linear(3, 1, dtype="float64")
    x, t = np.ones((8, 3)), np.zeros((8, 1))
    loss = lambda p: gc.mean((net.apply(p, x) - t) ** 2)  # noqa: E731
    g, p = gc.compile(gc.grad(loss)), net.params()
    assert np.abs(g(p)["weight"]).sum() > 0
    net.weight.requires_grad = False
    np.testing.assert_array_equal(g(p)["weight"], np.zeros((3, 1)))
    net.weight.requires_grad = True
    assert np.abs(g(p)["weight"]).sum() > 0


def test_weak_int_checks_take_long_chains_and_leave_a_users_own_cast():
    """The first cut's check recursed (a RecursionError for 500 `k = k + 1`, seconds per
    call for a reused value) and refused gc.cast(k + 1, "int32"), which wraps eagerly."""
    x = np.array([1, 2, 3], np.int32)

    def chain(x, k):
        for _ in range(2000):
            k = k + 1
        return x + k
    np.testing.assert_array_equal(gc.compile(chain)(x, 0), x + 2000)

    def doubling(x, k):
        a, b = k, k
        for _ in range(60):
            a, b = b, a + b
        return x + b
    with pytest.raises(gc.GraphcError, match="computed from k, does not fit in int32"):
        gc.compile(doubling)(x, 1)
    f = lambda x, k: x + gc.cast(k + 1, "int32")  # noqa: E731
    np.testing.assert_array_equal(gc.compile(f)(x, 2**40), f(gc.tensor(x), 2**40).data)


def test_an_eager_scan_of_no_steps_takes_ints_tags_and_eager_only_bodies():
    xs = np.ones((0, 3), np.int32)
    _, ys = gc.scan(lambda c, x: (c + x, c + x), 0, xs)
    assert ys.shape == (0, 3) and ys.dtype == np.int32
    body = lambda c, x: (c, x if float(gc.sum(x).data) > 0 else -x)  # noqa: E731
    assert gc.scan(body, 0, xs)[1].shape == (0, 3)
    carry, ys = gc.scan(lambda c, x: (c, x), (0, "tag"), xs)
    assert carry == (0, "tag") and ys.shape == (0, 3)


def test_fori_loop_bounds_closed_over_as_tensors():
    x = np.array([1.0, 2.0])
    n32 = gc.tensor(np.array(3, np.int32))
    np.testing.assert_array_equal(
        gc.compile(lambda x: gc.fori_loop(0, n32, lambda i, v: v * 2.0, x))(x), [8.0, 16.0])
    n = gc.tensor(np.array(3.0))
    with pytest.raises(gc.GraphcError, match=r"^fori_loop: upper must be an int, got f64\[\]"):
        gc.compile(lambda x: gc.fori_loop(0, n, lambda i, v: v * 2.0, x))(x)


def test_a_negative_second_moment_is_refused_under_a_name_with_a_slash():
    from graphc import optim
    params = {"enc/w": np.ones(3, np.float32)}
    batches = [(np.ones((2, 3), np.float32),)]
    loss = lambda p, b: gc.mean((b[0] * p["enc/w"]) ** 2)  # noqa: E731
    trainer = gc.Trainer(loss, params, optim.AdamW(lr=0.1), batches, steps=1)
    trainer.train_step()
    arrays = trainer.state_arrays()
    arrays["adam_v/enc/w"] = -np.ones(3, np.float32)
    fresh = gc.Trainer(loss, params, optim.AdamW(lr=0.1), batches, steps=2)
    meta = {**fresh.checkpoint_meta, "step": 1, "rng": fresh.rng.bit_generator.state}
    with pytest.raises(checkpoint.CheckpointError, match="adam_v/enc/w holds a negative value"):
        fresh.restore(arrays, meta)


def test_a_dropout_of_p_0_makes_one_plan_for_train_and_eval():
    from graphc import nn
    drop = nn.Dropout(0.0)
    f = gc.compile(lambda x: drop(x) * 2.0)
    x = np.ones(3, np.float32)
    f(x)
    drop.eval()
    f(x)
    assert sum(len(entries) for entries in f._plans.values()) == 1


def test_reductions_of_a_scalar_over_axis_0_or_minus_1_and_a_half_inner_sum():
    """numpy reduces a 0-d value over axis 0 or -1 (over nothing); mean raised IndexError,
    sum/max/min named max's axis error. A half sum of a broadcast rounded its inner sum to
    half before the product by the count."""
    s = np.float32(2.0)
    for f in (gc.sum, gc.max, gc.min, gc.mean):
        for axis in (0, -1):
            assert float(f(s, axis).data) == 2.0
    assert int(gc.argmax(s, -1).data) == 0
    x = np.array([1, 2 ** -11], np.float16)
    f = lambda x: gc.sum(gc.broadcast_to(x, (3, 2)))  # noqa: E731
    assert float(gc.compile(f)(x)) == float(f(gc.tensor(x)).data) == float(np.float16(3.0015))


def test_a_float_operand_of_cond_takes_the_operands_float_dtype():
    """cond(p, f, g, x64, 0.5) was refused compiled (sub(f64[3], f32[])) where eager code and
    JAX run it; a scan's carries already followed this rule."""
    x = np.array([0.3, -0.7, 1.1])
    f = lambda x: gc.cond(gc.sum(x) > 0, lambda a, k: a * k, lambda a, k: a - k, x, 0.5)  # noqa
    np.testing.assert_array_equal(gc.compile(f)(x), x * 0.5)
    np.testing.assert_array_equal(gc.grad(lambda x: gc.sum(f(x)))(x), np.full(3, 0.5))


def test_a_signal_after_training_is_kept_where_python_drops_its_exception():
    """_Stopped was an Exception: numba's cache guard (`except Exception`) took it for a
    damaged cache file, and a weakref callback printed and dropped it; the run exited 0."""
    import os
    import signal
    import time
    from graphc import train
    assert not issubclass(train._Stopped, Exception)
    with train._signals_stop() as signals:
        try:  # as in a weakref callback, which drops what is raised in it
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        except BaseException:  # noqa: B036
            pass
    assert signals == [signal.SIGTERM]


# ---- the command line and its files (helper's findings) ------------------------------------
def test_a_checkpoint_with_an_unclosed_npy_header_is_one_line(tmp_path, capsys):
    """numpy reads an .npy header as a Python literal: an unclosed bracket raised
    tokenize.TokenError, a 56-line traceback from eval, sample and train --resume."""
    out, _ = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    import zipfile
    with zipfile.ZipFile(ckpt) as zf:  # rewritten whole, so that every CRC is right
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(ckpt, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            if name == "param/wte.weight.npy":  # its .npy header's dict literal, unclosed
                data = data.replace(b"), }", b" , }", 1)
            zf.writestr(name, data)
    assert main(["eval", "--checkpoint", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "is corrupt or not a graphc checkpoint" in err[0], err


@pytest.mark.parametrize("option", ["--steps", "--n-layer", "--warmup", "--batch-size"])
def test_a_whole_number_option_past_2_62_is_one_line(tmp_path, capsys, option):
    """--steps 10**309 was an OverflowError traceback (a schedule constant), --n-layer one
    from the memory check's byte count; a 5000-digit value was echoed whole."""
    with pytest.raises(SystemExit) as info:  # argparse's exit
        main(["train", *TINY, "--out", str(tmp_path / "o"), option, str(10 ** 309)])
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "expected a whole number up to 2**62" in err[0], err
    assert "(310 characters)" in err[0] and len(err[0]) < 200


def test_a_header_count_past_2_62_is_refused(tmp_path, capsys):
    out, data = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    meta["train"] = {**meta["train"], "warmup": 10 ** 309}
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "header field train.warmup must be an integer (at most 2**62)" \
        in err[0], err


@pytest.mark.parametrize("source, says", [
    ("import not_installed_pkg\ndef build(): pass\n",
     "ModuleNotFoundError: No module named 'not_installed_pkg' at "),
    ("def build():\n    from . import x\n",
     "ImportError: attempted relative import with no known parent package at "),
])
def test_dump_of_user_code_that_fails_to_import_is_one_line(tmp_path, capsys, source, says):
    """An ImportError raised by the user's file or FUNCTION was re-raised for the
    MODULE:FUNCTION branch to reword, which they never reach: a traceback."""
    path = tmp_path / "m.py"
    path.write_text(source)
    assert main(["dump", f"{path}:build"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"dump {path}:build: {says}" in err[0], err


def test_bench_ranks_checks_its_counts_before_starting(capsys):
    """--ranks 3 started 3 ranks that each failed with a traceback (the batch of 64 does not
    split); --ranks 1000 started 1000 processes on 2 cores."""
    assert main(["bench", "--ranks", "3", "--steps", "1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "graphc: error: --ranks 3: the tiny config's batch of 64 does not split over 3 ranks; "
        "use a divisor of 64"]
    assert main(["bench", "--ranks", "100000", "--steps", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "--ranks 100000 is more than" in err[0], err


def test_fori_loop_bounds_of_mixed_kinds_after_the_second_review():
    """A Python-int bound past an int32 tensor bound's range was numpy's OverflowError from
    inside; a compiled function's int argument as one bound took int64 against an int32
    tensor; two tensor bounds of different dtypes or a float bound failed in the internal
    comparison, naming lt."""
    body = lambda i, v: v + 1  # noqa: E731
    n32, n64 = gc.tensor(np.array(5, np.int32)), gc.tensor(np.array(5, np.int64))
    for call, message in [
            (lambda: gc.compile(lambda x: gc.fori_loop(2**31, n32, body, x))(np.int64(0)),
             "fori_loop: lower = 2147483648 does not fit in int32, the dtype of the other bound"),
            (lambda: gc.compile(lambda x: gc.fori_loop(n32, n64, body, x))(np.int64(0)),
             r"fori_loop: lower and upper have different dtypes \(int32, int64\)"),
            (lambda: gc.compile(lambda x: gc.fori_loop(0.0, n32, body, x))(np.int64(0)),
             "fori_loop: lower must be an int, got 0.0")]:
        with pytest.raises(gc.GraphcError, match=f"^{message}"):
            call()
    f = gc.compile(lambda x, a: gc.fori_loop(a, n32, body, x))
    assert int(f(np.int64(0), 1)) == 4


def test_a_scalar_softmax_names_the_axis_the_user_gave():
    """The first 0-d fix let _axis take -1 as 0 for every op: softmax of a scalar then said
    "axis 0 out of range", an axis the user never gave. (Since session 38 a scalar's softmax
    is torch's 1 over dim 0 or -1; another dim is named as given.)"""
    assert float(gc.softmax(np.array(2.5, np.float32)).data) == 1.0
    with pytest.raises(gc.GraphcError, match="^softmax: dim 1 is out of range for a 0-d"):
        gc.softmax(np.array(2.5, np.float32), 1)
    assert float(gc.sum(np.float32(2.0), -1).data) == 2.0


def test_bench_ranks_run_as_a_module_is_one_line(tmp_path):
    import subprocess
    import sys
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    for args, says in [(["--ranks", "3"], "does not split over 3 ranks"),
                       (["--ranks", "1", "--config", "nosuch"], "--config: unknown config")]:
        out = subprocess.run([sys.executable, "-m", "graphc.bench_ranks", *args],
                             capture_output=True, text=True, cwd=tmp_path,
                             env={**__import__("os").environ, "PYTHONPATH": root})
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
        assert says in out.stderr
