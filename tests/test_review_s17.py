"""Review (session 17) of the two leads session 16's review left open: a gradient clip of 0,
and the end-of-training sample of `graphc train --sample-tokens N`.

Found: (1) TrainConfig(grad_clip=0) clipped every gradient to norm 0, so the GPT never
learnt (only weight decay moved it), where nanoGPT's grad_clip=0 means no clipping; and
gc.Trainer / an optimiser given clip_norm=0 zeroed every gradient silently. (2) graphc train
sampled all N tokens into a list before printing any, so a long sample showed nothing for
minutes and held every id and the whole text."""
import io
import os
from contextlib import redirect_stdout

import numpy as np
import pytest

import graphc as gc
from graphc import optim
from graphc.models.gpt import GPT, GPTConfig
from graphc.train import TrainConfig, Trainer, _sample
from ir.errors import GraphcError

os.environ.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")


# ---- 1. a clip of 0 ----------------------------------------------------------------------------
def test_a_clip_norm_of_zero_is_refused_by_the_trainer_and_the_optimisers():
    loss = lambda params, batch: gc.sum(params["w"] * batch[0])  # noqa: E731
    batches = [(np.ones(3, np.float32),)]
    with pytest.raises(GraphcError, match=r"Trainer: clip_norm=0 would zero every gradient"):
        gc.Trainer(loss, {"w": np.ones(3, np.float32)}, optim.SGD(lr=0.1), batches, steps=1,
                   clip_norm=0)
    for make in (optim.SGD, optim.Adam, optim.AdamW):
        with pytest.raises(GraphcError, match=r"clip_norm=0 would zero every gradient; pass "
                                              r"None for no clipping"):
            make(lr=0.1, clip_norm=0.0)


SMALL = dict(vocab_size=11, n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=3)


class _Batches:
    """The same batch at every step, whatever the trainer's RNG."""
    vocab = [str(i) for i in range(SMALL["vocab_size"])]

    def batch(self, rng, split, batch_size, block_size):
        r = np.random.default_rng(7)
        return (r.integers(0, 11, (batch_size, block_size)),
                r.integers(0, 11, (batch_size, block_size)))


def _trained(grad_clip):
    cfg = GPTConfig(**SMALL, dtype="float64")
    tc = TrainConfig(steps=3, lr=1e-2, min_lr=1e-3, warmup=1, weight_decay=0.0,
                     grad_clip=grad_clip)
    trainer = Trainer(GPT(cfg, seed=3), _Batches(), tc)
    for _ in range(3):
        trainer.train_step()
    return trainer.params


def test_train_config_grad_clip_zero_means_no_clipping_as_nanogpt():
    unclipped = _trained(0.0)
    never_reached = _trained(1e9)  # a norm no gradient here reaches: no clipping either
    clipped = _trained(1e-3)
    start = {n: p.data for n, p in GPT(GPTConfig(**SMALL, dtype="float64"),
                                       seed=3).named_parameters()}
    for name, value in unclipped.items():
        np.testing.assert_allclose(value, never_reached[name], rtol=1e-12, atol=1e-14)
    # the runs moved the weights, and a real clip moves them differently
    assert max(np.abs(unclipped[n] - start[n]).max() for n in start) > 1e-3
    assert max(np.abs(unclipped[n] - clipped[n]).max() for n in start) > 1e-3


# ---- 2. the sample at the end of graphc train ---------------------------------------------------
class _Text:
    vocab = list("abc")

    def encode(self, s):
        return [self.vocab.index(c) for c in s]

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)


class _Sampler:
    """Yields 0, 1, 2, 0, ... and, like a stopped run, can fail after `fail_after` tokens;
    records how many were drawn when each one was printed."""

    def __init__(self, fail_after=None):
        self.fail_after, self.drawn = fail_after, 0

    def stream(self, prompt, tokens, temperature, seed):
        for k in range(tokens):
            if k == self.fail_after:
                raise KeyboardInterrupt
            self.drawn += 1
            yield k % 3


def test_the_sample_is_printed_as_it_is_drawn_and_saved_whole(tmp_path):
    path = tmp_path / "sample.txt"
    sampler = _Sampler()

    class Out(io.StringIO):  # what had been drawn when each piece reached stdout
        seen = []

        def write(self, s):
            self.seen.append((s, sampler.drawn))
            return super().write(s)

    out = Out()
    with redirect_stdout(out):
        _sample(sampler, _Text(), 7, 0, str(path))
    assert path.read_text(encoding="utf-8") == "abcabca"
    assert out.getvalue() == "---- sample ----\nabcabca\n----------------\n"
    pieces = [(s, drawn) for s, drawn in Out.seen if s in "abc" and s]
    assert pieces == [(c, k + 1) for k, c in enumerate("abcabca")]  # one by one, as drawn


def test_a_sample_stopped_midway_leaves_the_saved_one_untouched(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_text("an earlier run's sample", encoding="utf-8")
    with redirect_stdout(io.StringIO()), pytest.raises(KeyboardInterrupt):
        _sample(_Sampler(fail_after=4), _Text(), 7, 0, str(path))
    assert path.read_text(encoding="utf-8") == "an earlier run's sample"
    assert sorted(os.listdir(tmp_path)) == ["sample.txt"]  # no temporary file left
