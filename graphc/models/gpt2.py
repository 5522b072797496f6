"""Hugging Face GPT-2 checkpoints as graphc GPTs, and GPT-2's byte-level BPE tokenizer.

A GPT-2 directory as `save_pretrained` writes it holds `config.json`, `model.safetensors` and
(from the tokenizer's `save_pretrained`) `tokenizer.json`, or an older directory's
`vocab.json` and `merges.txt`, with `tokenizer_config.json`. The weights are read with the
`safetensors` package (no pickle), the tokenizer with `tokenizers`.

GPT-2 is graphc's GPT (graphc/models/gpt.py) under other names: `transformer.h.N` is
`blocks.N`, and its `Conv1D` layers already store their weight (in, out) and compute
x @ W + b, as graphc's Linear does, so no weight is transposed. The rest is what the GPT has:
biases, learned positions (`n_positions` is the block size), the tanh GELU (`gelu_new`),
the LM head tied to the token embedding. A separate `lm_head.weight` (an untied checkpoint)
is stored (out, in) like torch's Linear and is transposed; a tied config's file may hold a
copy of wte there (dropped), or a head that differs from it, which transformers keeps
untied, and so does graphc (with a warning).

    model, params = load_gpt2("gpt2/")          # float32, or dtype= "float64", "bfloat16",
                                                # "float16": each tensor converted once
    tokenizer = load_tokenizer("gpt2/")
    logits = build_plan(build_logits(model))(...)

Every problem with the directory is one GraphcError line naming the file and the key.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from typing import NamedTuple

import numpy as np

from ir.errors import GraphcError

from ..files import file_type
from ..generate import check_processing, whole_token_id
from .gpt import GPT, GPTConfig, model_dtype

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SHARDED_INDEX_FILE = "model.safetensors.index.json"  # save_pretrained's, past max_shard_size
TOKENIZER_FILE = "tokenizer.json"
# an older directory's tokenizer (GPT2Tokenizer's files), read when it has no tokenizer.json
VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
GENERATION_CONFIG_FILE = "generation_config.json"  # save_pretrained writes it beside config

# GPT-2's tanh-approximated GELU under the names transformers gives it
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# config.json's deepest nesting accepted (Hugging Face's are 2-3 levels deep)
CONFIG_NESTING = 16
# Buffers older checkpoints carry beside the weights (the causal mask): not parameters.
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


_SHOWN = 5  # the unused tensors named in the warning (an 11-layer surplus has 130)


class GPT2Warning(UserWarning):
    """A GPT-2 directory loaded, but not as its config.json says (graphc's own category:
    `graphc sample` prints it as its other warnings)."""


def _config_error(path, message):
    return GraphcError(f"{path}: {message}")


def _has_file(path: str) -> bool:
    """Whether the directory's file `path` is there: True for a regular file (or a link to
    one), False where nothing is; anything else there (a directory, a device, a FIFO, a
    dangling link) is one GraphcError line saying what it is, and is never read: /dev/zero
    as tokenizer_config.json was read until memory ran out, a FIFO blocked the read forever,
    a directory named config.json was "has no config.json", and one named after an optional
    file (generation_config.json) was passed over."""
    if os.path.isfile(path):
        return True
    kind = file_type(path)
    if kind is None:
        return False
    raise GraphcError(f"{path} is {kind}, not a file")


def _read_json(path: str) -> dict:
    """A config file's JSON object, or one GraphcError naming the file."""
    from ir.serialize import check_json_depth
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        # json recurses once per level (a RecursionError past ~1,000); GPT-2's is flat
        check_json_depth(text, CONFIG_NESTING, f"is not a GPT-2 {os.path.basename(path)}")
        raw = json.loads(text)
    except GraphcError as exc:
        raise _config_error(path, exc.message) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 4,300-digit integer
        raise _config_error(path, f"is not valid JSON ({exc})") from None
    except OSError as exc:  # (unreadable: "[Errno 13] ..." alone)
        raise _config_error(path, f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(raw, dict):
        raise _config_error(path, "must hold a JSON object")
    return raw


def read_config(directory: str, dtype: str = "float32") -> tuple[GPTConfig, dict]:
    """-> (the GPTConfig, the raw config.json) of a GPT-2 directory, refusing any setting
    graphc's GPT would compute differently."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise GraphcError(f"model directory {directory!r} {what} (expected a "
                          f"directory with {CONFIG_FILE} and {WEIGHTS_FILE})")
    if not _has_file(path):
        raise GraphcError(f"model directory {directory!r} has no {CONFIG_FILE}")
    raw = _read_json(path)

    def get(key, default=None, required=True, kind=int):
        if key not in raw:
            if required:
                raise _config_error(path, f"missing key {key!r}")
            return default
        value = raw[key]
        if kind is bool:
            good = isinstance(value, bool)
        elif kind is float:
            good = (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value))
        else:
            good = isinstance(value, kind) and not isinstance(value, bool)
        if not good:
            raise _config_error(path, f"key {key!r} has a bad value {value!r}")
        return value

    model_type = raw.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise _config_error(path, f"model_type is {model_type!r}; graphc loads 'gpt2' models")
    n_embd = get("n_embd")
    activation = get("activation_function", "gelu_new", required=False, kind=str)
    if activation not in _TANH_GELUS:
        raise _config_error(path, f"activation_function {activation!r} is not supported "
                            f"(graphc's GPT uses the tanh GELU: {', '.join(_TANH_GELUS)})")
    n_inner = raw.get("n_inner")
    if n_inner is not None and n_inner != 4 * n_embd:
        raise _config_error(path, f"n_inner {n_inner!r} is not supported (graphc's GPT uses "
                            f"4 * n_embd = {4 * n_embd})")
    if not get("scale_attn_weights", True, required=False, kind=bool):
        raise _config_error(path, "scale_attn_weights false is not supported")
    if get("scale_attn_by_inverse_layer_idx", False, required=False, kind=bool):
        raise _config_error(path, "scale_attn_by_inverse_layer_idx true is not supported")
    if get("add_cross_attention", False, required=False, kind=bool):
        raise _config_error(path, "add_cross_attention true is not supported")
    try:
        cfg = GPTConfig(vocab_size=get("vocab_size"), n_layer=get("n_layer"),
                        n_head=get("n_head"), n_embd=n_embd,
                        block_size=get("n_positions" if "n_positions" in raw or "n_ctx"
                                       not in raw else "n_ctx"), batch_size=1,
                        dropout=0.0, bias=True,
                        tie_weights=get("tie_word_embeddings", True, required=False, kind=bool),
                        dtype=dtype,
                        layer_norm_eps=get("layer_norm_epsilon", 1e-5, required=False,
                                           kind=float))
        cfg.validate()
    except ValueError as exc:
        raise _config_error(path, str(exc)) from None
    return cfg, raw


def _generation_settings(directory: str, config: dict) -> tuple[str, dict]:
    """(path, settings) of the file transformers' generate takes its token ids from:
    generation_config.json when the directory has one (a key missing there is unset, not
    config.json's), else config.json (`config`, already read)."""
    path = os.path.join(directory, GENERATION_CONFIG_FILE)
    if _has_file(path):
        return path, _read_json(path)
    return os.path.join(directory, CONFIG_FILE), config


def eos_token_ids(directory: str, config: dict, vocab_size: int) -> tuple[int, ...]:
    """The ids that end a generated row, as transformers' generate reads them:
    generation_config.json's eos_token_id when that file exists, else config.json's (an id,
    a list of ids, or null). Ids outside the vocabulary are left out: transformers only
    warns of them (GPT2Config's default 50256 in a small model), and none is ever generated."""
    path, config = _generation_settings(directory, config)
    value = config.get("eos_token_id")
    ids = [] if value is None else [value] if isinstance(value, int) else value
    if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise _config_error(path, f"key 'eos_token_id' has a bad value {value!r} (expected "
                            "a token id or a list of them)")
    return tuple(i for i in ids if 0 <= i < vocab_size)


def min_new_tokens(directory: str, config: dict, key: str = "min_new_tokens") -> int:
    """The directory's min_new_tokens (or `key`: min_length, the same counting the prompt's
    tokens), read from the file eos_token_ids reads (missing or null: 0): transformers'
    generate chooses no eos among a row's first that many tokens."""
    path, config = _generation_settings(directory, config)
    value = config.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _config_error(path, f"key {key!r} has a bad value {value!r} (expected a whole "
                            "number >= 0)")
    return value


def processing_settings(directory: str, config: dict) -> dict:
    """The directory's repetition_penalty, no_repeat_ngram_size, min_p and do_sample, read
    from the file eos_token_ids reads (missing or null: the GPT model's defaults, off), as
    transformers' generate applies them: a Generator's defaults. A bad value is one
    GraphcError naming the file and the key (generate.check_processing's rule)."""
    path, config = _generation_settings(directory, config)
    given = {key: config[key] for key in ("repetition_penalty", "no_repeat_ngram_size",
                                          "min_p", "do_sample") if config.get(key) is not None}
    for key, value in given.items():
        try:
            check_processing(**{key: value, {"repetition_penalty": "penalty_name",
                                             "no_repeat_ngram_size": "ngram_name",
                                             "min_p": "min_p_name",
                                             "do_sample": "do_sample_name"}[key]: f"key {key!r}"})
        except ValueError as exc:
            raise _config_error(path, str(exc)) from None
    return given


def hf_name(name: str) -> str:
    """graphc's parameter name -> GPT-2's (`blocks.0.attn.c_attn.weight` ->
    `h.0.attn.c_attn.weight`), without the `transformer.` prefix that some files add."""
    return "h." + name[len("blocks."):] if name.startswith("blocks.") else name


def load_gpt2(directory: str, dtype: str = "float32") -> tuple[GPT, dict]:
    """-> (model, parameters by name) from a Hugging Face GPT-2 directory. Every tensor's
    shape and dtype is checked against config.json before it is read; non-finite weights
    are refused. model.eos_token_ids: the directory's eos_token_id (eos_token_ids())."""
    from safetensors import SafetensorError, safe_open
    from ir.types import as_dtype
    from ..checkpoint import parameter_shapes

    dtype = model_dtype(dtype, "load_gpt2")
    cfg, raw = read_config(directory, dtype)
    eos = eos_token_ids(directory, raw, cfg.vocab_size)
    least = min_new_tokens(directory, raw)
    # transformers' min_new_tokens, when set (0 too), replaces min_length: then it has none
    has_least = _generation_settings(directory, raw)[1].get("min_new_tokens") is not None
    shortest = 0 if has_least else min_new_tokens(directory, raw, "min_length")
    processing = processing_settings(directory, raw)
    path = os.path.join(directory, WEIGHTS_FILE)
    if not _has_file(path):
        if _has_file(os.path.join(directory, SHARDED_INDEX_FILE)):
            raise GraphcError(f"model directory {directory!r} holds a sharded checkpoint "
                              f"({SHARDED_INDEX_FILE}), which graphc does not load: save it "
                              f"as one {WEIGHTS_FILE} (save_pretrained with a max_shard_size "
                              "above its size)")
        raise GraphcError(f"model directory {directory!r} has no {WEIGHTS_FILE}")
    params = {}
    try:
        with safe_open(path, framework="numpy") as f:
            stored = {}
            for key in f.keys():
                short = key[len("transformer."):] if key.startswith("transformer.") else key
                if short.endswith(_BUFFER_SUFFIXES):
                    continue
                if short in stored:  # which one transformers reads depends on the others
                    raise GraphcError(f"{path}: holds both {stored[short]!r} and {key!r} "
                                      "(one tensor under two names)")
                stored[short] = key
            # a missing tensor by the name the file would give it (its other tensors'
            # `transformer.` prefix; lm_head.weight has none), as the other messages name
            # the stored key: 'h.1.mlp.c_fc.bias' was said of a file of 'transformer.h...'
            prefix = "transformer." if any(k.startswith("transformer.")
                                           for k in stored.values()) else ""

            def full(short):
                return short if short == "lm_head.weight" else prefix + short
            # config.json's n_layer against the layers the file has, before a name is made
            # for each of its tensors (n_layer 10**9 would be 12 billion names)
            layers = {k.split(".")[1] for k in stored if k.startswith("h.")}
            if cfg.n_layer > len(layers):
                absent = next(i for i in range(cfg.n_layer) if str(i) not in layers)
                raise GraphcError(f"{path}: missing tensor {full(f'h.{absent}.ln_1.weight')!r} "
                                  f"({CONFIG_FILE} declares {cfg.n_layer} layers)")
            wanted = parameter_shapes(cfg)
            expected = {hf_name(n) for n in wanted}
            # a tied config's lm_head.weight is read after wte: a copy of it is dropped, a
            # different head is kept untied (as transformers does)
            head_key = stored.pop("lm_head.weight", None) if cfg.tie_weights else None
            if head_key is not None and "wte.weight" not in stored:
                # the shared matrix under the head's name only (safetensors' save_model
                # keeps one name per shared tensor): transformers ties wte to it
                stored["wte.weight"], head_key = head_key, None
            # in the model's order: h.2's first tensor, not h.10's (as strings sort)
            missing = [hf_name(n) for n in wanted if hf_name(n) not in stored]
            unexpected = sorted(set(stored) - expected)
            if missing:
                declared = (f" ({CONFIG_FILE} declares {cfg.n_layer} layers)"
                          if missing[0].startswith("h.") else "")
                raise GraphcError(f"{path}: missing tensor {full(missing[0])!r}{declared}")
            if unexpected:
                # loaded without them, as transformers' GPT2LMHeadModel.from_pretrained loads
                # a GPT2ForSequenceClassification's file (score.weight) and warns of its
                # unused weights; they were refused (unread: their dtype and values unchecked)
                names = sorted(stored[k] for k in unexpected)
                shown = ", ".join(map(repr, names[:_SHOWN]))
                more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
                warnings.warn(f"{path}: tensors not part of a GPT-2 with {CONFIG_FILE}'s "
                              f"settings, not loaded (as transformers' GPT2LMHeadModel leaves "
                              f"them): {shown}{more}", GPT2Warning, stacklevel=2)

            def read(name, shape, key):
                # torch's Linear stores (out, in); graphc's Linear and GPT-2's Conv1D (in, out)
                transposed = name == "lm_head.weight"
                want = shape[::-1] if transposed else shape
                got = tuple(f.get_slice(key).get_shape())
                if got != tuple(want):
                    raise GraphcError(f"{path}: tensor {key!r} has shape {list(got)}, "
                                      f"{CONFIG_FILE} implies {list(want)}")
                kind = f.get_slice(key).get_dtype()
                # BF16 comes as ml_dtypes' bfloat16 and is upcast below, exactly, as
                # transformers does with torch_dtype=float32
                if kind not in ("F16", "BF16", "F32", "F64"):
                    raise GraphcError(f"{path}: tensor {key!r} has dtype {kind}; graphc reads "
                                      "F16, BF16, F32 and F64 weights")
                value = f.get_tensor(key)
                if not np.isfinite(value).all():
                    raise GraphcError(f"{path}: tensor {key!r} holds non-finite values")
                with np.errstate(over="ignore"):  # 1e300 in F64 is inf in float32
                    value = np.ascontiguousarray(value.T if transposed else value,
                                                 dtype=as_dtype(dtype))
                if not np.isfinite(value).all():
                    raise GraphcError(f"{path}: tensor {key!r} holds values too large for "
                                      f"{dtype}")
                return value

            for name, shape in wanted.items():
                params[name] = read(name, shape, stored[hf_name(name)])
            if head_key is not None:
                head = read("lm_head.weight", wanted["wte.weight"][::-1], head_key)
                if not np.array_equal(head.T, params["wte.weight"]):
                    # the config is wrong about this file: transformers keeps both and warns
                    # (at load_gpt2's caller: graphc/models counts as user code to
                    # user_stacklevel, as a model a user writes would)
                    warnings.warn(f"{path}: {CONFIG_FILE} ties the LM head to wte.weight, but "
                                  f"{head_key!r} differs from it: loaded untied, as "
                                  "transformers does (set tie_word_embeddings false)",
                                  GPT2Warning, stacklevel=2)
                    cfg.tie_weights = False
                    params["lm_head.weight"] = head
    except SafetensorError as exc:
        raise GraphcError(f"{path} is not a readable safetensors file "
                          f"({str(exc).splitlines()[0]})") from None
    model = GPT(cfg)
    model.load_state_dict(params)
    model.eos_token_ids = eos  # where a Generator stops each row, unless told otherwise
    model.min_new_tokens = least  # and how many tokens each row has before it may stop
    model.min_length = shortest  # (the same, prompt included)
    for key, value in processing.items():  # (a Generator's defaults)
        setattr(model, key, value)
    return model, params


class Tokenizer:
    """GPT-2's byte-level BPE from a `tokenizer.json` (the `tokenizers` package): any text
    encodes, and decoding the ids gives the text back. A vocabulary lacking some of the 256
    byte symbols (a BPE trained without `initial_alphabet`) and with no unknown token cannot
    encode a character made of those bytes: `tokenizers` (and so transformers) leaves it out
    of the ids without a trace, and encode refuses such a text instead, naming it."""

    def __init__(self, path: str, add_prefix_space: bool | None = None, added_tokens=None,
                 wrap=((), ())):
        """path: a tokenizer.json, or a vocab.json with its merges.txt beside it (built as
        transformers' GPT2Tokenizer builds one);
        add_prefix_space: tokenizer_config.json's, for a byte-level BPE read as transformers'
        GPT2Tokenizer reads it (_as_gpt2_tokenizer: GPT-2's ByteLevel pre-tokenizer with this
        add_prefix_space whatever tokenizer.json says, no normalizer, GPT2Tokenizer's own BPE
        settings, and tokenizer.json's added tokens only as `added_tokens` lists them), or None:
        the file as it is, as transformers' generic TokenizersBackend reads a tokenizer.json;
        added_tokens: the directory's added and special tokens (_AddedTokens), added as
        transformers adds them (None: the file's own only);
        wrap: (tokens before, tokens after) a text encoded with its special tokens (an older
        directory's add_bos_token and add_eos_token)."""
        # (what is there instead of a file is named, never read: a FIFO would block the read,
        # a directory fail in Rust, and a dangling link was "no tokenizer at")
        if not _has_file(path):
            raise GraphcError(f"no tokenizer at {path!r} (a GPT-2 directory needs "
                              f"{TOKENIZER_FILE}, or {VOCAB_FILE} and {MERGES_FILE})")
        try:
            in_file = {}  # tokenizer.json's added tokens by id
            if os.path.basename(path) == VOCAB_FILE:
                self._tok = _from_vocab_and_merges(path, bool(add_prefix_space))
            else:
                self._tok = _from_json(path)
                in_file = self._tok.get_added_tokens_decoder()
                # (GPT2Tokenizer rebuilds a BPE's vocabulary and merges whatever the file's
                # pre-tokenizer: Whitespace, Metaspace, none)
                kind = type(self._tok.model).__name__
                if add_prefix_space is not None and kind != "BPE":
                    # (GPT2Tokenizer rebuilds a byte-level BPE from the file's vocabulary
                    # and merges; a WordPiece or Unigram file has none, and was read as it
                    # is, its ids not GPT2Tokenizer's)
                    raise GraphcError(
                        f"{path}: its model is {kind}, but the directory's tokenizer is "
                        "GPT2Tokenizer (no generic tokenizer_class in "
                        f"{TOKENIZER_CONFIG_FILE}), which reads a BPE; set tokenizer_class to "
                        f"{GENERIC_TOKENIZER_CLASSES[0]!r} to read the file as it is")
                if add_prefix_space is not None:
                    self._tok = _as_gpt2_tokenizer(self._tok, add_prefix_space)
            if added_tokens is not None:
                present = [t.content for t in self._tok.get_added_tokens_decoder().values()]
                self._tok.add_tokens(added_tokens.in_order(present, in_file))
            if any(wrap):
                self._tok.post_processor = _template(self._tok, *wrap)
        except GraphcError:
            raise
        except Exception as exc:  # the Rust library raises plain Exceptions
            raise GraphcError(f"{path} is not a readable tokenizer "
                              f"({str(exc).splitlines()[0]})") from None
        self.path = path
        self._wrap = wrap  # (encode's refusal of a token past vocab_size names its flag)
        # the model's vocab_size (load_tokenizer's): encode refuses a text with an added
        # token past it, one the model's embeddings lack (None: any id)
        self.model_vocab_size = None
        # a file saved with truncation or padding on (a training pipeline's) would cut or
        # pad every prompt; transformers' tokenizers turn both off unless a call asks
        self._tok.no_truncation()
        self._tok.no_padding()
        model = self._tok.model
        if type(model).__name__ == "BPE" and model.dropout:
            # (transformers reads such a file as it is, and its ids differ from call to call)
            raise GraphcError(f"{path}: its BPE's dropout {model.dropout} makes the ids of a "
                              "text random; graphc encodes a text one way (save it with "
                              "dropout null)")
        # the symbols a BPE without an unknown token (or byte fallback) can start a word
        # from: one outside them is dropped. (None: a model that never drops one, or a BPE
        # whose symbols are more than a pre-tokenized character, which is not checked.)
        drops = (type(model).__name__ == "BPE" and not model.unk_token
                 and not model.byte_fallback and not model.continuing_subword_prefix
                 and not model.end_of_word_suffix)
        self._symbols = set(self._tok.get_vocab(with_added_tokens=False)) if drops else None
        # a byte-level pre-tokenizer gives only the 256 byte symbols: a vocabulary with all of
        # them (GPT-2's) drops nothing, and its texts skip the check (it doubled encode's time)
        if self._symbols is not None and _is_byte_level(
                (_pre_tokenizer_steps(self._tok.pre_tokenizer) or [None])[-1]):
            from tokenizers.pre_tokenizers import ByteLevel
            if self._symbols.issuperset(ByteLevel.alphabet()):
                self._symbols = None
        # added tokens (<|endoftext|>) are matched in the text before it is pre-tokenized
        self._added = [t.content for t in self._tok.get_added_tokens_decoder().values()
                       if t.content]

    @contextlib.contextmanager
    def _errors(self, what: str):
        """The Rust library's failures (plain Exceptions, or a PanicException, which
        derives from BaseException) as one GraphcError naming the file."""
        try:
            yield
        except GraphcError:
            raise
        except BaseException as exc:  # noqa: B036 - pyo3's PanicException is no Exception
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise  # (Ctrl-C, a signal's own exception, SystemExit)
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise GraphcError(f"{self.path} cannot {what} ({first})"[:300]) from None

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def highest_id(self, with_added_tokens: bool = True) -> tuple[str | None, int]:
        """(token, id) of the largest id, added tokens included unless with_added_tokens is
        False ((None, -1) if none)."""
        vocab = self._tok.get_vocab(with_added_tokens=with_added_tokens)
        token = max(vocab, key=vocab.get, default=None)
        return token, (-1 if token is None else vocab[token])

    @property
    def special_tokens_added(self) -> int:
        """How many ids encode(..., add_special_tokens=True) adds to a text's own."""
        return self._tok.num_special_tokens_to_add(False)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The text's ids; add_special_tokens: with those the tokenizer's post-processor puts
        around them (an older directory's add_bos_token), as transformers'
        `tokenizer(text)` gives them."""
        # (the Rust library's own words for these were "TextInputSequence must be str")
        if not isinstance(text, str):
            raise GraphcError(f"{self.path} encodes a str, not {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate (surrogateescape's, a JSON \ud800)
            raise GraphcError(f"{self.path} cannot encode the text: character {exc.start} is "
                              f"{text[exc.start]!r}, a lone surrogate, not Unicode text") from None
        with self._errors("encode the text"):
            ids = self._tok.encode(text, add_special_tokens=add_special_tokens).ids
            lost = self.unencodable(text)
        if lost:
            raise GraphcError(f"{self.path} has no token for {lost[:20]!r}: its vocabulary "
                              "lacks their bytes and has no unknown token, so they would be "
                              "left out of the ids")
        limit = self.model_vocab_size
        past = [i for i in ids if limit is not None and i >= limit]
        if past:  # (an added token never resized into the embeddings: an added <pad>)
            token = self._tok.id_to_token(past[0])
            flag = next((flag for flag, tokens in zip(("add_bos_token", "add_eos_token"),
                                                      self._wrap) if token in tokens), None)
            if add_special_tokens and flag:  # (not the text's own: the flag put it there)
                config = os.path.join(os.path.dirname(self.path), TOKENIZER_CONFIG_FILE)
                raise GraphcError(f"{config}: {flag} adds {token!r} to each text, id "
                                  f"{past[0]}, outside the model's vocab_size {limit} in "
                                  f"{CONFIG_FILE} (its embeddings lack it); set {flag} to "
                                  "false, or give a token the model has")
            raise GraphcError(f"{self.path}: the text encodes to the added token {token!r}, "
                              f"id {past[0]}, outside the model's vocab_size {limit} in "
                              f"{CONFIG_FILE} (its embeddings lack it)")
        return ids

    def unencodable(self, text: str) -> str:
        """The characters of `text` (each once) that encode would leave out: those whose
        normalised, pre-tokenized symbols (for GPT-2, a byte each) are not in the
        vocabulary of a BPE that drops unknown symbols."""
        if self._symbols is None:
            return ""
        # the parts between added tokens, each normalised on its own, as tokenizers does
        parts = [text]
        for token in self._added:
            parts = [p for part in parts for p in part.split(token)]
        normalizer, pre_tokenizer = self._tok.normalizer, self._tok.pre_tokenizer

        def known(s):
            s = normalizer.normalize_str(s) if normalizer is not None else s
            pieces = pre_tokenizer.pre_tokenize_str(s) if pre_tokenizer is not None else [(s, 0)]
            return all(c in self._symbols for piece, _ in pieces for c in piece)
        bad = [part for part in parts if part and not known(part)]
        if not bad:  # (the common case, in one pass)
            return ""
        lost = "".join(c for c in dict.fromkeys("".join(bad)) if not known(c))
        if lost:
            return lost
        # no character is lost alone, only with its neighbours (NFC composes e and U+0301
        # into an é whose bytes the vocabulary lacks): the first short run that is lost
        for part in bad:
            for size in range(2, 5):
                for start in range(len(part) - size + 1):
                    if not known(part[start:start + size]):
                        return part[start:start + size]
        return bad[0]

    def decode(self, ids) -> str:
        ids = [whole_token_id(i) for i in ids]
        with self._errors("decode the ids"):
            return self._tok.decode(ids, skip_special_tokens=False)

    def decode_stream(self, ids):
        """decode(ids)'s text in pieces as the ids come, none of them kept: a character whose
        UTF-8 bytes span several tokens comes out whole, with the token that ends it."""
        try:
            from tokenizers.decoders import DecodeStream  # tokenizers 0.21 and later
        except ImportError:
            DecodeStream = None
        stream = DecodeStream(skip_special_tokens=False) if DecodeStream is not None else None
        pending = []  # the ids since the last whole character
        for i in ids:
            pending.append(whole_token_id(i))
            if stream is not None:
                with self._errors("decode the ids"):
                    piece = stream.step(self._tok, pending[-1])
            else:  # decode the ids since the last piece, until no character is cut short
                piece = self.decode(pending)
                piece = None if piece.endswith("\ufffd") else piece
            if piece:
                yield piece
                pending = []
        # a character cut short by the end: decode's U+FFFD, which the stream holds back
        text = self.decode(pending) if pending else ""
        if text:
            yield text

    def token_id(self, token: str):
        return self._tok.token_to_id(token)


def _from_json(path: str):
    from tokenizers import Tokenizer as HFTokenizer
    return HFTokenizer.from_file(path)


def _from_vocab_and_merges(vocab_path: str, add_prefix_space: bool):
    """GPT-2's byte-level BPE from vocab.json and the merges.txt beside it, as transformers'
    GPT2Tokenizer builds it (no dropout, no word prefix or suffix, no unknown token), with
    tokenizer_config.json's add_prefix_space."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers
    merges = os.path.join(os.path.dirname(vocab_path), MERGES_FILE)
    if not _has_file(merges):
        raise GraphcError(f"{vocab_path} has no {MERGES_FILE} beside it (a GPT-2 directory "
                          f"needs {TOKENIZER_FILE}, or {VOCAB_FILE} and {MERGES_FILE})")
    try:
        bpe = models.BPE.from_file(vocab_path, merges, continuing_subword_prefix="",
                                   end_of_word_suffix="", fuse_unk=False)
    except Exception as exc:  # (the Rust library's words name neither file)
        raise GraphcError(f"{vocab_path} and {MERGES_FILE} beside it are not a readable "
                          f"tokenizer ({str(exc).splitlines()[0]})") from None
    tok = HFTokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    return tok


def _as_gpt2_tokenizer(tok, add_prefix_space: bool):
    """A tokenizer.json's tokenizer as transformers' GPT2Tokenizer rebuilds it: the file's
    model (vocabulary and merges) and post-processor, with GPT2Tokenizer's own BPE settings
    (the file's dropout, unknown token, byte_fallback and ignore_merges are dropped), no
    normalizer, GPT-2's ByteLevel pre-tokenizer (with `add_prefix_space`) and decoder, and
    none of the file's added tokens (transformers adds them again from tokenizer_config.json's
    list, or the file's when that has none: _AddedTokens)."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, pre_tokenizers
    model = tok.model  # (a BPE)
    model.dropout = model.unk_token = None
    model.continuing_subword_prefix = model.end_of_word_suffix = ""
    model.fuse_unk = model.byte_fallback = model.ignore_merges = False
    rebuilt = HFTokenizer(model)  # (no normalizer, no added tokens)
    rebuilt.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space,
                                                     use_regex=True)
    rebuilt.decoder = decoders.ByteLevel()
    rebuilt.post_processor = tok.post_processor
    return rebuilt


def _template(tok, before, after):
    """The post-processor transformers' GPT2Tokenizer gives an older directory with
    add_bos_token (`before`: its bos token) or add_eos_token (`after`: its eos token)."""
    from tokenizers import processors
    tokens = [*before, *after]
    single = " ".join([*(f"{t}:0" for t in before), "$A:0", *(f"{t}:0" for t in after)])
    return processors.TemplateProcessing(
        single=single, special_tokens=[(t, tok.token_to_id(t)) for t in dict.fromkeys(tokens)])


# tokenizer classes that transformers' AutoTokenizer reads a tokenizer.json with as it is
# (TokenizersBackend, what PreTrainedTokenizerFast.save_pretrained names), not as GPT2Tokenizer
GENERIC_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")
EOT = "<|endoftext|>"  # GPT2Tokenizer's bos, eos and unk token unless the directory says
# transformers' named special tokens, in the order it adds those the tokenizer lacks
NAMED_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                "mask_token")
# an AddedToken's fields as transformers saves one (with "__type": "AddedToken" in
# tokenizer_config.json's special tokens)
_ADDED_TOKEN_FIELDS = {"content": str, "single_word": bool, "lstrip": bool, "rstrip": bool,
                       "normalized": bool, "special": bool}
# files of older transformers that an older directory may still have beside its
# tokenizer_config.json (read, as transformers reads them, when it has no added_tokens_decoder)
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"


def _added_token(path: str, key: str, value: dict, **forced):
    """tokenizers' AddedToken of its JSON object in `path` ({"content": "<s>", "lstrip": true,
    ...}) with `forced` fields, or one GraphcError naming the file and the key."""
    from tokenizers import AddedToken
    fields = {name: v for name, v in value.items() if name != "__type"}
    for name, v in fields.items():
        kind = _ADDED_TOKEN_FIELDS.get(name)
        if kind is None:
            raise _config_error(path, f"{key} has a field {name!r} that no AddedToken has "
                                f"(it has {', '.join(_ADDED_TOKEN_FIELDS)})")
        if not isinstance(v, kind):
            raise _config_error(path, f"{key}'s {name} must be "
                                f"{'a string' if kind is str else 'true or false'}, got {v!r}")
    if "content" not in fields:
        raise _config_error(path, f"{key} has no content")
    return AddedToken(**{**fields, **forced})


def _token_value(path: str, key: str, value, **forced):
    """A special token's value in `path` (a string, an AddedToken's object, or null: None)."""
    if isinstance(value, dict):
        return _added_token(path, key, value, **forced)
    if value is not None and not isinstance(value, str):
        raise _config_error(path, f"{key} must be a string, got {value!r}")
    return value


class _AddedTokens(NamedTuple):
    """A directory's added and special tokens as transformers reads them.
    listed: {id: AddedToken} of tokenizer_config.json's added_tokens_decoder, or (None) an
    older directory's added_tokens.json and tokenizer.json's added tokens (`legacy`, then
    the file's, by id); named: [(key, str | AddedToken)] of bos_token, eos_token, ... and its
    other `*_token` keys; extra: [str | AddedToken] of extra_special_tokens."""
    listed: dict | None
    legacy: dict
    named: list
    extra: list

    def in_order(self, present, in_file: dict) -> list:
        """The AddedTokens to add to a tokenizer that already has the added tokens
        `present` (their contents) and whose tokenizer.json had `in_file` ({id: AddedToken}),
        in the order, and with the special flags, transformers' TokenizersBackend adds them:
        the listed ones by id, then each named and extra one the tokenizer lacks. (It
        marks the named ones' AddedTokens special, as transformers does: once per tokenizer.)"""
        from tokenizers import AddedToken
        if self.listed is not None:
            listed, by_content = self.listed, self.listed.values()
        else:  # (a later one of the same id, or content, replaces an earlier)
            listed, by_content = {**self.legacy, **in_file}, [*self.legacy.values(),
                                                              *in_file.values()]
        by_content = {str(t): t for t in by_content}
        adding = [listed[i] for i in sorted(listed)]
        known = [*present, *(str(t) for t in adding)]
        # a named token of a listed one's content is that token (even one whose id a later
        # one took); a str and an AddedToken of the same content are both added, the
        # latter's fields win
        named = [by_content.get(str(t), t) if key in NAMED_TOKENS else t
                 for key, t in self.named]
        for token in (*named, *self.extra):
            if str(token) not in known and token not in adding:
                adding.append(token)
        names = {str(t) for t in named}
        for token in adding:
            # (set on the token itself: its normalized, unless given, follows special, which
            # a copy would fix at the old value)
            if not isinstance(token, str) and str(token) in names:
                token.special = True
        return [AddedToken(t, special=True) if isinstance(t, str) else t for t in adding]


class TokenizerSettings(NamedTuple):
    """What a directory's tokenizer_config.json (and older files) set, for Tokenizer."""
    add_prefix_space: bool | None  # None: a generic class, the tokenizer.json as it is
    added_tokens: _AddedTokens
    wrap: tuple  # (tokens before, tokens after) a text encoded with its special tokens


def _tokenizer_settings(directory: str, from_json: bool = False) -> TokenizerSettings:
    """tokenizer_config.json read as transformers reads it for GPT2Tokenizer (add_prefix_space
    false by default; <|endoftext|> its bos, eos and unk token by default) or, for a
    tokenizer.json (from_json) whose tokenizer_class (tokenizer_config.json's, else
    config.json's) is a generic one, as TokenizersBackend reads it (the file as it is,
    add_prefix_space None, no default special tokens): its added_tokens_decoder, its special
    tokens (bos, eos, unk, sep, pad, cls, mask and any other `*_token`, a string or an
    AddedToken's object each), extra_special_tokens (additional_special_tokens), and for an
    older directory (vocab.json and merges.txt) add_bos_token and add_eos_token. With no
    added_tokens_decoder, special_tokens_map.json's tokens replace its own and
    added_tokens.json lists the added ones, as in transformers. Its other keys change
    nothing graphc's ids depend on."""
    path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    raw = _read_json(path) if _has_file(path) else {}
    prefix = raw.get("add_prefix_space", False)
    if not isinstance(prefix, bool):
        raise _config_error(path, f"add_prefix_space must be true or false, got {prefix!r}")
    generic = False
    if from_json:
        cls = raw.get("tokenizer_class")
        config = os.path.join(directory, CONFIG_FILE)
        if cls is None and _has_file(config):
            cls = _read_json(config).get("tokenizer_class")
        generic = cls in GENERIC_TOKENIZER_CLASSES
    # each special token's (file, value): GPT2Tokenizer's defaults (no file), then
    # tokenizer_config.json's, then (an older directory's) special_tokens_map.json's
    values = {} if generic else dict.fromkeys(NAMED_TOKENS[:3], (None, EOT))
    values.update((key, (path, value)) for key, value in raw.items() if _is_token_key(key, value))
    # extra_special_tokens: (file, value) each; additional_special_tokens (transformers 4's
    # name) when it has none
    extra_key = ("additional_special_tokens" if "additional_special_tokens" in raw
                 and not raw.get("extra_special_tokens") else "extra_special_tokens")
    extra = _token_list(path, extra_key, raw.get(extra_key))
    listed, legacy, later = raw.get("added_tokens_decoder"), {}, set()
    if listed is not None:
        listed = _listed_tokens(path, listed)
    else:
        legacy, extra = _older_files(directory, values, extra, later)
    tokens = {}
    for key, (where, value) in values.items():
        # (special_tokens_map.json's objects are special; in tokenizer_config.json, only an
        # object with "__type" is a token, but a named one's without is read as before)
        if where != path and isinstance(value, dict):
            tokens[key] = _added_token(where, key, value, special=True)
        elif key in NAMED_TOKENS or not isinstance(value, dict) or "__type" in value:
            tokens[key] = _token_value(where, key, value)

    def rank(key):  # the named ones, then other keys' AddedTokens (and the map's), strings
        if key in NAMED_TOKENS:
            return 0, NAMED_TOKENS.index(key)
        return 1 + (key not in later and isinstance(tokens[key], str)
                    and values[key][0] == path), 0
    named = [(key, tokens[key]) for key in sorted(tokens, key=rank)]
    extra = [_token_value(where, f"{extra_key}[{i}]", v,
                          **({"special": True} if where != path and isinstance(v, dict)
                             else {})) for i, (where, v) in enumerate(extra or ())]
    if isinstance(raw.get(extra_key), dict):  # (named ones, after the other keys' strings)
        named += [(k, _token_value(path, f"{extra_key}[{k!r}]", v))
                  for k, v in raw[extra_key].items()]
    wrap = ((), ())
    if not from_json:  # (transformers ignores them beside a tokenizer.json)
        for key in ("add_bos_token", "add_eos_token"):
            if not isinstance(raw.get(key, False), bool):
                raise _config_error(path, f"{key} must be true or false, got {raw[key]!r}")
        wrap = tuple(() if not raw.get(flag) or tokens.get(key) is None
                     else (str(tokens[key]),)
                     for flag, key in (("add_bos_token", "bos_token"),
                                       ("add_eos_token", "eos_token")))
    return TokenizerSettings(None if generic else prefix,
                             _AddedTokens(listed, legacy, [(k, t) for k, t in named if t],
                                          [t for t in extra if t]), wrap)


def _listed_tokens(path: str, listed) -> dict:
    """tokenizer_config.json's added_tokens_decoder as {id: AddedToken}."""
    if not isinstance(listed, dict):
        raise _config_error(path, f"added_tokens_decoder must be an object of token ids, "
                            f"got {listed!r}"[:200])
    tokens = {}
    for i, value in listed.items():
        key = f"added_tokens_decoder[{i!r}]"
        if not i.isdigit() or not isinstance(value, dict):
            raise _config_error(path, f"{key} must be a token id and an AddedToken's object")
        tokens[int(i)] = _added_token(path, key, value)
    return tokens


def _older_files(directory: str, values: dict, extra, later: set):
    """-> ({id: AddedToken} of added_tokens.json, the extra special tokens) of a directory
    whose tokenizer_config.json has no added_tokens_decoder, as transformers reads older
    transformers' files: special_tokens_map.json's special tokens replace `values`' (those
    of tokenizer_config.json, by key: (file, value); `later`: the keys whose
    tokenizer_config.json string stays but is ranked as the map's), and its
    extra_special_tokens join `extra` (its additional_special_tokens are them without)."""
    path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    special_map = os.path.join(directory, SPECIAL_TOKENS_MAP_FILE)
    mapped = _read_json(special_map) if _has_file(special_map) else {}
    for key, value in mapped.items():
        if key not in NAMED_TOKENS and key in values and isinstance(values[key][1], str):
            values[key] = values.pop(key)
            later.add(key)
        elif _is_token_key(key, value) or key in values:
            values[key] = (special_map, value)
    more = _token_list(special_map, "extra_special_tokens", mapped.get("extra_special_tokens"))
    if more is not None:
        extra = (extra or []) + [t for t in more if t not in (extra or [])]
    elif extra is None:
        extra = _token_list(special_map, "additional_special_tokens",
                            mapped.get("additional_special_tokens"))
    # added_tokens.json's are special if a named or extra special token is theirs, as
    # transformers compares them (not yet as AddedTokens: tokenizer_config.json's objects
    # never are); GPT2Tokenizer's defaults (no file) are not among them
    specials = {v if isinstance(v, str) else v.get("content")
                for key, (where, v) in values.items() if key in NAMED_TOKENS
                and where is not None and v
                and (isinstance(v, str) or where != path and isinstance(v, dict))}
    specials.update(v if isinstance(v, str) else v.get("content") for where, v in (extra or ())
                    if isinstance(v, str) or where != path and isinstance(v, dict))
    added = os.path.join(directory, ADDED_TOKENS_FILE)
    legacy = {}
    for token, i in (_read_json(added) if _has_file(added) else {}).items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise _config_error(added, f"{token!r} must have a token id, got {i!r}")
        legacy[i] = _added_token(added, repr(token), {"content": token},
                                 normalized=token not in specials, special=token in specials)
    return legacy, extra


def _token_list(path: str, key: str, value) -> list | None:
    """A list of tokens in `path` as (path, value) pairs (None: no list there; an object of
    named ones is read with the other `*_token` keys)."""
    if value is None or isinstance(value, dict):
        return None
    if not isinstance(value, list):
        raise _config_error(path, f"{key} must be a list of tokens, got {value!r}"[:200])
    return [(path, v) for v in value]


def _is_token_key(key: str, value) -> bool:
    """Whether tokenizer_config.json's `key` names a special token, as transformers reads it:
    a named one's (bos_token, ...), or any other `*_token` holding a token (a string or an
    object; add_bos_token's true is none)."""
    return key in NAMED_TOKENS or key.endswith("_token") and isinstance(value, (str, dict))


def _pre_tokenizer_steps(pre_tokenizer) -> list:
    """The steps of a tokenizers pre-tokenizer in order: a Sequence's own (nested ones'
    too) in its place, an empty Sequence as a step of its own (None: none)."""
    if type(pre_tokenizer).__name__ != "Sequence":
        return [] if pre_tokenizer is None else [pre_tokenizer]
    steps, i = [], 0
    while True:
        try:
            step, i = pre_tokenizer[i], i + 1
        except IndexError:
            break
        steps += _pre_tokenizer_steps(step)
    return steps or [pre_tokenizer]


def _is_byte_level(step) -> bool:
    """Whether a pre-tokenizer step is ByteLevel, whose symbols are the 256 byte symbols."""
    return type(step).__name__ == "ByteLevel"


def load_tokenizer(directory: str, vocab_size: int | None = None) -> Tokenizer:
    """The directory's tokenizer.json (or, without one, its vocab.json and merges.txt, as
    transformers reads an older directory) with tokenizer_config.json's settings; with
    vocab_size, check that its own vocabulary fits the model. An added token past it (a
    pad_token never resized into the embeddings) loads, as in transformers, and encode
    refuses a text that has it, naming it."""
    path = os.path.join(directory, TOKENIZER_FILE)
    if not os.path.lexists(path) and os.path.lexists(os.path.join(directory, VOCAB_FILE)):
        path = os.path.join(directory, VOCAB_FILE)
    tokenizer = Tokenizer(path, *_tokenizer_settings(
        directory, from_json=os.path.basename(path) == TOKENIZER_FILE))
    if vocab_size is not None:
        count = tokenizer._tok.get_vocab_size(with_added_tokens=False)
        if count > vocab_size:
            raise GraphcError(f"{path}: the tokenizer has {count} tokens, more than the "
                              f"model's vocab_size {vocab_size} in {CONFIG_FILE}")
        # the count is no bound on the ids: a vocabulary may skip some (ids 0-298 and 5000)
        token, top = tokenizer.highest_id(with_added_tokens=False)
        if top >= vocab_size:
            raise GraphcError(f"{path}: the tokenizer's token {token!r} has id {top}, outside "
                              f"the model's vocab_size {vocab_size} in {CONFIG_FILE}")
        tokenizer.model_vocab_size = vocab_size
    return tokenizer


def start_token(directory: str, vocab_size: int) -> int:
    """The bos_token_id (GPT-2's <|endoftext|>) an empty prompt starts from, read as
    transformers' generate reads it: from generation_config.json when the directory has
    that file, else from config.json. Without one (missing or null), or with one outside the
    vocabulary, there is no token to start from: one GraphcError naming the file, as
    transformers refuses generate() without input_ids and a bos_token_id."""
    _, raw = read_config(directory)
    path, settings = _generation_settings(directory, raw)
    bos = settings.get("bos_token_id")
    if not (isinstance(bos, int) and not isinstance(bos, bool) and 0 <= bos < vocab_size):
        raise _config_error(path, f"no usable bos_token_id to start an empty prompt from "
                            f"(got {bos!r}; the vocabulary is 0 to {vocab_size - 1})")
    return bos
