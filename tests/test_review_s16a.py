"""Review (session 16a) of three leads from a hostile review: gradient clipping given to both
gc.Trainer and its optimiser, dynamic loss scaling of a float16 loss (graphc/amp.py), and
`graphc sample --tokens N` with a huge N.

Found: (1) Trainer(clip_norm=a) with an optimiser built with clip_norm=b clipped the
gradients twice, silently: to min(a, b), and with a == b by a second factor norm/(norm+1e-6)
that PyTorch's one clip_grad_norm_ does not apply; a negative Trainer clip_norm (which the
optimiser refuses) was taken and flipped the gradients' sign. `graphc train` passes its
grad_clip to the Trainer only, so it clipped once. (2) The loss scale never became Inf and no
step was skipped for ever, but LossScaler.scale multiplied a float16 loss in float16: the
scaled loss overflowed to Inf on steps whose gradients were finite and were taken, so the
step's loss (scaled loss / scale) read Inf where GradScaler's, promoted to float32, is
finite; and an init_scale past float32's range (which GradScaler refuses) gave an Inf scale
that skipped every step for ever. (3) `graphc sample --tokens 1000000000` printed nothing
until every token was sampled (days for the smallest model) and kept every id twice (the
output and each row's context) and the decoded text: it now prints each token as it is
sampled, keeps only the model's window, and stops quietly when the reader goes (`| head`)."""
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch  # the oracle; the test set-up installs it (as tests/test_optim.py's)

import graphc as gc
from graphc import checkpoint, optim
from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError

os.environ.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")
ROOT = Path(__file__).resolve().parent.parent


# ---- 1. gradient clipping: once --------------------------------------------------------------
BATCHES = [np.random.default_rng(k).normal(size=(8, 3)).astype(np.float32)
           for k in range(3)]
W0 = np.array([1.0, -2.0, 0.5], np.float32)


def _loss(params, batch):
    (x,) = batch
    d = x @ params["w"] - 1.0
    return gc.sum(d * d) * 0.5


def _trainer(optimizer, clip_norm):
    return gc.Trainer(_loss, {"w": W0}, optimizer, [(x,) for x in BATCHES], steps=3,
                      clip_norm=clip_norm)


def test_trainer_refuses_clip_norm_given_to_it_and_to_its_optimizer():
    """Both clipped, silently: Trainer(clip_norm=1.0) with SGD(clip_norm=0.5) moved the
    weights by 0.5, not 1.0; with both 1.0 the update was norm/(norm + 1e-6) short of
    PyTorch's clip_grad_norm_(1.0) + SGD (measured 1.1e-6 relative)."""
    for optimizer in (optim.SGD(lr=1.0, clip_norm=0.5), optim.AdamW(lr=0.1, clip_norm=1.0)):
        with pytest.raises(GraphcError, match=r"^Trainer: clip_norm=1.0 and the optimizer's "
                           r"clip_norm=(0.5|1.0) would clip the gradients twice"):
            _trainer(optimizer, 1.0)


def test_trainer_refuses_a_negative_clip_norm_as_the_optimiser_does():
    """clip_by_global_norm's factor min(1, -1 / norm) is negative: the step ascended."""
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(GraphcError, match="Trainer: clip_norm must be a finite number "
                           ">= 0"):
            _trainer(optim.SGD(lr=1.0), bad)
        with pytest.raises(GraphcError, match="clip_norm must be a finite number >= 0"):
            optim.SGD(lr=1.0, clip_norm=bad)


@pytest.mark.parametrize("trainer_clip, optimizer_clip", [(1.0, None), (None, 1.0)])
def test_either_clip_alone_is_torch_clip_grad_norm_once(trainer_clip, optimizer_clip):
    trainer = _trainer(optim.SGD(lr=1.0, momentum=0.9, clip_norm=optimizer_clip),
                       trainer_clip)
    w = torch.nn.Parameter(torch.tensor(W0))
    opt = torch.optim.SGD([w], lr=1.0, momentum=0.9)
    for x in BATCHES:
        trainer.train_step()
        opt.zero_grad()
        d = torch.tensor(x) @ w - 1.0
        (d * d).sum().mul(0.5).backward()
        norm = torch.nn.utils.clip_grad_norm_([w], 1.0)
        assert float(norm) > 1.5  # every step clips
        opt.step()
        assert trainer.grad_norm == pytest.approx(float(norm), rel=1e-6)
        np.testing.assert_allclose(trainer.params["w"], w.detach().numpy(), rtol=1e-6,
                                   atol=1e-6)


def test_graphc_train_clips_in_the_trainer_only():
    from graphc.train import TrainConfig, optimizer
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=8)
    assert optimizer(GPT(cfg), TrainConfig()).clip_norm is None


# ---- 2. loss scaling of a float16 loss --------------------------------------------------------
def test_a_float16_loss_is_scaled_in_float32_as_gradscaler_does():
    """The same steps as GradScaler("cpu") + SGD: the scale 2**16 is Inf in float16, so the
    first steps' float16 gradients overflow and are skipped (as PyTorch's are) until the scale
    is 8192; from then the scaled loss (10 * 8192) is past float16's 65504 but its gradients
    are finite and the step is taken. graphc's scaled loss was float16: Inf, and so was the
    step's loss it gives back (and `scaled / amp["scale"]` was refused: float16 / float32)."""
    scaler, opt = gc.amp.LossScaler(), gc.optim.SGD(lr=0.1)

    @gc.compile
    def step(params, state, amp, x):
        def scaled(p):  # a float16 loss, as a model run in float16 gives
            return scaler.scale(gc.sum(gc.cast(p["w"], "float16") * x), amp)
        value, grads = gc.value_and_grad(scaled)(params)
        grads, finite, new_amp = scaler.unscale(grads, amp)
        params, state = scaler.select(finite, opt.update(grads, state, params),
                                      (params, state))
        return value, gc.cast(value, "float32") / amp["scale"], params, state, new_amp

    params = {"w": np.ones(4, np.float32)}
    state, amp = opt.init(params), scaler.init()
    x = np.array([1, 2, 3, 4], np.float16)
    w = torch.nn.Parameter(torch.ones(4))
    torch_opt = torch.optim.SGD([w], lr=0.1)
    torch_scaler = torch.amp.GradScaler("cpu")
    skipped = 0
    for _ in range(6):
        with np.errstate(over="ignore"):
            value, loss, params, state, amp = step(params, state, amp, x)
        torch_opt.zero_grad()
        loss_ref = (w.half() * torch.tensor(x)).sum()
        value_ref = torch_scaler.scale(loss_ref)
        value_ref.backward()
        scale_before = torch_scaler.get_scale()
        torch_scaler.step(torch_opt)
        torch_scaler.update()
        skipped += torch_scaler.get_scale() < scale_before
        assert float(value) == float(value_ref)  # e.g. 81920, not Inf
        assert value.dtype == np.float32 and value_ref.dtype == torch.float32
        assert float(loss) == float(loss_ref)
        assert float(amp["scale"]) == torch_scaler.get_scale()
        np.testing.assert_allclose(params["w"], w.detach().numpy(), rtol=1e-6)
    assert skipped == 3 and float(amp["scale"]) == 8192.0
    assert not np.array_equal(params["w"], np.ones(4, np.float32))


def test_loss_scaler_refuses_an_init_scale_float32_cannot_hold():
    """np.float32(1e39) is Inf; Inf * 0 gradients are NaN, Inf halved is Inf: every step was
    skipped for ever. GradScaler refuses it (the scale cannot be a float32)."""
    with pytest.raises(RuntimeError, match="overflow"):
        torch.amp.GradScaler("cpu", init_scale=1e39).scale(torch.ones(()))
    for bad in (1e39, float("inf")):
        with pytest.raises(GraphcError, match="init_scale .* past float32's largest value"):
            gc.amp.LossScaler(init_scale=bad)
    largest = float(np.finfo(np.float32).max)
    assert np.isfinite(gc.amp.LossScaler(init_scale=largest).init()["scale"])


# ---- 3. `graphc sample --tokens N`, N huge ----------------------------------------------------
VOCAB = "\nabcdefgh"
CFG = GPTConfig(vocab_size=len(VOCAB), n_layer=1, n_head=2, n_embd=8, block_size=8)


def test_generation_keeps_only_the_model_window():
    """Each row's context kept every token sampled (a list of 1e9 ids for --tokens 1e9)
    though only the last block_size are read again."""
    model = GPT(CFG, seed=0)
    params = {n: p.data for n, p in model.named_parameters()}
    gen = Generator(model, params)
    out = gen.generate([[1, 2], [3]], 5 * CFG.block_size, temperature=0.7, seed=1)
    assert [len(row) for row in out] == [40, 40]
    assert [len(ctx) for ctx in gen._contexts] == [CFG.block_size] * 2
    # the last token sampled is not run (nothing asks for its successor)
    assert gen._contexts[0] == ([1, 2] + out[0][:-1])[-CFG.block_size:]
    # the stream is generate()'s tokens, one step at a time
    again = list(Generator(model, params).stream([[1, 2], [3]], 40, temperature=0.7, seed=1))
    assert [[step[b] for step in again] for b in range(2)] == out


def _checkpoint(tmp_path):
    model = GPT(CFG, seed=0)
    meta = {"model": CFG.to_dict(), "train": {}, "vocab": VOCAB, "step": 0,
            "rng": np.random.default_rng(0).bit_generator.state, "history": [],
            "val_history": []}
    path = tmp_path / "run" / "checkpoint.npz"
    checkpoint.save(str(path), {f"param/{n}": p.data for n, p in model.named_parameters()},
                    meta)
    return str(path.parent)


def test_sample_a_billion_tokens_streams_and_stops_when_the_reader_does(tmp_path):
    """Before: nothing printed until every token was sampled (2.5 days at 0.2 ms a token for
    this model), every id and the decoded text held in memory. Now the tokens come as they
    are sampled; the reader closing the pipe ends it quietly (no traceback, SIGPIPE's
    status)."""
    run = _checkpoint(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRAPHC_BACKGROUND_COMPILE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "graphc.cli", "sample", "--checkpoint",
                             run, "--prompt", "ab", "--tokens", str(10 ** 9)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        got, deadline = b"", time.monotonic() + 120
        while len(got) < 500 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                got += chunk
        assert len(got) >= 500, f"{len(got)} bytes in 120 s: {got[:80]!r}"
        assert got.startswith(b"ab") and set(got.decode("utf-8")) <= set(VOCAB)
        proc.stdout.close()  # the reader goes away, as `| head -c 500` does
        assert proc.wait(timeout=60) == 128 + 13
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sample_prints_what_generate_gives(tmp_path, capsys):
    from graphc.cli import main
    from graphc.sample import Sampler
    run = _checkpoint(tmp_path)
    assert main(["sample", "--checkpoint", run, "--prompt", "ab", "--tokens", "30",
                 "--seed", "3"]) == 0
    model = GPT(CFG, seed=0)
    ids = Sampler(model, {n: p.data for n, p in model.named_parameters()}).generate(
        [1, 2], 30, temperature=0.8, seed=3)
    assert capsys.readouterr().out == "ab" + "".join(VOCAB[i] for i in ids) + "\n"
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--checkpoint", run, "--tokens", "1e9"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["graphc: error: argument --tokens: expected a whole number, got '1e9' "
                   "(see graphc sample --help)"]


@pytest.mark.parametrize("decode_stream", ["tokenizers", "fallback"])
def test_gpt2_text_streams_whole_characters(tmp_path, monkeypatch, decode_stream):
    """Multi-byte characters split across byte-level tokens come out whole, and the pieces
    join to decode(ids), with tokenizers' DecodeStream and without it (before 0.21)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_gpt2 import train_tokenizer
    from graphc.models import gpt2
    if decode_stream == "fallback":
        import tokenizers.decoders
        monkeypatch.delattr(tokenizers.decoders, "DecodeStream")
    path = tmp_path / gpt2.TOKENIZER_FILE
    train_tokenizer(path)
    tok = gpt2.Tokenizer(str(path))
    text = "naïve café — 東京 🙂 ROMEO:\nBut, soft!<|endoftext|>x"
    ids = tok.encode(text)
    assert len(ids) > len(text) // 2
    pieces = list(tok.decode_stream(iter(ids)))
    assert "".join(pieces) == tok.decode(ids) == text
    assert len(pieces) > 1 and not any("\ufffd" in piece for piece in pieces)
