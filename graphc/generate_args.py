"""Checks of the arguments of Generator.generate / stream and Sampler.generate / stream that
are not settings' values: keyword names (an unknown one is one TypeError naming it and the
close valid names, as transformers' generate names "model_kwargs not used by the model"),
and text where token ids go (one ValueError line saying how to get the ids)."""
from __future__ import annotations

import difflib
import functools
import inspect
import reprlib
from collections.abc import Sized

# transformers' generate's names for what graphc's keywords do, or what to call instead
TRANSFORMERS_NAMES = {
    "max_new_tokens": "transformers' max_new_tokens is graphc's tokens=",
    "max_length": "transformers' max_length (prompt included) is graphc's tokens= (new tokens "
                  "only)",
    "eos_token_id": "transformers' eos_token_id is graphc's stop_tokens=",
    "pad_token_id": "graphc pads the rows itself: no pad_token_id is needed",
    "input_ids": "the input_ids are the first argument, by position",
    "generator": "a numpy Generator goes to seed=",
    "random_state": "a numpy Generator goes to seed=",
}


def _stream_hint(qualname: str) -> str:
    owner = qualname.split(".")[0]
    return (f"{owner}.stream() gives the tokens one step at a time, as an iterator; "
            f"{owner}.generate() all of them at the end")


def unknown_keyword(qualname: str, names, unknown) -> str:
    """The line for keyword(s) `unknown` that `qualname`() (taking `names`) has not."""
    name = unknown[0]
    if name in ("stream", "streamer"):
        hint = _stream_hint(qualname)
    elif name == "attention_mask" and qualname.startswith("Sampler."):
        hint = ("Sampler takes one prompt of its own length; Generator.generate takes "
                "attention_mask with a left-padded (B, L) input_ids")
    elif name in TRANSFORMERS_NAMES:
        hint = TRANSFORMERS_NAMES[name]
    else:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = ("did you mean " + " or ".join(f"{c}=" for c in close) + "?") if close else ""
    others = f" (and {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else ""
    return (f"{qualname}() got an unexpected keyword argument {name!r}{others}"
            f"{f' ({hint})' if hint else ''}; its keywords: "
            f"{', '.join(n + '=' for n in names)}")


def _keyword_names(function) -> list[str]:
    return [n for n, p in inspect.signature(function).parameters.items() if n != "self" and
            p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def checked_keywords(qualname: str, like: str | None = None):
    """A decorator: a call with a keyword the method (or its class's method named `like`,
    which it passes its **settings on to) does not take is one TypeError line,
    unknown_keyword()'s, naming `qualname` (Python's named the inner method:
    Sampler.generate(..., stream=True) said "Sampler.stream() got an unexpected keyword
    argument 'stream'", and listed nothing)."""
    def wrap(function):
        names = None if like else _keyword_names(function)

        @functools.wraps(function)
        def checked(self, *args, **kwargs):
            nonlocal names
            if names is None:  # (`like` is defined after it in the class body)
                names = _keyword_names(getattr(type(self), like))
            unknown = [k for k in kwargs if k not in names]
            if unknown:
                raise TypeError(unknown_keyword(qualname, names, unknown))
            return function(self, *args, **kwargs)
        return checked
    return wrap


def _text_hint(rows: bool, whole: bool = False) -> str:
    encode = ("[tok.encode(text)] (a list of prompts)" if whole else
              "[tok.encode(text) for text in texts]" if rows else "tok.encode(text)")
    return (f"encode the text first with the model's tokenizer: {encode}, with tok = "
            "graphc.models.gpt2.load_tokenizer(directory) for a GPT-2 directory, or the "
            "CharData (graphc.data) a graphc checkpoint trained on")


def is_text(x) -> bool:
    """Whether x is text (a str, numpy's str_ included, or bytes) where ids go."""
    return isinstance(x, (str, bytes, bytearray))


def text_refusal(where: str, value, rows: bool, whole: bool = False) -> ValueError:
    """The error for text `value` at `where` (an argument, or an item of one; rows: the
    argument is a list of prompts, Generator's, not one prompt, Sampler's; whole: `value`
    is that whole list, one text where a list of prompts goes)."""
    kind = "bytes" if isinstance(value, (bytes, bytearray)) else "text"
    if isinstance(value, str):  # (numpy's str_ shown as the str it is)
        value = str(value)
    return ValueError(f"{where} is {kind} ({reprlib.repr(value)}), not token ids: "
                      f"{_text_hint(rows, whole)}")


def refuse_text_prompts(prompts, name: str = "prompts") -> None:
    """One ValueError line where `prompts` (a list of prompts), or one of its rows, is text:
    its ids were the characters, each "token id 'h' is not a whole number", and bytes were
    taken as ids (b"hi" as 104, 105). The rows' tokens are text_token()'s, on failure."""
    if is_text(prompts):  # (one text: "for text in texts" named a list it is not)
        raise text_refusal(name, prompts, rows=True, whole=True)
    try:
        rows = iter(prompts)
    except TypeError:
        return
    for b, row in enumerate(rows):
        if is_text(row):
            raise text_refusal(f"{name}[{b}]", row, rows=True)


def text_token(prompts, name: str = "prompts") -> ValueError | None:
    """text_refusal() for the first token of `prompts` (rows of tokens) that is text, or
    None: called once their ids are refused, so that a good call scans nothing twice."""
    for b, row in enumerate(prompts):
        for i, t in enumerate(row):
            if is_text(t):
                return text_refusal(f"{name}[{b}][{i}]", t, rows=True)
    return None


def text_in_rows(prompt, name: str) -> ValueError | None:
    """text_refusal() (one prompt's) for the first text one level down in `prompt`, one prompt
    whose items are rows ([["hello"]]: a batch where one prompt goes, that was "token id
    ['hello'] is not a whole number"), or None: called once its ids are refused."""
    for i, row in enumerate(prompt):
        if isinstance(row, Sized) and not is_text(row) and getattr(row, "ndim", 1) != 0:
            for j, t in enumerate(row):
                if is_text(t):
                    return text_refusal(f"{name}[{i}][{j}]", t, rows=False)
    return None
