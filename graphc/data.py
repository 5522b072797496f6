"""Character-level text data: vocabulary, encoding, the 90/10 split and seeded batches."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

DEFAULT_TEXT = os.path.join(os.path.dirname(__file__), "data", "tinyshakespeare.txt")


class DataError(ValueError):
    """Bad training text: missing, empty, undecodable or too short."""


@dataclass
class CharData:
    vocab: list
    train: np.ndarray
    val: np.ndarray

    @classmethod
    def from_file(cls, path: str | None, block_size: int, vocab=None) -> "CharData":
        path = path or DEFAULT_TEXT
        if not os.path.isfile(path):
            raise DataError(f"data file {path!r} does not exist")
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except UnicodeDecodeError as exc:
            raise DataError(f"data file {path!r} is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})") from None
        return cls.from_text(text, block_size, vocab, path)

    @classmethod
    def from_text(cls, text: str, block_size: int, vocab=None, source="text") -> "CharData":
        if not text:
            raise DataError(f"data file {source!r} is empty")
        vocab = sorted(set(text)) if vocab is None else list(vocab)
        index = {c: i for i, c in enumerate(vocab)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise DataError(f"{source!r} has characters outside the checkpoint's vocabulary: "
                            f"{''.join(unknown)[:20]!r}")
        ids = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        split = int(0.9 * len(ids))
        train, val = ids[:split], ids[split:]
        need = block_size + 2
        if len(train) < need or len(val) < need:
            raise DataError(f"{source!r} is too short: {len(text)} characters, but a block of "
                            f"{block_size} needs at least {need} in each of the 90/10 "
                            f"train/validation splits ({10 * need} or more in all)")
        return cls(vocab, train, val)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise DataError(f"characters not in the vocabulary: {''.join(unknown)!r}")
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def batch(self, rng: np.random.Generator, split: str, batch_size: int, block_size: int):
        data = self.train if split == "train" else self.val
        starts = rng.integers(0, len(data) - block_size - 1, batch_size)
        offsets = starts[:, None] + np.arange(block_size)
        return data[offsets], data[offsets + 1]
