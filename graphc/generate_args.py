"""Checks of the arguments of Generator.generate / stream and Sampler.generate / stream that
are not settings' values: keyword names (an unknown one is one TypeError naming it and the
close valid names, as transformers' generate names "model_kwargs not used by the model")."""
from __future__ import annotations

import difflib
import functools
import inspect

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
