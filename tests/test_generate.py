"""KV-cache generation (graphc/generate.py): the cached prefill/decode plans give the no-cache
path's logits at every position (float64 to rounding, float32 to 1e-5), for a batch of prompts
of different lengths and past the block size; sampling is seeded; the cache is updated in
place through dynamic_update_slice on a donated input."""
from fractions import Fraction

import numpy as np
import pytest

import graphc as gc
from graphc.generate import Generator, build_cached_step, choose
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler
from ir.ops.registry import graph_param
from passes.manager import optimize
from runtime.codegen import compile_graph

VOCAB, BLOCK = 11, 8
TOL = {"float64": 1e-12, "float32": 1e-5}


def small_model(dtype="float64", **overrides):
    cfg = GPTConfig(**{**dict(vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=16,
                              block_size=BLOCK, dtype=dtype), **overrides})
    model = GPT(cfg, seed=1)
    rng = np.random.default_rng(2)  # biases and LayerNorms away from 0 and 1
    for _, p in model.named_parameters():
        p.data = (p.data + rng.normal(0, 0.3, p.data.shape)).astype(dtype)
    return model, model.state_dict()


class NoCache:
    """The reference: the whole window through the plain GPT for every token, the window the
    last block_size tokens (nanoGPT's generate)."""

    def __init__(self, model, params):
        self.model, self.params, self.plans = model, params, {}

    def logits(self, context) -> np.ndarray:
        window = list(context)[-self.model.cfg.block_size:]
        T = len(window)
        if T not in self.plans:  # build_logits is fixed at the block size; trace T tokens
            g = gc.Graph("logits")
            with g.building():
                idx = g.input("idx", (1, T), "int64")
                for _, p in self.model.named_parameters():
                    graph_param(g, p)
                g.set_outputs([self.model(idx)])
            plan = compile_graph(optimize(g))
            self.plans[T] = (plan, [n.attrs["name"] for n in plan.graph.inputs])
        plan, order = self.plans[T]
        feed = {"idx": np.asarray(window, np.int64)[None], **self.params}
        return plan(*[feed[n] for n in order])[0][0, -1].astype(np.float64)

    def greedy(self, prompt, tokens):
        context = list(prompt)
        for _ in range(tokens):
            context.append(int(np.argmax(self.logits(context))))
        return context[len(prompt):]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_position_equals_the_no_cache_path_past_the_block_size(dtype):
    model, params = small_model(dtype)
    reference = NoCache(model, params)
    prompts = [[3, 1, 4], [1, 5, 9, 2, 6], [5]]  # prefill lengths 3, 5 and 1 share a batch
    rng = np.random.default_rng(0)
    forced = rng.integers(0, VOCAB, (len(prompts), 2 * BLOCK))  # past the block size
    gen = Generator(model, params)
    logits = gen.start(prompts)
    contexts = [list(p) for p in prompts]
    for step in range(forced.shape[1]):
        for b, ctx in enumerate(contexts):
            np.testing.assert_allclose(logits[b], reference.logits(ctx), rtol=0,
                                       atol=TOL[dtype], err_msg=f"row {b}, length {len(ctx)}")
        logits = gen.advance(forced[:, step])
        for ctx, t in zip(contexts, forced[:, step]):
            ctx.append(int(t))
    assert len(contexts[0]) > 2 * BLOCK
    # decode plans ran (one token, cache slot at run time), attending over 8 slots at most
    decode_spans = sorted(span for batch, length, span in gen._plans if length == 1)
    assert decode_spans == [8]
    # a longer block: one decode plan per doubling of the slots in use
    model, params = small_model(dtype, block_size=64)
    gen = Generator(model, params)
    gen.start([[1, 2, 3]])
    for t in range(40):
        gen.advance([t % VOCAB])
    assert sorted(span for _, length, span in gen._plans if length == 1) == [4, 8, 16, 32, 64]


def test_greedy_generation_equals_the_no_cache_path_and_slides_the_window():
    model, params = small_model("float64")
    reference = NoCache(model, params)
    prompts = [[2, 7], [4, 4, 8, 1, 0, 3, 6]]
    out = Generator(model, params).generate(prompts, 3 * BLOCK, temperature=0)
    assert [len(o) for o in out] == [3 * BLOCK] * 2
    for prompt, got in zip(prompts, out):
        assert got == reference.greedy(prompt, 3 * BLOCK)
    # one prompt alone gives the same tokens as in a batch
    assert Sampler(model, params).generate(prompts[1], 3 * BLOCK, temperature=0) == out[1]


def test_sampling_is_seeded_and_top_k_1_or_a_tiny_top_p_is_greedy():
    model, params = small_model("float32")
    gen = Generator(model, params)
    kw = dict(temperature=0.9, top_k=5, top_p=0.9)
    first = gen.generate([[1, 2], [3]], 12, seed=7, **kw)
    assert gen.generate([[1, 2], [3]], 12, seed=7, **kw) == first
    assert gen.generate([[1, 2], [3]], 12, seed=8, **kw) != first
    assert all(0 <= t < VOCAB for row in first for t in row)
    # top_k 1 and a tiny top_p are greedy whatever the temperature
    greedy = gen.generate([[1, 2]], 10, temperature=0)
    assert gen.generate([[1, 2]], 10, temperature=5.0, top_k=1, seed=3) == greedy
    assert gen.generate([[1, 2]], 10, temperature=5.0, top_p=1e-9, seed=3) == greedy


def test_top_k_and_top_p_restrict_the_choice_and_sample_the_renormalised_softmax():
    logits = np.log(np.array([0.05, 0.4, 0.1, 0.3, 0.15]))
    rng = np.random.default_rng(0)
    draws = lambda **kw: np.bincount([choose(logits, 1.0, rng=rng, **kw)  # noqa: E731
                                      for _ in range(4000)], minlength=5) / 4000
    np.testing.assert_allclose(draws(), [0.05, 0.4, 0.1, 0.3, 0.15], atol=0.03)
    np.testing.assert_allclose(draws(top_k=2), [0, 0.4 / 0.7, 0, 0.3 / 0.7, 0], atol=0.03)
    # top_p 0.75: 0.4 + 0.3 = 0.7 < 0.75, so the third most likely (0.15) joins
    np.testing.assert_allclose(draws(top_p=0.75), [0, 0.4 / 0.85, 0, 0.3 / 0.85, 0.15 / 0.85],
                               atol=0.03)
    # temperature 0.5 squares the probabilities before renormalising
    squared = np.array([0.05, 0.4, 0.1, 0.3, 0.15]) ** 2
    cold = np.bincount([choose(logits, 0.5, rng=rng) for _ in range(4000)], minlength=5)
    np.testing.assert_allclose(cold / 4000, squared / squared.sum(), atol=0.03)
    assert choose(logits, 0) == 1


@pytest.mark.parametrize("bad, message", [
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(temperature=1.0, top_k=-1), r"top_k must be a whole number >= 0 \(0 or None: "
                                       r"all\), got -1"),
    (dict(temperature=1.0, top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(temperature=1.0, top_p=1.5), r"top_p must be in \(0, 1\]"),
])
def test_bad_sampling_settings_are_refused(bad, message):
    model, params = small_model("float32")
    with pytest.raises(ValueError, match=message):
        Generator(model, params).generate([[1]], 3, **bad)


def _same_tokens(given, plain):
    """Generator.generate and Sampler.generate with the settings `given` give the tokens of
    the settings `plain` (Python numbers), sampled (temperature 1 unless set)."""
    model, params = small_model("float32")
    defaults = dict(tokens=5, temperature=1.0, seed=7, stop_tokens=())
    prompts = [[1, 2], [3]]

    def both(settings):
        settings = {**defaults, **settings}
        tokens = settings.pop("tokens")
        return (Generator(model, params).generate(prompts, tokens, **settings),
                Sampler(model, params).generate(prompts[0], tokens, **settings))

    expected = both(plain)
    assert both(given) == expected
    return expected


@pytest.mark.parametrize("given, plain", [
    # -top_k of an unsigned int wrapped around in choose(): IndexError (index 253), or
    # OverflowError for uint64
    (dict(top_k=np.uint8(3)), dict(top_k=3)),
    (dict(top_k=np.uint16(3)), dict(top_k=3)),
    (dict(top_k=np.uint64(3)), dict(top_k=3)),
    # a 0-d array passed as a seed sequence, and numpy failed on it ("len() of unsized
    # object", "zero-dimensional arrays cannot be concatenated")
    (dict(seed=np.array(3)), dict(seed=3)),
    (dict(seed=np.array(3, np.uint32)), dict(seed=3)),
    # 0-d arrays are numbers, as a prompt's token ids are (transformers takes them)
    (dict(tokens=np.array(3)), dict(tokens=3)),
    (dict(top_k=np.array(3)), dict(top_k=3)),
    (dict(temperature=np.array(0.5)), dict(temperature=0.5)),
    (dict(top_p=np.array(0.9, np.float32)), dict(top_p=float(np.float32(0.9)))),
])
def test_sampling_settings_are_used_as_the_numbers_they_are(given, plain):
    _same_tokens(given, plain)


def test_settings_past_int64_are_the_numbers_they_are():
    """A seed past int64 is numpy's (default_rng takes any whole number >= 0, and graphc
    train trains with one), and a top_k past it keeps every token: both were refused as
    "must be a whole number", the seed only after a whole training run, at its sample."""
    seed = 10**20
    tokens = _same_tokens(dict(seed=seed), dict(seed=np.random.SeedSequence(seed)))
    assert tokens != _same_tokens({}, {})  # (not the default seed's tokens)
    _same_tokens(dict(seed=np.uint64(2**64 - 1)), dict(seed=np.random.SeedSequence(2**64 - 1)))
    _same_tokens(dict(top_k=2**70), dict(top_k=None))
    # a 0-d array past int64 as its numpy scalar (review r9: "seed must be a whole number")
    big = np.array(2**64 - 1, np.uint64)
    _same_tokens(dict(seed=big), dict(seed=np.random.SeedSequence(2**64 - 1)))
    _same_tokens(dict(top_k=big), dict(top_k=None))


def test_one_stop_token_as_a_0d_array_is_one_id():
    """stop_tokens decided "one id" by is_int while its items were token ids by
    whole_token_id: np.array(3) was refused as no token id, [np.array(3)] taken."""
    free = _same_tokens({}, {})[0]
    stop = free[0][0]  # the first row's first token: it ends there
    rows = _same_tokens(dict(stop_tokens=np.array(stop)), dict(stop_tokens=[stop]))[0]
    assert rows[0] == [stop] and len(free[0]) == 5
    with pytest.raises(ValueError, match=r"^stop_tokens: token id array\(True\) is not a "
                                         r"whole number$"):
        _same_tokens(dict(stop_tokens=np.array(True)), {})


def test_sampling_settings_as_torch_scalars_are_numbers():
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    free = _same_tokens({}, {})[0]
    stop = free[0][0]
    for given, plain in [(dict(tokens=torch.tensor(3)), dict(tokens=3)),
                         (dict(top_k=torch.tensor(3)), dict(top_k=3)),
                         (dict(temperature=torch.tensor(0.5)), dict(temperature=0.5)),
                         (dict(top_p=torch.tensor(0.5)), dict(top_p=0.5)),
                         (dict(seed=torch.tensor(3)), dict(seed=3)),  # torch.manual_seed's
                         (dict(stop_tokens=torch.tensor(stop)), dict(stop_tokens=[stop]))]:
        _same_tokens(given, plain)
    with pytest.raises(ValueError, match=r"^top_k must be a whole number, got "
                                         r"tensor\(True\)$"):
        _same_tokens(dict(top_k=torch.tensor(True)), {})
    with pytest.raises(ValueError, match=r"^temperature must be a finite number >= 0, got "
                                         r"tensor\(True\)$"):
        _same_tokens(dict(temperature=torch.tensor(True)), {})


def test_sampling_settings_and_ids_as_tensors_numpy_cannot_read():
    """r9: a bfloat16, requires_grad or meta 0-d tensor met torch's __array__ in _whole and
    _as_number (np.asarray): a raw TypeError or RuntimeError for every setting and token id.
    They are read as torch reads a tensor given as a number (.item()), as transformers takes
    top_p=torch.tensor(0.5, dtype=torch.bfloat16); a meta tensor, no number, is one line."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    half = torch.tensor(0.5, dtype=torch.bfloat16)
    for given, plain in [(dict(temperature=half), dict(temperature=0.5)),
                         (dict(top_p=half), dict(top_p=0.5)),
                         (dict(temperature=torch.tensor(0.5, requires_grad=True)),
                          dict(temperature=0.5)),
                         (dict(top_p=torch.tensor(0.5, requires_grad=True)), dict(top_p=0.5))]:
        _same_tokens(given, plain)
    meta = torch.tensor(0.5, device="meta")
    for given, message in [
            (dict(top_k=torch.tensor(3.0, dtype=torch.bfloat16)),
             r"top_k must be a whole number, got tensor\(3\..*bfloat16\)"),  # (reprlib's)
            (dict(tokens=torch.tensor(3.0, requires_grad=True)),
             r"tokens must be a whole number, got tensor\(3\..*requires_grad=True\)"),
            (dict(stop_tokens=torch.tensor(3.0, dtype=torch.bfloat16)),
             r"stop_tokens: token id tensor\(3\., dtype=torch\.bfloat16\) is not a whole "
             r"number"),
            (dict(seed=half), r"seed must be a whole number >= 0, .*, got tensor\(0\.5000, "
                              r"dtype=torch\.bfloat16\)"),
            # (reprlib's: tensor(..., d...eta', size=()))
            (dict(temperature=meta), r"temperature must be a finite number >= 0, got "
                                     r"tensor\(.*eta', size=\(\)\)"),
            (dict(top_p=meta), r"top_p must be in \(0, 1\], got tensor\(.*eta', size=\(\)\)")]:
        with pytest.raises(ValueError, match=f"^{message}$"):
            _same_tokens(given, {})
    model, params = small_model("float32")
    with pytest.raises(ValueError, match=r"^token id tensor\(1\., dtype=torch\.bfloat16\) is "
                                         r"not a whole number$"):
        Generator(model, params).generate(torch.tensor([[1.0, 2.0]], dtype=torch.bfloat16), 2)


@pytest.mark.parametrize("bad, message", [
    # math.isfinite's raw OverflowError
    (dict(temperature=10 ** 400), r"temperature must be a finite number >= 0, got "
                                  r"10+\.\.\.0+"),
    (dict(temperature=np.array(True)), r"temperature must be a finite number >= 0, got "
                                       r"array\(True\)"),
    (dict(top_p=np.array(True)), r"top_p must be in \(0, 1\], got array\(True\)"),
    (dict(tokens=np.array(True)), r"tokens must be a whole number, got array\(True\)"),
    (dict(tokens=np.array(3.0)), r"tokens must be a whole number, got array\(3\.\)"),
    (dict(seed=np.array(-3)), r"seed must be a whole number >= 0, .*, got array\(-3\)"),
    # a number setting is a Python or numpy int or float (is_real, f0bfb97's one number
    # rule), as torch's and transformers' ("`temperature` (=1/2) has to be a strictly
    # positive float"): a Fraction is refused, not read as 0.5
    (dict(temperature=Fraction(1, 2)), r"temperature must be a finite number >= 0, got "
                                       r"Fraction\(1, 2\)"),
    # it gave no tokens; transformers' max_new_tokens and graphc sample --tokens refuse it
    (dict(tokens=-1), r"tokens must be >= 0 \(0: none\), got -1"),
])
def test_sampling_settings_that_are_no_such_number_are_one_line(bad, message):
    model, params = small_model("float32")
    settings = {**dict(tokens=3), **bad}
    tokens = settings.pop("tokens")
    for gen in (Generator(model, params), Sampler(model, params)):
        with pytest.raises(ValueError, match=f"^{message}$"):
            gen.generate([1] if isinstance(gen, Sampler) else [[1]], tokens, **settings)


def test_bad_prompts_and_tokens_are_refused():
    model, params = small_model("float32")
    gen = Generator(model, params)
    with pytest.raises(ValueError, match="advance\\(\\) before start"):
        gen.advance([1])
    with pytest.raises(ValueError, match="every prompt needs at least one token"):
        gen.start([[1], []])
    with pytest.raises(ValueError, match=f"token id {VOCAB} is outside the vocabulary"):
        gen.start([[1, VOCAB]])
    gen.start([[1], [2]])
    with pytest.raises(ValueError, match="1 tokens for 2 rows"):
        gen.advance([3])
    # Sampler's one prompt that is no list was a raw TypeError ("'int' object is not
    # iterable"); a tuple or an array of ids is still one
    for bad, shown in ((5, "5"), (None, "None"), (np.array(3), "array(3)")):
        with pytest.raises(ValueError) as info:
            Sampler(model, params).generate(bad, 3)
        assert str(info.value) == ("prompt_ids must be a list of token ids (one prompt), "
                                   f"got {shown}")
    greedy = Sampler(model, params).generate([1, 2], 3, temperature=0)
    assert Sampler(model, params).generate(np.array([1, 2]), 3, temperature=0) == greedy
    assert greedy == gen.generate([[1, 2]], 3, temperature=0)[0]


def test_the_decode_plan_updates_the_donated_caches_in_place():
    model, params = small_model("float64")
    gen = Generator(model, params)
    gen.start([[1, 2, 3, 4, 5]])  # caches of 8 slots (the span), written at slot 5 next
    before = dict(gen._caches)
    gen.advance([4])
    for name, cache in gen._caches.items():
        assert cache is before[name]  # the same arrays, written in place
    plan = gen.last_plan
    donated = [s for s in plan.memory_plan.storage.values() if s.kind == "donated"]
    assert len(donated) == 2 * model.cfg.n_layer
    updates = [n for n in plan.kernel_graph.nodes if n.op == "dynamic_update_slice"]
    assert len(updates) == 2 * model.cfg.n_layer
    assert {plan.memory_plan.storage[n].kind for n in updates} == {"donated"}
    # slot 5 now holds the new token's key; slots past it are still zero
    k = gen._caches["cache.0.k"]
    assert k.shape[2] == 8
    assert np.abs(k[0, :, 5]).max() > 0 and np.abs(k[0, :, 6:]).max() == 0


def test_dynamic_update_slice_compiled_in_place_and_clamped():
    def step(cache, update, start):
        return gc.dynamic_update_slice(cache, update, start, axis=1)
    graph = gc.trace(step, gc.spec((2, 6, 3), "float64"), gc.spec((2, 2, 3), "float64"),
                     gc.spec((), "int64"))
    plan = compile_graph(graph, donate=["cache"])
    cache = np.zeros((2, 6, 3))
    update = np.arange(12.0).reshape(2, 2, 3)
    (out,) = plan(cache, update, np.int64(2))
    assert np.shares_memory(out, cache)
    np.testing.assert_array_equal(out[:, 2:4], update)
    assert not out[:, :2].any() and not out[:, 4:].any()
    (out,) = plan(cache, update + 1, np.int64(99))  # clamped to the last slot that fits
    np.testing.assert_array_equal(out[:, 4:6], update + 1)
    # not donated: the operand is left as it was
    plain = compile_graph(graph)
    fresh = np.zeros((2, 6, 3))
    (out,) = plain(fresh, update, np.int64(0))
    assert not fresh.any() and np.array_equal(out[:, :2], update)


def test_cached_step_graph_names_its_inputs():
    model, _ = small_model("float32")
    graph = build_cached_step(model, 2, 4)
    names = [n.attrs["name"] for n in graph.inputs]
    assert names[:4] == ["idx", "positions", "mask", "start"]
    assert names[-4:] == ["cache.0.k", "cache.0.v", "cache.1.k", "cache.1.v"]
    assert graph.outputs[0].shape == (2, VOCAB)


def test_graphc_sample_slides_past_the_block_size_like_the_no_cache_path(tmp_path, capsys):
    from graphc.cli import _load_model, main
    from graphc.data import CharData
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    run = str(tmp_path / "run")
    assert main(["train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head",
                 "2", "--block-size", "8", "--batch-size", "4", "--eval-iters", "2",
                 "--no-progress", "--sample-tokens", "0", "--steps", "30", "--data", str(text),
                 "--out", run]) == 0
    capsys.readouterr()
    assert main(["sample", "--checkpoint", run, "--prompt", "to be", "--tokens", "20",
                 "--temperature", "0"]) == 0
    printed = capsys.readouterr().out
    model, params, meta = _load_model(run)
    data = CharData(list(meta["vocab"]), np.zeros(0, np.int64), np.zeros(0, np.int64))
    expected = NoCache(model, params).greedy(data.encode("to be"), 20)
    assert printed == "to be" + data.decode(expected) + "\n"
    # nucleus sampling from the command line, seeded
    args = ["sample", "--checkpoint", run, "--tokens", "12", "--top-p", "0.9", "--seed", "5"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and len(first) > 12
    # any seed --seed takes is numpy's: one past int64 was refused at the first token
    assert main(args[:-1] + [str(10**20)]) == 0
    assert len(capsys.readouterr().out) > 12
    with pytest.raises(SystemExit) as bad:
        main(["sample", "--checkpoint", run, "--top-p", "0"])
    assert bad.value.code == 2
    assert "--top-p: must be in (0, 1]" in capsys.readouterr().err


# ---- transformers' logits processors: repetition_penalty, no_repeat_ngram_size, min_p,
# do_sample (the same scores fed to transformers' own classes)
def _need_torch():
    pytest.importorskip("torch", reason="torch, the processors' oracle, is not installed")
    pytest.importorskip("transformers", reason="transformers is not installed")


def _scores(rows, vocab, seed):
    """float64 logits with positive, negative, zero and -inf entries."""
    logits = np.random.default_rng(seed).normal(0, 2, (rows, vocab))
    logits[:, 0], logits[:, 1] = 0.0, -np.inf
    return logits


@pytest.mark.parametrize("penalty", [1.3, 0.7])
def test_repetition_penalty_is_transformers_processor(penalty):
    _need_torch()
    import torch
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor
    from graphc.generate import Penalties
    vocab, seqs = 40, [[0, 1, 5, 5, 9, 39], [2, 3, 2, 17, 20, 21], [7, 7, 7, 7, 7, 1]]
    ids = torch.tensor(seqs)
    reference = RepetitionPenaltyLogitsProcessor(penalty)
    # the prompts, then two generated tokens, each step against transformers on the whole row
    penalties = Penalties([s[:4] for s in seqs], vocab, penalty=penalty)
    for step, length in enumerate((4, 5, 6)):
        logits = _scores(3, vocab, step)
        want = reference(ids[:, :length], torch.tensor(logits)).numpy()
        got = penalties(logits)
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, logits)  # (the penalty changed something)
        penalties.add([s[length] for s in seqs] if length < 6 else [None] * 3)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_size_is_transformers_processor(n):
    _need_torch()
    import torch
    from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor
    from graphc.generate import Penalties
    vocab = 30
    seqs = [[4, 5, 6, 4, 5, 6, 4, 5], [1, 2, 1, 2, 1, 3, 1, 2], [9, 9, 9, 8, 9, 9, 8, 9]]
    reference = NoRepeatNGramLogitsProcessor(n)
    penalties = Penalties([s[:2] for s in seqs], vocab, ngram=n)
    banned_any = False
    for length in range(2, len(seqs[0]) + 1):
        logits = _scores(3, vocab, length)
        want = reference(torch.tensor([s[:length] for s in seqs]), torch.tensor(logits))
        got = penalties(logits)
        np.testing.assert_array_equal(got, want.numpy())
        banned_any |= bool(np.isneginf(got[:, 2:]).any())
        if length < len(seqs[0]):
            penalties.add([s[length] for s in seqs])
    assert banned_any


def test_penalties_keep_each_rows_own_tokens():
    """Rows of different lengths (left-padded inside the Generator) each see only their own
    tokens, as transformers' processors on each row alone."""
    _need_torch()
    import torch
    from transformers.generation.logits_process import (NoRepeatNGramLogitsProcessor,
                                                        RepetitionPenaltyLogitsProcessor)
    from graphc.generate import Penalties
    rows = [[3, 4, 3], [5]]
    penalties = Penalties(rows, 12, penalty=1.5, ngram=2)
    logits = _scores(2, 12, 0)
    got = penalties(logits)
    for b, row in enumerate(rows):
        ids, scores = torch.tensor([row]), torch.tensor(logits[b:b + 1])
        want = NoRepeatNGramLogitsProcessor(2)(ids, RepetitionPenaltyLogitsProcessor(1.5)(
            ids, scores))
        np.testing.assert_array_equal(got[b], want.numpy()[0])


@pytest.mark.parametrize("temperature, top_k, top_p, min_p", [
    (1.0, None, None, 0.1), (0.6, None, None, 0.3), (1.7, 8, None, 0.4),
    (0.9, None, 0.8, 0.2), (1.2, 10, 0.9, 0.02), (0.8, 5, 0.7, 0.0), (1.0, None, None, 1.0),
])
def test_min_p_is_transformers_warper_after_temperature_top_k_and_top_p(temperature, top_k,
                                                                         top_p, min_p):
    """The probabilities choose() draws from are transformers' sampling warpers' in the
    order its generate applies them (temperature, top_k, top_p, min_p), then the softmax."""
    _need_torch()
    import torch
    from transformers.generation.logits_process import (
        LogitsProcessorList, MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper,
        TopPLogitsWarper)
    from graphc.generate import sampling_probs
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)] +
                                  ([TopKLogitsWarper(top_k)] if top_k else []) +
                                  ([TopPLogitsWarper(top_p)] if top_p else []) +
                                  [MinPLogitsWarper(min_p)])
    dropped = 0  # tokens min_p drops that temperature, top_k and top_p kept
    for seed in range(5):
        logits = _scores(1, 50, seed)[0]
        scores = warpers(torch.zeros((1, 1), dtype=torch.long), torch.tensor(logits[None]))
        want = torch.softmax(scores, -1).numpy()[0]
        got = sampling_probs(logits, temperature, top_k, top_p, min_p)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        assert ((got == 0) == (want == 0)).all()
        dropped += (got == 0).sum() - (sampling_probs(logits, temperature, top_k, top_p)
                                       == 0).sum()
    assert dropped > 0 or min_p < 0.05


def test_do_sample_false_is_greedy_whatever_the_sampling_settings():
    model, params = small_model("float32")
    gen = Generator(model, params)
    greedy = gen.generate([[1, 2], [3]], 12, temperature=0)
    for settings in (dict(temperature=1.5, top_k=4, top_p=0.5, min_p=0.2), {}):
        assert gen.generate([[1, 2], [3]], 12, do_sample=False, seed=5, **settings) == greedy
    assert gen.generate([[1, 2], [3]], 12, do_sample=True, temperature=1.5, seed=5) != greedy
    # the model's do_sample is the default; the argument overrides it
    model.do_sample = False
    assert gen.generate([[1, 2], [3]], 12, temperature=1.5, seed=5) == greedy
    assert gen.generate([[1, 2], [3]], 12, temperature=1.5, seed=5, do_sample=True) != greedy


def test_penalties_and_min_p_change_generation_and_are_the_models_by_default():
    model, params = small_model("float32")
    gen = Generator(model, params)
    plain = gen.generate([[1, 2, 1]], 12, temperature=0)
    penalised = gen.generate([[1, 2, 1]], 12, temperature=0, repetition_penalty=3.0)
    no_repeat = gen.generate([[1, 2, 1]], 12, temperature=0, no_repeat_ngram_size=2)
    assert plain != penalised and plain != no_repeat
    whole = [1, 2, 1] + no_repeat[0]
    bigrams = list(zip(whole, whole[1:]))
    assert len(bigrams) == len(set(bigrams))  # no 2-gram twice, the prompt's included
    assert Sampler(model, params).generate([1, 2, 1], 12, temperature=0,
                                           no_repeat_ngram_size=2) == no_repeat[0]
    model.repetition_penalty, model.no_repeat_ngram_size = 3.0, 0
    assert gen.generate([[1, 2, 1]], 12, temperature=0) == penalised
    assert gen.generate([[1, 2, 1]], 12, temperature=0, repetition_penalty=1) == plain
    # min_p 1 keeps only the likeliest token: sampling at any temperature is greedy
    assert gen.generate([[1, 2, 1]], 12, temperature=2.0, min_p=1.0, seed=1,
                        repetition_penalty=1) == plain


@pytest.mark.parametrize("bad, message", [
    (dict(repetition_penalty=0), r"^repetition_penalty must be a finite number > 0 \(1: none\), "
                                 r"got 0$"),
    (dict(repetition_penalty=float("inf")), "^repetition_penalty must be a finite number"),
    (dict(repetition_penalty="1.2"), "^repetition_penalty must be a finite number"),
    (dict(no_repeat_ngram_size=-1), "^no_repeat_ngram_size must be a whole number >= 0, got -1$"),
    (dict(no_repeat_ngram_size=2.5), "^no_repeat_ngram_size must be a whole number >= 0"),
    (dict(min_p=1.5), r"^min_p must be in \[0, 1\] \(0: none\), got 1.5$"),
    (dict(min_p=-0.1), r"^min_p must be in \[0, 1\]"),
    (dict(do_sample=1), "^do_sample must be True, False or None, got 1$"),
    (dict(do_sample="False"), "^do_sample must be True, False or None"),
])
def test_bad_processing_settings_are_one_line_naming_them(bad, message):
    model, params = small_model("float32")
    with pytest.raises(ValueError, match=message):
        Generator(model, params).generate([[1]], 3, **bad)
    with pytest.raises(ValueError, match=message):
        Sampler(model, params).generate([1], 3, **bad)
    name = next(iter(bad))
    setattr(model, name, bad[name])  # the model's, checked as the argument is
    with pytest.raises(ValueError, match=message.replace("^", "^model\\.")):
        Generator(model, params).generate([[1]], 3)


def test_a_ban_of_every_token_is_named():
    model, params = small_model("float32", vocab_size=3)
    with pytest.raises(ValueError, match="^no token is left to choose: no_repeat_ngram_size 1 "
                                         "bans every token"):
        Generator(model, params).generate([[0, 1, 2]], 2, no_repeat_ngram_size=1, temperature=0)


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_a_repetition_penalty_past_float64s_range_is_named_not_the_models_weights(temperature):
    """(review r11) repetition_penalty 1e-310 (> 0, as transformers' takes) divides a logit of
    a token in the prompt to +Inf: the line named the model's weights ("are its weights
    finite and within float64's range?"), after numpy's overflow warning on stderr."""
    import warnings
    model, params = small_model("float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^no token is left to choose: repetition_penalty "
                                             r"1e-310 takes the logits .* past float64's range"):
            Generator(model, params).generate([[1, 2, 3]], 2, temperature=temperature,
                                              repetition_penalty=1e-310)
        # the n-gram ban is still named where it took the last token, with a penalty too
        small, small_params = small_model("float32", vocab_size=3)
        with pytest.raises(ValueError, match="^no token is left to choose: no_repeat_ngram_size "
                                             "1 bans every token"):
            Generator(small, small_params).generate([[0, 1, 2]], 2, no_repeat_ngram_size=1,
                                                    repetition_penalty=1.5, temperature=0)
