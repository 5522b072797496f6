"""Text generation with a key/value cache, as compiled plans of static shape.

One graph, `build_cached_step(model, batch, length, span)`, runs `length` new tokens per row
through the GPT: it writes their keys and values into per-layer caches of `span` slots at a
run-time slot (`dynamic_update_slice` on donated caches, so the plan updates them in place),
attends over the whole cache under an additive mask, and returns the logits of the last new
token. The span is the slots in use rounded up to a power of two (at most the block size), so
the caches grow with the tokens generated, as transformers' DynamicCache does, not with the
block: a step past the span copies them into caches twice the size. The prompt is one call
of it (the prefill, `length` = the prompt's), every further token one call with `length` 1
(the decode step):

    gen = Generator(model, params)
    ids = gen.generate([prompt_ids, other_prompt_ids], tokens=50, temperature=0.8, top_k=40,
                       top_p=0.95, seed=0)

Prompts of different lengths share slots by left padding: row b's real tokens start at slot
pad[b], its positions count from there and its queries never see the padding (a padding slot
attends to itself only, so no softmax row is empty). Once the cache is full the window slides
as the no-cache path does (nanoGPT's `idx[:, -block_size:]`): positions are learned, so the
cached keys of a shifted window are stale, and each further token reruns the prefill plan on
the last block_size tokens. The step's graph has a symbolic batch and length (shape
polymorphism): it is traced and optimised once per span of cache slots it attends over, and
each batch size and length (the prefill's longest prompt, 1 for the decode step) only lowers
that graph for its sizes (runtime/polymorphic.py); a Generator keeps the MAX_PLANS it ran
last.
"""
from __future__ import annotations

import math
import numbers
import operator
import reprlib
import warnings
from collections import OrderedDict
from collections.abc import Sized

import numpy as np

from ir.errors import GraphcError, a_type, user_stacklevel
from ir.graph import Graph
from ir.ops import api as F
from ir.ops.registry import graph_param, scalar_array
from ir.types import NOT_NUMBERS, as_dim, as_dtype, is_int
from runtime.build import build_plan

from .generate_args import checked_keywords, refuse_text_prompts, text_token
from .models.gpt import GPT


# Concrete plans a Generator keeps, the least recently run dropped first: each holds buffers
# sized by its batch, prompt length and span, and keeping one per prompt length grew without
# bound (60 lengths, 60 plans).
MAX_PLANS = 8


class LongPromptWarning(UserWarning):
    """A prompt longer than the model's positions (block_size, a GPT-2's n_positions): only
    its last that many tokens are read, as transformers' tokenizer warns ("Token indices
    sequence length is longer than the specified maximum sequence length")."""


def cache_names(n_layer: int) -> list[str]:
    return [f"cache.{i}.{kv}" for i in range(n_layer) for kv in ("k", "v")]


def build_cached_step(model: GPT, batch, length, span: int | None = None) -> Graph:
    """(idx, positions, mask, start, parameters..., caches...) -> (logits of the last token,
    caches...): `length` tokens per row at cache slots start .. start+length-1 of caches of
    `span` slots (default: the block size; the caller guarantees start + length <= span),
    attending over all of them. `batch` and `length` may be names: symbolic dimensions."""
    cfg = model.cfg
    B, L, C, H = as_dim(batch), as_dim(length), cfg.n_embd, cfg.n_head
    S = cfg.block_size if span is None else span
    D = C // H
    g = Graph(f"cached_step_{L}_{S}")
    with g.building():
        idx = g.input("idx", (B, L), "int64")
        positions = g.input("positions", (B, L), "int64")
        mask = g.input("mask", (B, 1, L, S), cfg.dtype)  # 0 where a query may look, else -inf
        start = g.input("start", (), "int64")
        for _, p in model.named_parameters():
            graph_param(g, p)
        caches = [g.input(name, (B, H, S, D), cfg.dtype) for name in cache_names(cfg.n_layer)]
        x = model.wte(idx) + F.take(model.wpe.weight, positions)  # (B, L, C)
        updated = []
        for i, block in enumerate(model.blocks):
            attn = block.attn
            q, k, v = F.split(attn.c_attn(block.ln_1(x)), 3, axis=-1)
            q, k, v = (t.reshape(B, L, H, D).transpose(0, 2, 1, 3) for t in (q, k, v))
            k_all = F.dynamic_update_slice(caches[2 * i], k, start, axis=2)  # (B, H, S, D)
            v_all = F.dynamic_update_slice(caches[2 * i + 1], v, start, axis=2)
            updated += [k_all, v_all]
            # the same operations in the same order as CausalSelfAttention.forward
            att = (q @ k_all.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(D)) + mask
            y = (F.softmax(att, axis=-1) @ v_all).transpose(0, 2, 1, 3).reshape(B, L, C)
            x = x + attn.c_proj(y)
            x = x + block.mlp(block.ln_2(x), lambda t: t)
        last = F.slice_(x, [0, L - 1, 0], [B, L, C], [1, 1, 1]).reshape(B, C)
        last = model.ln_f(last)
        head = F.transpose(model.wte.weight) if cfg.tie_weights else model.lm_head.weight
        g.set_outputs([last @ head] + updated)
    return g


def _sized(x) -> bool:
    """Whether x has a length: a list, or an array or tensor of at least one dimension (a
    0-d numpy array or torch tensor is Sized, its len() a TypeError)."""
    return isinstance(x, Sized) and getattr(x, "ndim", 1) != 0


def _span(used: int, block_size: int) -> int:
    """The cache slots a step attends over: the slots in use rounded up to a power of two
    (few plans: one per doubling), at most the block. Slots past them are masked anyway, so
    this saves reading them without changing any result."""
    return min(1 << max(used - 1, 0).bit_length(), block_size)


class Generator:
    """KV-cache generation from a GPT and its parameters (name -> array)."""

    def __init__(self, model: GPT, params: dict):
        for name, p in model.named_parameters():  # (a missing one was a KeyError mid-run)
            if name not in params:
                raise ValueError(f"Generator: params has no {name!r} (the model's parameter "
                                 "names, model.named_parameters())")
            if np.shape(params[name]) != p.data.shape:
                raise ValueError(f"Generator: params[{name!r}] has shape "
                                 f"{np.shape(params[name])}, the model's is {p.data.shape}")
            dtype = np.asarray(params[name]).dtype
            if dtype != p.data.dtype:  # (params from before a cast such as model.half())
                raise ValueError(f"Generator: params[{name!r}] has dtype {dtype}, the model's "
                                 f"is {p.data.dtype} (params from before a cast? take "
                                 "model.params() after it)")
        self.model = model
        self.params = params
        self._plans = OrderedDict()  # (batch, length, span) -> (concrete plan, input names)
        self._steps = {}  # span -> the step's plan for every batch and length
        self._caches = None  # name -> (B, H, span, D) array, updated in place by the plans
        self._contexts = None  # each row's token ids so far
        # start() and advance() calls: a stream whose last call is not the latest is stale
        # (another caller's tokens are in the caches)
        self._calls = 0

    def _plan(self, batch: int, length: int, span: int):
        key = (batch, length, span)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        # one symbolic step per span: at most log2(block_size) + 1 of them, no buffers
        step = self._steps.get(span)
        if step is None:
            step = build_plan(build_cached_step(self.model, "batch", "length", span),
                              donate=cache_names(self.model.cfg.n_layer))
            self._steps[span] = step
        plan = step.plan_for_binding({"batch": batch, "length": length})
        self._plans[key] = (plan, [n.attrs["name"] for n in plan.graph.inputs])
        while len(self._plans) > MAX_PLANS:
            (b, n, s), _ = self._plans.popitem(last=False)
            self._steps[s].drop({"batch": b, "length": n})  # else the step would keep it
        return self._plans[key]

    def _run(self, idx, positions, mask, start):
        """mask: (B, 1, L, at least `span` slots); only its first `span` reach the plan."""
        B, L = idx.shape
        span = _span(start + L, self.model.cfg.block_size)
        mask = np.ascontiguousarray(mask[..., :span])
        self._fit_caches(B, span, start, L)
        plan, order = self._plan(B, L, span)
        self.last_plan = plan  # plan.memory, plan.profile(...) of the step just run
        feed = {"idx": idx, "positions": positions, "mask": mask,
                "start": np.asarray(start, np.int64), **self.params, **self._caches}
        # errstate: non-finite logits are choose()'s to report in one line; numpy's "overflow
        # encountered in cast" (a float16 model's activations) only went before it on stderr
        with np.errstate(all="ignore"):
            logits, *caches = plan(*[feed[n] for n in order])
        self._caches = dict(zip(cache_names(self.model.cfg.n_layer), caches))
        return logits.astype(np.float64)

    def _fit_caches(self, batch: int, span: int, start: int, length: int):
        """Caches of `span` slots, the size the step's plan takes. They were the whole block
        from the first token (75 MB for GPT-2's 1024 slots at batch 1, a 1-token prompt
        using 4); now they double with the span, keeping the `start` slots written so far.
        A prefill (start 0) of `length` tokens starts from zeros past them, as a fresh
        cache: caches of the same shape are reused, and the slots an earlier run wrote (inf
        or nan once its activations overflowed) made every later prompt fail."""
        cfg = self.model.cfg
        shape = (batch, cfg.n_head, span, cfg.n_embd // cfg.n_head)
        old = self._caches
        if old is not None and next(iter(old.values())).shape == shape:
            if start == 0 and length < span:  # (the first `length` are written by the run)
                for cache in old.values():
                    cache[:, :, length:] = 0
            return
        self._caches = {}
        for name in cache_names(cfg.n_layer):
            # zeros, not np.empty: a masked slot adds -inf to q @ k, and garbage there (inf,
            # nan) would make the sum nan
            cache = np.zeros(shape, cfg.dtype)
            if start:  # a decode step past the span: the context moves over
                cache[:, :, :start] = old[name][:, :, :start]
            self._caches[name] = cache

    def start(self, prompts) -> np.ndarray:
        """Run the prompts (lists of token ids, one per row, each non-empty) -> the logits
        (B, vocab) of each row's next token."""
        self._contexts = self._windows(prompts, warn=True)
        self._calls += 1
        return self._prefill()

    def _windows(self, prompts, warn=False) -> list[list[int]]:
        """Each prompt's token ids, checked, and the last block_size of them (warn: one
        LongPromptWarning where a prompt is longer)."""
        refuse_text_prompts(prompts)  # (text, or rows of it: how to get the ids)
        if not _sized(prompts) or not all(_sized(p) for p in prompts):
            # (one unwrapped prompt, [1, 2, 3], was a raw TypeError from len(); a 1-D torch
            # tensor, transformers' input_ids[0], or a 0-d array among the prompts too: they
            # define __len__, and len() of a 0-d one raises)
            got = (reprlib.repr(prompts) if isinstance(prompts, (Sized, numbers.Number))
                   else a_type(prompts))  # (a generator's repr says no more)
            raise ValueError(f"prompts must be a list of token-id lists (one per row), got "
                             f"{got}")
        if len(prompts) == 0 or any(len(p) == 0 for p in prompts):  # (B, L) arrays too
            raise ValueError("every prompt needs at least one token")
        T = self.model.cfg.block_size  # a longer prompt's head is never read: not kept
        try:
            windows = [[self._token(t) for t in p][-T:] for p in prompts]
        except ValueError:
            text = text_token(prompts)  # ("token id 'hello' is not a whole number")
            if text is not None:
                raise text from None
            raise
        longest = max(len(p) for p in prompts)
        if warn and longest > T:  # (it was cut without a word)
            warnings.warn(LongPromptWarning(
                f"a prompt of {longest} tokens is longer than the model's {T} positions "
                f"(block_size, a GPT-2's n_positions): only its last {T} tokens are read"),
                stacklevel=user_stacklevel())
        return windows

    def advance(self, tokens) -> np.ndarray:
        """Append one token per row -> the logits of the next token."""
        cfg = self.model.cfg
        if self._contexts is None:
            raise ValueError("advance() before start(): no prompts yet")
        if len(tokens) != len(self._contexts):
            raise ValueError(f"{len(tokens)} tokens for {len(self._contexts)} rows")
        tokens = [self._token(t) for t in tokens]  # all checked before any row takes one
        self._calls += 1
        for ctx, t in zip(self._contexts, tokens):
            ctx.append(t)
            if len(ctx) > cfg.block_size:  # only the window is ever read again
                del ctx[0]
        if self._slot >= cfg.block_size:  # the window slides: recompute it
            return self._prefill()
        B, T, t = len(tokens), cfg.block_size, self._slot
        idx = np.asarray(tokens, np.int64).reshape(B, 1)
        positions = (t - self._pads).reshape(B, 1)
        S = _span(t + 1, T)
        visible = np.arange(S)[None, :]
        mask = np.where((visible >= self._pads[:, None]) & (visible <= t), 0.0, -np.inf)
        self._slot += 1
        return self._run(idx, positions, mask.reshape(B, 1, 1, S).astype(cfg.dtype), t)

    def _token(self, t) -> int:
        t = whole_token_id(t)
        if not 0 <= t < self.model.cfg.vocab_size:
            raise ValueError(f"token id {t} is outside the vocabulary (0 to "
                             f"{self.model.cfg.vocab_size - 1})")
        return t

    def _prefill(self) -> np.ndarray:
        cfg = self.model.cfg
        T = cfg.block_size
        windows = [ctx[-T:] for ctx in self._contexts]
        L = max(len(w) for w in windows)
        B = len(windows)
        pads = np.array([L - len(w) for w in windows], np.int64)
        # a padding slot holds the row's first token at position 0, as its first real slot
        # does: both attend to themselves only, so every layer's keys and values there are
        # those of the first real slot, finite whenever the row alone runs. (Token 0 there
        # was a batch's NaN where each row alone ran, its embedding past the dtype's range:
        # NaN + -inf is NaN under the additive mask, and 0 * NaN in softmax @ v.)
        idx = np.empty((B, L), np.int64)
        for b, w in enumerate(windows):
            idx[b, :pads[b]] = w[0]
            idx[b, pads[b]:] = w
        slots = np.arange(L)
        positions = np.maximum(slots[None, :] - pads[:, None], 0)
        S = _span(L, T)  # the slots the plan reads: a (L, block_size) mask was mostly waste
        keys = np.arange(S)[None, None, :]
        queries = slots[None, :, None]
        visible = ((keys >= pads[:, None, None]) & (keys <= queries)) | (keys == queries)
        mask = np.where(visible, 0.0, -np.inf).astype(cfg.dtype).reshape(B, 1, L, S)
        self._pads, self._slot = pads, L
        return self._run(idx, positions, mask, 0)

    @checked_keywords("Generator.generate")
    def generate(self, prompts, tokens: int, *positional, temperature=1.0, top_k=None,
                 top_p=None, seed=0, stop_tokens=None, min_new_tokens=None,
                 repetition_penalty=None, no_repeat_ngram_size=None, min_p=None,
                 do_sample=None, attention_mask=None) -> list[list[int]]:
        """Up to `tokens` new token ids per prompt: greedy at temperature 0, otherwise
        sampled from the softmax of logits / temperature restricted to the top_k most likely
        tokens (None: all, where transformers' generate keeps 50 unless told) and to the
        smallest set whose probability reaches top_p; seeded, so
        reproducible. A row ends with the first of `stop_tokens` it generates (kept as its
        last id), as transformers' generate ends at eos_token_id: by default the model's
        eos_token_ids (a GPT-2 checkpoint's eos_token_id; none for graphc's own GPT), or an
        id or a list of ids; () never stops. `min_new_tokens`, as transformers': no stop
        token is chosen among a row's first that many tokens (None: the model's, a GPT-2
        directory's min_new_tokens; 0 for graphc's own GPT); model.min_length (a GPT-2
        directory's min_length) bars them too while the rows, the longest prompt included,
        are shorter, as transformers' min_length, unless min_new_tokens is given.

        As transformers' generate (each None: the model's, a GPT-2 directory's
        generation_config.json; off for graphc's own GPT): `repetition_penalty` divides the
        positive logits of the tokens in a row's prompt and tokens so far by it and
        multiplies the negative ones (> 0; 1: off); `no_repeat_ngram_size` n bans a token
        that would repeat an n-gram of the row (0: off); `min_p` keeps, after temperature,
        top_k and top_p, the tokens at least min_p times as likely as the likeliest (0: off);
        `do_sample=False` is greedy, as temperature 0 (top_k, top_p and min_p unused).
        Every setting after `tokens` is keyword-only (Sampler's took top_p and seed in the
        other order: a positional call meant one thing to each).

        `attention_mask` (B, L) of 0 and 1, as transformers': `prompts` is then a (B, L)
        left-padded input_ids (a tokenizer's padding_side="left"), each row's real tokens
        those under its 1s (the 0s before them); without it every id is a token."""
        keyword_only("Generator.generate", positional)
        # (the mask goes on to stream: its min_length counts the padded width, as
        # transformers' counts input_ids.shape[-1])
        steps = self.stream(prompts, tokens, temperature=temperature, top_k=top_k,
                            top_p=top_p, seed=seed, stop_tokens=stop_tokens,
                            min_new_tokens=min_new_tokens,
                            repetition_penalty=repetition_penalty,
                            no_repeat_ngram_size=no_repeat_ngram_size, min_p=min_p,
                            do_sample=do_sample, attention_mask=attention_mask)
        out = [[] for _ in prompts]  # (after stream() has checked the prompts)
        for chosen in steps:
            for row, t in zip(out, chosen):
                if t is not None:
                    row.append(t)
        return out

    @checked_keywords("Generator.stream")
    def stream(self, prompts, tokens: int, *positional, temperature=1.0, top_k=None,
               top_p=None, seed=0, stop_tokens=None, min_new_tokens=None,
               repetition_penalty=None, no_repeat_ngram_size=None, min_p=None,
               do_sample=None, attention_mask=None):
        """generate()'s tokens as they come: an iterator of one list (a token id per prompt,
        None for a row that has ended at a stop token) per step, none of them kept (but
        no_repeat_ngram_size's n-grams), so `tokens` may be as large as the caller cares
        to read; it ends early once every row
        has ended. The settings are checked and the prompts run now, before the first
        token. Every setting after `tokens` is keyword-only, as generate()'s, attention_mask
        too (it was generate()'s only: stream(input_ids, attention_mask=...) a TypeError)."""
        keyword_only("Generator.stream", positional)
        width = None  # input_ids' L, padding included, with an attention_mask
        if attention_mask is not None:
            refuse_text_prompts(prompts)  # (before they are taken as an array)
            prompts, width = left_padded_rows(prompts, attention_mask)
        temperature, top_k, top_p, seed = check_sampling(temperature, top_k, top_p, seed)
        penalty, ngram, min_p, do_sample = self._processing(repetition_penalty,
                                                            no_repeat_ngram_size, min_p,
                                                            do_sample)
        if do_sample is False:  # transformers' greedy search: graphc's temperature 0
            temperature = 0.0
        count = _whole_setting(tokens)
        if count is None:
            # (2.5 failed in range() after the prompts had run, "3" in a comparison)
            raise ValueError(f"tokens must be a whole number, got {reprlib.repr(tokens)}")
        if count < 0:  # (it gave no tokens, where transformers' max_new_tokens and graphc
            # sample --tokens refuse it; 0 asks for none, on purpose: see the README)
            raise ValueError(f"tokens must be >= 0 (0: none), got {count}")
        tokens = count
        stop = self._stop_tokens(stop_tokens)
        # the model's are checked as the argument is: one set by hand (-1, "3", 2.5) was
        # "got None", a raw TypeError or taken
        least = _at_least_0(self.model.min_new_tokens, "model.min_new_tokens") \
            if min_new_tokens is None else _at_least_0(min_new_tokens, "min_new_tokens")
        shortest = _at_least_0(self.model.min_length, "model.min_length")
        rng = np.random.default_rng(seed)
        if tokens <= 0:
            self._windows(prompts)  # checked as start() checks them (none run)
            return iter(())
        logits = self.start(prompts)
        # transformers' min_length counts the rows' length, prompt included, and its rows are
        # left-padded to the longest prompt: the same first steps barred in every row. A
        # min_new_tokens given replaces it, as transformers' (which sets min_length to it
        # plus the prompt's length). With an attention_mask the rows are input_ids' L wide,
        # padding columns every row has included (padding="max_length"), as transformers'
        # input_ids.shape[-1]: the longest row's tokens barred 2 steps too many there
        if min_new_tokens is None:
            least = max(least, shortest - (width or max(len(p) for p in prompts)))
        penalties = Penalties(prompts, logits.shape[-1], penalty, ngram)
        return self._stream(logits, tokens, temperature, top_k, top_p, rng, self._calls,
                            stop, least, min_p, penalties)

    def _processing(self, repetition_penalty, no_repeat_ngram_size, min_p, do_sample):
        """The settings transformers' generate reads from generation_config.json, checked
        (each None: the model's, checked as the argument is)."""
        model = self.model

        def given(value, name):
            return (getattr(model, name), f"model.{name}") if value is None else (value, name)
        return check_processing(*given(repetition_penalty, "repetition_penalty"),
                                *given(no_repeat_ngram_size, "no_repeat_ngram_size"),
                                *given(min_p, "min_p"), *given(do_sample, "do_sample"))

    def _stop_tokens(self, stop_tokens) -> frozenset:
        if stop_tokens is None:
            stop_tokens = self.model.eos_token_ids
        try:
            items = iter(stop_tokens)
        except TypeError:  # not a list: one id, as eos_token_id may be, told by the rule
            # for an id (whole_token_id): np.array(3) and torch.tensor(3) as 3, True refused
            # as a bool (is_int decided "one id", and refused them as no list)
            items = iter((stop_tokens,))
        ids = list(items)
        try:
            return frozenset(self._token(t) for t in ids)
        except ValueError as exc:
            raise ValueError(f"stop_tokens: {exc}") from None

    def _stream(self, logits, tokens, temperature, top_k, top_p, rng, own_call, stop,
                least=0, min_p=None, penalties=None):
        """own_call: self._calls after this stream's start() (read when stream() is called,
        not at the first token); least: min_new_tokens; penalties: a Penalties over the
        prompts."""
        latest = [None] * len(logits)  # each row's last token
        barred = sorted(t for t in stop if t < logits.shape[-1])
        for step in range(tokens):
            raw = logits
            if penalties is not None and penalties.active:  # (a copy: the Generator's own)
                logits = penalties(logits)
            if step < least and barred:
                # transformers' MinNewTokensLengthLogitsProcessor: the stop tokens' logits
                # are -inf among the first min_new_tokens (a copy: the Generator's own)
                logits = logits.copy()
                logits[:, barred] = -np.inf
            try:
                chosen = [None if t in stop else choose(row, temperature, top_k, top_p, rng,
                                                        min_p)
                          for row, t in zip(logits, latest)]
            except NoTokenToChoose as exc:  # what to try depends on the model's dtype
                if penalties is not None and penalties.active and all(map(_choosable, raw)):
                    # (the model's logits allowed a token: the settings took the last one)
                    raise ValueError(penalties.refusal(raw)) from None
                raise ValueError(f"{exc}: {_non_finite_hint(self.model.cfg.dtype)}") from None
            if penalties is not None:
                penalties.add(chosen)
            yield chosen
            # a row that has ended is fed its stop token again (its logits are never read),
            # as transformers feeds its finished rows padding
            latest = [old if t is None else t for t, old in zip(chosen, latest)]
            if stop and all(t in stop for t in latest):
                return
            if step + 1 < tokens:
                if self._calls != own_call:  # the caches hold another caller's tokens
                    raise ValueError("this stream's Generator has started other prompts since "
                                     "(or advanced them outside this stream; one stream at a "
                                     "time per Generator)")
                logits = self.advance(latest)
                own_call = self._calls


def unpadded(input_ids, attention_mask) -> list[list]:
    """The rows of a left-padded (B, L) input_ids under a transformers attention_mask (0:
    padding, then 1: the row's tokens), as the ragged prompts graphc pads itself; a mask
    that is not of input_ids' shape, not 0s and 1s, pads on the right or leaves a row no
    token is one ValueError line."""
    return left_padded_rows(input_ids, attention_mask)[0]


def left_padded_rows(input_ids, attention_mask) -> tuple[list[list], int]:
    """unpadded()'s rows, and input_ids' width L (padding included). Each refusal names
    attention_mask and what was expected and given: the shapes, the first value that is no
    0 or 1 and where, the row that pads on the right or has no token."""
    try:
        ids = np.asarray(input_ids, dtype=object)
    except ValueError:  # (numpy's "inhomogeneous shape" of rows nested unevenly)
        ids = None
    if ids is None or ids.ndim != 2:
        # (it was "attention_mask must have input_ids' shape (B, L), got (2, 3) for prompts
        # of shape (2,)": the mask was right, the prompts ragged)
        raise ValueError(f"attention_mask needs prompts as one left-padded (B, L) input_ids "
                         f"array, got prompts of {_shape_words(input_ids)} (a list of prompts "
                         "of their own lengths needs no attention_mask: graphc pads it itself)")
    try:
        mask = np.asarray(attention_mask)
    except ValueError:  # (numpy's "setting an array element with a sequence" went out raw)
        mask = None
    if mask is None or mask.shape != ids.shape:
        got = (mask.shape if mask is not None and mask.ndim else
               _shape_words(attention_mask) if mask is None else
               f"{reprlib.repr(attention_mask)} (shape ())")
        raise ValueError(f"attention_mask must have input_ids' shape (B, L), got {got} for "
                         f"input_ids (prompts) of shape {ids.shape}")
    if mask.dtype.kind not in "biuf":
        # (an object or str array: None or a str among the 0s and 1s made every value one,
        # and the first was named, "got 1 (a int) at row 0, column 0"; each value as given)
        mask = np.asarray(attention_mask, dtype=object)
        good = np.vectorize(_0_or_1, otypes=[bool])(mask) if mask.size else \
            np.ones(mask.shape, bool)
    else:
        good = np.isin(mask, (0, 1))
    if not good.all():
        row, col = np.argwhere(~good)[0]
        value = mask[row, col]
        value = value.item() if hasattr(value, "item") else value
        kind = "" if mask.dtype.kind in "biuf" else f" ({a_type(value)})"  # (not "a int")
        raise ValueError(f"attention_mask must hold 0 (padding) and 1 (a token) only, got "
                         f"{value!r}{kind} at row {row}, column {col}")
    held = mask.astype(bool)
    right = np.argwhere(held[:, :-1] & ~held[:, 1:])
    if right.size:
        row, col = right[0]
        raise ValueError(f"attention_mask pads on the right in row {row} (a 1 at column {col} "
                         f"before a 0 at column {col + 1}): graphc takes left padding, as "
                         "transformers' generate wants (padding_side=\"left\"), or a list of "
                         "prompts of their own lengths")
    empty = np.flatnonzero(~held.any(axis=1))
    if empty.size:
        # (it was "every prompt needs at least one token", naming neither the mask nor the
        # row; transformers' generate continues such a row from its padding alone, tokens
        # of no prompt)
        raise ValueError(f"attention_mask row {empty[0]} is all 0s (padding only): every "
                         "row needs at least one token (a 1)")
    return [list(row[m]) for row, m in zip(ids, held)], ids.shape[1]


def _0_or_1(value) -> bool:
    """Whether an attention_mask value given as an object is the number 0 or 1."""
    return isinstance(value, numbers.Number) and value in (0, 1)


def _shape_words(x) -> str:
    """What a value that is no (B, L) array is, for a refusal: its shape, its rows' lengths
    where they differ, or its repr."""
    if _sized(x) and not isinstance(x, (str, bytes)) and all(_sized(r) for r in x):
        lengths = [len(r) for r in x]
        if len(set(lengths)) > 1:
            shown = ", ".join(map(str, lengths[:8])) + (", ..." if len(lengths) > 8 else "")
            return f"{len(lengths)} rows of lengths {shown}"
    try:
        shape = np.shape(x)
    except ValueError:
        shape = None
    if shape and not isinstance(x, (str, bytes)):
        return f"shape {shape}"
    if isinstance(x, Sized) and not isinstance(x, (str, bytes)):
        return f"{len(x)} rows"
    return reprlib.repr(x) if isinstance(x, (Sized, numbers.Number)) else a_type(x)


SETTINGS = ("temperature", "top_k", "top_p", "seed", "stop_tokens", "min_new_tokens")


def keyword_only(function: str, positional: tuple) -> None:
    """One TypeError naming the keywords for settings given by position (`positional`: the
    arguments past the prompts and `tokens`), where Python's said only "takes 3 positional
    arguments but 5 were given"."""
    if positional:
        raise TypeError(f"{function}() takes the prompt(s) and tokens by position, its "
                        f"settings by keyword only: {', '.join(s + '=' for s in SETTINGS)} "
                        f"... (got {len(positional)} more positional argument"
                        f"{'s' if len(positional) > 1 else ''})")


def _at_least_0(value, name: str) -> int:
    """A count setting (min_new_tokens) as an int by _whole_setting's rule, >= 0, or one
    ValueError naming `name`, as transformers' "must be a non-negative integer"."""
    whole = _whole_setting(value)
    if whole is None or whole < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {reprlib.repr(value)}")
    return whole


def _whole_setting(value) -> int | None:
    """`value` as an int by graphc's rule for a whole number given as a setting
    (control_flow._whole's: a Python or numpy integer, or a 0-d integer array or tensor, as
    torch and transformers take them; not a bool, a float or a string), or None. A Python
    or numpy integer of any size: these settings stay Python ints, never an int64 counter
    (_whole's bound refused a seed of 10**20, which numpy's default_rng and graphc train
    take, as "must be a whole number", after a whole training run; top_k 2**70 too)."""
    if is_int(value):
        return operator.index(value)
    # a 0-d integer array or tensor of any size too (np.array(2**64 - 1, np.uint64) as a
    # seed was refused where np.uint64(2**64 - 1) was taken): _whole's test, not its bound
    held = scalar_array(value)
    if held is None or held.ndim != 0 or held.dtype.kind not in "iu":
        return None
    return int(held)


def _real_setting(value) -> float | None:
    """`value` as a finite float by graphc's rule for a number setting that torch reads
    (ir.ops.api._number's torch_scalars: a Python or numpy int or float, a 0-d real array
    or tensor; not a Fraction or a Decimal, as torch's), but not a bool (transformers takes
    temperature=True; top_k=True is refused, and top_p=True), or None. Each setting is
    converted once, here: 10**400 overflowed in math.isfinite."""
    if isinstance(value, (bool, np.bool_)) or (
            getattr(value, "shape", None) == () and
            getattr(scalar_array(value), "dtype", None) == np.bool_):
        return None
    try:
        number = F._number("", value, torch_scalars=True)
    except (GraphcError, OverflowError):  # (OverflowError: too large for a float)
        return None
    return number if math.isfinite(number) else None


def whole_token_id(t) -> int:
    """A token id as an int, by the rule for a whole-number setting (_whole_setting): an int,
    a numpy integer, a 0-d integer array or tensor (int() truncated 1.7 to 1), else one
    ValueError."""
    # (is_int, _whole's own first test, written out: this runs for each row and token;
    # operator.index gives the exact int, faster than int() for a numpy integer)
    if isinstance(t, (int, np.integer)) and not isinstance(t, NOT_NUMBERS):
        return operator.index(t)
    if isinstance(t, (bool, np.bool_)):  # True was token 1; torch's embedding refuses bools
        raise ValueError(f"token id {t!r} is a bool, not a whole number")
    whole = _whole_setting(t)
    if whole is None:
        raise ValueError(f"token id {t!r} is not a whole number")
    return whole


def _numpy_seed(seed) -> bool:
    """Whether `seed` is a seed np.random.default_rng takes that is not one number (a 0-d
    array is one: numpy's own check failed on it, "len() of unsized object")."""
    if isinstance(seed, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)):
        return True
    return isinstance(seed, (list, tuple, np.ndarray)) and np.ndim(seed) >= 1 and \
        np.size(seed) > 0 and all(is_int(s) and s >= 0
                                  for s in np.ravel(np.asarray(seed, dtype=object)))


def check_sampling(temperature, top_k, top_p, seed=None):
    """The sampling settings checked, in one ValueError line naming the setting, and
    converted -> (temperature: float, top_k: int or None, top_p: float or None, seed: an int,
    None or what np.random.default_rng takes). The converted values go on to choose(): the
    user's went on, and np.uint8(3) as top_k wrapped around in its -top_k."""
    # the types first: None or "0.9" were raw TypeErrors from numpy or a comparison
    number = _real_setting(temperature)
    if number is None or number < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got "
                         f"{reprlib.repr(temperature)}")
    temperature = number
    if top_k is not None:
        k = _whole_setting(top_k)
        if k is None:
            # as transformers; 2.5 failed at the first token, indexing np.sort's result, and
            # True was taken as 1 (while top_p=True was refused)
            raise ValueError(f"top_k must be a whole number, got {reprlib.repr(top_k)}")
        if k < 0:
            raise ValueError(f"top_k must be a whole number >= 0 (0 or None: all), got {k}")
        # 0: no top-k, as transformers' top_k=0 (its TopKLogitsWarper is left out)
        top_k = k or None
    if top_p is not None:
        p = _real_setting(top_p)
        if p is None or not 0 < p <= 1:  # (nan: None)
            raise ValueError(f"top_p must be in (0, 1], got {reprlib.repr(top_p)}")
        top_p = p
    if seed is not None and not _numpy_seed(seed):
        whole = _whole_setting(seed)
        if whole is None or whole < 0:
            # (numpy's errors named no seed, and it took True as 1)
            raise ValueError(f"seed must be a whole number >= 0, None, or a numpy Generator, "
                             f"SeedSequence or sequence of such numbers, got {seed!r}")
        seed = whole
    return temperature, top_k, top_p, seed


def check_processing(repetition_penalty=1.0, penalty_name="repetition_penalty",
                     no_repeat_ngram_size=0, ngram_name="no_repeat_ngram_size", min_p=None,
                     min_p_name="min_p", do_sample=None, do_sample_name="do_sample"):
    """transformers' repetition_penalty (> 0), no_repeat_ngram_size (>= 0), min_p (in
    [0, 1], or None) and do_sample (a bool, or None: sample unless temperature is 0)
    checked, in one ValueError line naming the setting (`*_name`: model.min_p for the
    model's), and converted -> (float, int, float or None, bool or None)."""
    penalty = _real_setting(repetition_penalty)
    if penalty is None or penalty <= 0:  # (as RepetitionPenaltyLogitsProcessor's)
        raise ValueError(f"{penalty_name} must be a finite number > 0 (1: none), got "
                         f"{reprlib.repr(repetition_penalty)}")
    ngram = _at_least_0(no_repeat_ngram_size, ngram_name)
    if min_p is not None:
        number = _real_setting(min_p)
        if number is None or not 0 <= number <= 1:  # (MinPLogitsWarper's [0, 1])
            raise ValueError(f"{min_p_name} must be in [0, 1] (0: none), got "
                             f"{reprlib.repr(min_p)}")
        min_p = number
    if do_sample is not None:
        if not isinstance(do_sample, (bool, np.bool_)):  # (1 or "False" would be taken)
            raise ValueError(f"{do_sample_name} must be True, False or None, got "
                             f"{reprlib.repr(do_sample)}")
        do_sample = bool(do_sample)
    return penalty, ngram, min_p, do_sample


class Penalties:
    """transformers' RepetitionPenaltyLogitsProcessor and NoRepeatNGramLogitsProcessor over
    each row's own tokens, its prompt (all of it, as transformers' input_ids; no padding)
    and the tokens it has generated: called with the logits (B, vocab) of the next tokens
    -> new logits; add() appends the tokens chosen (None: a row that has ended). The
    n-grams of each row are kept, one entry per token (only with no_repeat_ngram_size)."""

    def __init__(self, prompts, vocab: int, penalty: float = 1.0, ngram: int = 0):
        self.penalty, self.ngram = penalty, ngram
        self.active = penalty != 1 or ngram > 0
        rows = [[whole_token_id(t) for t in p] for p in prompts] if self.active else []
        # the tokens each row has had (the penalty applies once per token, however often)
        self.seen = np.zeros((len(rows), vocab), bool) if penalty != 1 else None
        # each row's (n-1)-gram -> the tokens that followed it, and its last n-1 tokens
        self.follows = [{} for _ in rows]
        self.tails = [() for _ in rows]
        for b, row in enumerate(rows):
            self._add(b, row)

    def _add(self, b: int, tokens) -> None:
        if self.seen is not None:
            self.seen[b, [t for t in tokens if t < self.seen.shape[1]]] = True
        if self.ngram:
            follows, tail, keep = self.follows[b], self.tails[b], self.ngram - 1
            for t in tokens:
                if len(tail) == keep:  # an n-gram complete: tail + (t,)
                    follows.setdefault(tail, set()).add(t)
                tail = (tail + (t,))[max(len(tail) + 1 - keep, 0):]
            self.tails[b] = tail

    def add(self, chosen) -> None:
        if self.active:
            for b, t in enumerate(chosen):
                if t is not None:
                    self._add(b, (t,))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        logits = logits.copy()
        if self.seen is not None:
            # divided where positive, multiplied where negative: less likely for a penalty > 1
            # (over: a penalty near 0, 1e-310, takes a logit to +Inf, refusal()'s to name;
            # numpy's "overflow encountered" only went to stderr before it)
            with np.errstate(over="ignore"):
                penalised = np.where(logits < 0, logits * self.penalty,
                                     logits / self.penalty)
            logits = np.where(self.seen, penalised, logits)
        if self.ngram:
            for b, (follows, tail) in enumerate(zip(self.follows, self.tails)):
                banned = follows.get(tail) if len(tail) == self.ngram - 1 else None
                if banned:
                    logits[b, [t for t in banned if t < logits.shape[1]]] = -np.inf
        return logits

    def refusal(self, raw: np.ndarray) -> str:
        """The line for logits `raw` that allowed a token in every row, none left after
        these settings: the setting that took the last one (a penalty near 0, 1e-310,
        overflows a logit to +Inf, a huge one can take every logit to -Inf; else the n-gram
        ban's)."""
        if self.seen is not None and (not self.ngram or np.isposinf(self(raw)).any()):
            return (f"no token is left to choose: repetition_penalty {self.penalty!r} takes "
                    "the logits of the tokens already in the text past float64's range "
                    "(+Inf or every one -Inf)")
        return (f"no token is left to choose: no_repeat_ngram_size {self.ngram} bans every "
                "token the model's logits allow")


def _non_finite_hint(dtype) -> str:
    name = as_dtype(dtype).name
    if name == "float16":  # (its largest is 65504: an activation past it is Inf)
        return ("its float16 activations likely overflowed float16: try --dtype bfloat16 or "
                "float32 (model.bfloat16() or model.float())")
    return f"are its weights finite and within {name}'s range?"


class NoTokenToChoose(ValueError):
    """choose()'s refusal of logits that hold NaN or +Inf or are all -Inf."""


def _choosable(logits: np.ndarray) -> bool:
    """Whether a row of logits allows a token: no NaN or +Inf, not all -Inf."""
    return not (np.isnan(logits).any() or np.isposinf(logits).any() or
                np.isneginf(logits).all())


def choose(logits: np.ndarray, temperature, top_k=None, top_p=None, rng=None,
           min_p=None) -> int:
    """One token id from a row of logits (float64): the likeliest at temperature 0, else
    drawn from sampling_probs()."""
    if temperature == 0:
        _check_choosable(logits)
        return int(np.argmax(logits))
    probs = sampling_probs(logits, temperature, top_k, top_p, min_p)
    return int(rng.choice(logits.size, p=probs))


def _check_choosable(logits):
    # (-inf: a token never chosen, but not every one: argmax then picked token 0 and
    # sampling failed with numpy's "Probabilities contain NaN")
    if not _choosable(logits):
        # argmax picked the NaN's position and numpy's choice said "Probabilities contain
        # NaN": a weight near float32's largest (3e38) overflows in the first product
        raise NoTokenToChoose("the model's logits hold NaN or +Inf, or are all -Inf, so no "
                              "token can be chosen")


def sampling_probs(logits: np.ndarray, temperature, top_k=None, top_p=None,
                   min_p=None) -> np.ndarray:
    """The probabilities choose() draws from (temperature > 0): transformers' warpers in its
    order, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper,
    then the softmax."""
    _check_choosable(logits)
    # the largest logit subtracted before the division: the same softmax, but a tiny
    # temperature (1e-320) no longer overflows the logits to Inf (Inf - Inf is NaN)
    with np.errstate(over="ignore"):  # far below the largest: -Inf, probability 0
        logits = (logits - logits.max()) / temperature
    if top_k is not None and top_k < logits.size:
        cutoff = np.sort(logits)[-top_k]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if top_p is not None and top_p < 1:
        # the most likely tokens until their probability reaches top_p, cut as transformers'
        # TopPLogitsWarper cuts (so that rounding and ties keep the same set): least likely
        # first, each token dropped while it and the tokens below it hold at most 1 - top_p,
        # the most likely always kept; of tied tokens, the lower ids go first (a stable
        # sort, as torch's is up to 16 tokens). (Summing from the top, 6 of 12 equal tokens
        # held 0.49999999999999994 < 0.5 and a 7th was kept.)
        order = np.argsort(logits, kind="stable")
        dropped = order[:-1][np.cumsum(probs[order])[:-1] <= 1 - top_p]
        probs[dropped] = 0
        probs /= probs.sum()
    if min_p:
        # MinPLogitsWarper: the tokens less likely than min_p times the likeliest dropped,
        # after top_k and top_p (the likeliest always kept: its min_tokens_to_keep, 1)
        probs[probs < min_p * probs.max()] = 0
        probs /= probs.sum()
    return probs
