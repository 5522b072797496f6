"""Text generation from a trained GPT: a thin front over graphc.generate's KV-cache plans."""
from __future__ import annotations

import reprlib

from .generate import Generator, check_sampling, keyword_only
from .generate_args import checked_keywords, is_text, text_in_rows, text_refusal


def default_prompt(vocab) -> str:
    """A newline, nanoGPT's usual start, when the text has one; otherwise the vocabulary's
    first character (a text without newlines cannot encode "\n")."""
    return "\n" if "\n" in vocab else vocab[0]


class Sampler:
    """One prompt at a time (`graphc sample`, the sample at the end of `graphc train`)."""

    def __init__(self, model, params: dict):
        self.generator = Generator(model, params)

    @checked_keywords("Sampler.generate", like="stream")
    def generate(self, prompt_ids, tokens: int, *positional, **settings) -> list:
        """stream()'s token ids as a list; every setting after `tokens` keyword-only."""
        keyword_only("Sampler.generate", positional)
        return list(self.stream(prompt_ids, tokens, **settings))

    @checked_keywords("Sampler.stream")
    def stream(self, prompt_ids, tokens: int, *positional, temperature=1.0, top_k=None,
               top_p=None, seed=0, stop_tokens=None, min_new_tokens=None,
               repetition_penalty=None, no_repeat_ngram_size=None, min_p=None,
               do_sample=None):
        """generate()'s token ids one at a time, as they are sampled (nothing is kept), up to
        and including a stop token (Generator.generate's stop_tokens: by default the model's
        end-of-text token; its min_new_tokens: none among the first that many, by default
        the model's; its repetition_penalty, no_repeat_ngram_size, min_p and do_sample, by
        default the model's); the settings are checked and the prompt run now. Every
        setting after `tokens` is keyword-only (top_p and seed came in Generator's other
        order: a positional call meant one thing to each)."""
        keyword_only("Sampler.stream", positional)
        temperature, top_k, top_p, seed = check_sampling(temperature, top_k, top_p, seed)
        # an empty prompt is the generator's to refuse (it started from token 0, whatever
        # that is), as transformers' generate refuses one without a bos_token_id
        if is_text(prompt_ids):  # (a str was its characters as ids, bytes their values)
            raise text_refusal("prompt_ids", prompt_ids, rows=False)
        try:
            prompt = list(prompt_ids)
        except TypeError:  # (an int, None, a 0-d array: a raw "'int' object is not iterable")
            raise ValueError(f"prompt_ids must be a list of token ids (one prompt), got "
                             f"{reprlib.repr(prompt_ids)}") from None
        text = next((i for i, t in enumerate(prompt) if is_text(t)), None)
        if text is not None:  # (the Generator's line would name prompts[0][i])
            raise text_refusal(f"prompt_ids[{text}]", prompt[text], rows=False)
        try:
            steps = self.generator.stream([prompt], tokens, temperature=temperature,
                                          top_k=top_k, top_p=top_p, seed=seed,
                                          stop_tokens=stop_tokens,
                                          min_new_tokens=min_new_tokens,
                                          repetition_penalty=repetition_penalty,
                                          no_repeat_ngram_size=no_repeat_ngram_size,
                                          min_p=min_p, do_sample=do_sample)
        except ValueError:
            text = text_in_rows(prompt, "prompt_ids")  # ([["hello"]], a batch of text)
            if text is not None:
                raise text from None
            raise
        return (chosen[0] for chosen in steps)
