"""Character-level text data: vocabulary, encoding, the 90/10 split and seeded batches."""
from __future__ import annotations

import codecs
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ir import settings
from ir.types import is_int

DEFAULT_TEXT = os.path.join(os.path.dirname(__file__), "data", "tinyshakespeare.txt")


class DataError(ValueError):
    """Bad training text: missing, empty, undecodable, too short, or changed while read."""


# The splits' names: the text's first 90% and its last 10%.
SPLITS = ("train", "val")

# The corpus is read in pieces of this many bytes (a piece costs ~7 times its size while it is
# encoded), twice: once for its vocabulary and length, once to write its token ids.
CHUNK_BYTES = 4 << 20


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every token id (nanoGPT's train.bin uses uint16)."""
    return np.dtype(np.uint8 if vocab_size <= 1 << 8 else
                    np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def _pieces(path):
    """The file's text in pieces, decoded exactly as open(path, encoding="utf-8-sig").read()
    decodes it (universal newlines; a byte order mark at its start dropped, which "utf-8"
    kept as a character, U+FEFF, of the vocabulary), without holding the whole text in
    memory. (The BOM is dropped from the first piece rather than by "utf-8-sig"'s decoder,
    whose error positions leave its three bytes out.)"""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    decoder = io.IncrementalNewlineDecoder(utf8, translate=True)
    consumed, first = 0, True
    try:
        fh = open(path, "rb")
    except OSError as exc:  # its own message does not say which file it was
        raise DataError(f"cannot read data file {path!r}: {exc.strerror or exc}") from None
    with fh:
        while True:
            raw = fh.read(CHUNK_BYTES)
            pending = len(utf8.getstate()[0])
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise DataError(f"data file {path!r} is not UTF-8 text ({exc.reason} at byte "
                                f"{consumed - pending + exc.start})") from None
            consumed += len(raw)
            if text and first:
                text, first = text.removeprefix(BOM), False
            if text:
                yield text
            if not raw:
                return


BOM = "\ufeff"  # a byte order mark, as a text holds it once decoded


def universal_newlines(text: str) -> str:
    """text with its \r\n and lone \r read as \n, as _pieces reads a data file."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def as_read(text: str) -> str:
    """A text as from_file reads the same characters saved to a file: a byte order mark at
    its start dropped, its line ends read as \n (text mode's universal newlines)."""
    return universal_newlines(text.removeprefix(BOM))


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class _Encoder:
    """Characters -> token ids through a table indexed by code point. A character outside
    the vocabulary is no id: __call__ returns None for a text holding one (from_file's
    second read of a file changed since its first, which found the vocabulary; the table's
    0 made it the first character's id, and a code point past the table an IndexError)."""

    def __init__(self, vocab):
        codes = _code_points("".join(vocab)).astype(np.int64)
        size = int(codes.max()) + 1 if len(codes) else 1
        self.table = np.zeros(size, token_dtype(len(vocab)))
        self.table[codes] = np.arange(len(vocab))
        # the code point whose id is 0: the first character's, or none (0x110000, past
        # Unicode) where a vocabulary listing it again gave it a later id; of the text's
        # code points' dtype, which compares with it faster than with an int64
        zero = codes[self.table[codes] == 0]
        self.zero = np.uint32(zero[0] if len(zero) else 0x110000)

    def __call__(self, text: str) -> np.ndarray | None:
        codes = _code_points(text)
        if len(codes) and codes.max() >= len(self.table):
            return None
        ids = self.table[codes]
        # a code point inside the table but outside the vocabulary gets the table's 0: more
        # ids 0 than characters of id 0 (two counts, cheaper than a second lookup)
        if np.count_nonzero(ids == 0) != np.count_nonzero(codes == self.zero):
            return None
        return ids


@dataclass
class CharData:
    """Token ids of the 90/10 train/validation split. from_file keeps them in a memory-mapped
    scratch file of one or two bytes per character (as nanoGPT's train.bin), so a corpus of
    several GB trains in little memory; batches are int64, the same for any storage type."""
    vocab: list
    train: np.ndarray
    val: np.ndarray
    # the SHA-256 (hex) of the text as read, its UTF-8 bytes: a checkpoint records the one its
    # run trained on, and a resume on another text is refused (train.py); None: unknown (ids
    # given as they are), not recorded or checked
    text_sha256: str | None = None

    @classmethod
    def from_file(cls, path: str | None, block_size: int, vocab=None,
                  splits=SPLITS) -> "CharData":
        """`splits`: those that must hold one window of `block_size` (graphc eval scores one;
        a text whose other split is shorter was refused for it)."""
        _size("CharData.from_file: block_size", block_size)
        path = os.fspath(path or DEFAULT_TEXT)  # a pathlib.Path: named as text in messages
        if not os.path.exists(path):
            raise DataError(f"data file {path!r} does not exist")
        if not os.path.isfile(path):  # /dev/null, a FIFO, a shell's <(...): "does not exist"
            raise DataError(f"data file {path!r} is not a regular file (the text is read "
                            "twice, for its vocabulary and for its tokens); save it to a file")
        seen, n, digest = set(), 0, hashlib.sha256()
        for piece in _pieces(path):
            seen.update(piece)
            n += len(piece)
            digest.update(piece.encode("utf-8"))
        if not n:
            raise DataError(f"data file {path!r} is empty")
        vocab = cls._vocabulary(seen, vocab, path)
        encode = _Encoder(vocab)
        # written to while it was read (a download or an editor still saving it): its
        # second read, which writes the token ids, found other characters, another length
        # or another text (an edit of the same length in the vocabulary's characters, which
        # only the digest tells: the ids were the new text's, the recorded SHA-256 the old's)
        changed = DataError(f"data file {path!r} changed while it was read (the text is read "
                            "twice, for its vocabulary and for its tokens); try again once it is "
                            "complete")
        second = hashlib.sha256()

        def tokens():
            for piece in _pieces(path):
                ids = encode(piece)
                if ids is None:
                    raise changed
                second.update(piece.encode("utf-8"))
                yield ids
        ids = _token_file(tokens(), n, token_dtype(len(vocab)), changed)
        if second.digest() != digest.digest():
            raise changed
        return cls._split(vocab, ids, block_size, path, splits, digest.hexdigest())

    @classmethod
    def from_text(cls, text: str, block_size: int, vocab=None, source="text",
                  splits=SPLITS) -> "CharData":
        """The text read as from_file reads it saved to a file (as_read): a BOM at its start
        dropped, \r\n and \r read as \n, so its vocabulary and ids are the file's."""
        _size("CharData.from_text: block_size", block_size)
        if not isinstance(text, str):  # (None's was "no attribute 'removeprefix'")
            raise DataError(f"CharData.from_text: text must be a str, got "
                            f"{type(text).__name__} (CharData.from_file reads a file)")
        try:  # (a lone surrogate was the utf-32 codec's error from inside the encoder)
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"{source!r} is not Unicode text: character {exc.start} is "
                            f"{text[exc.start]!r}, a lone surrogate") from None
        text = as_read(text)
        if not text:
            raise DataError(f"data file {source!r} is empty")
        vocab = cls._vocabulary(set(text), vocab, source)
        return cls._split(vocab, _Encoder(vocab)(text), block_size, source, splits,
                          hashlib.sha256(text.encode("utf-8")).hexdigest())

    @staticmethod
    def _vocabulary(seen, vocab, source):
        vocab = sorted(seen) if vocab is None else list(vocab)
        unknown = sorted(seen - set(vocab))
        if unknown:
            raise DataError(f"{source!r} has characters outside the checkpoint's vocabulary: "
                            f"{''.join(unknown)[:20]!r}")
        return vocab

    @classmethod
    def _split(cls, vocab, ids, block_size, source, splits=SPLITS, digest=None):
        for split in splits:
            _known_split(split)
        split = _train_length(len(ids))
        train, val = ids[:split], ids[split:]
        need = block_size + 1  # one window and its shifted target
        if any(len(part) < need for name, part in (("train", train), ("val", val))
               if name in splits):
            where = ("each of the 90/10 train/validation splits" if len(set(splits)) == 2 else
                     "the 90% training split" if "train" in splits else
                     "the 10% validation split")
            raise DataError(f"{source!r} is too short: {len(ids)} "
                            f"character{'s' * (len(ids) != 1)}, but a block of {block_size} "
                            f"needs at least {need} in {where} "
                            f"({_shortest_text(need, splits)} or more in all)")
        return cls(vocab, train, val, digest)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise DataError(f"characters not in the vocabulary: {''.join(unknown)!r}")
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        """The characters of token ids (whole numbers, as generate takes them). An id outside
        the vocabulary is refused, as nanoGPT's itos lookup refuses it: a negative one was the
        character that many from the end, and 2.7 was id 2."""
        from .generate import whole_token_id
        out = []
        for i in ids:
            i = whole_token_id(i)
            if not 0 <= i < len(self.vocab):
                raise DataError(f"token id {i} is outside the vocabulary (ids 0 to "
                                f"{len(self.vocab) - 1})")
            out.append(self.vocab[i])
        return "".join(out)

    def batch(self, rng: np.random.Generator, split: str, batch_size: int, block_size: int):
        # (a block_size <= 0 gave batches of empty windows, silently; 2.5 or -1 rows numpy's
        # errors from inside)
        _size("CharData.batch: batch_size", batch_size)
        _size("CharData.batch: block_size", block_size)
        data = split_tokens(self, split)
        if len(data) < block_size + 1:  # (numpy's "high <= 0" named neither)
            raise ValueError(f"the {split} split has {token_count(len(data))}: fewer than one "
                             f"window of block_size {block_size} + 1")
        # the last window starts at len - block_size - 1: its target is the last character
        starts = rng.integers(0, len(data) - block_size, batch_size)
        offsets = starts[:, None] + np.arange(block_size)
        return data[offsets].astype(np.int64), data[offsets + 1].astype(np.int64)


def _size(name: str, value) -> None:
    """Refuse a batch_size or block_size that is not a whole number >= 1, in one line."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def token_count(n: int) -> str:
    """'1 token', '6 tokens': a count of tokens in a message."""
    return f"{n} token{'s' * (n != 1)}"


def _train_length(n: int) -> int:
    """The characters of a text of `n` that go to the training split (nanoGPT's 90%)."""
    return int(0.9 * n)


def _split_lengths(n: int) -> dict:
    """The characters of a text of `n` in each split."""
    return {"train": _train_length(n), "val": n - _train_length(n)}


def _shortest_text(need: int, splits=SPLITS) -> int:
    """The fewest characters whose 90/10 split holds `need` in each of `splits`. It was said
    to be 10 * need, but the validation part, n - int(0.9 * n), reaches `need` up to 9
    characters sooner: 41 characters train a block of 4, which were told they needed 50."""
    def enough(n):
        lengths = _split_lengths(n)
        return all(lengths[split] >= need for split in splits)
    # near it (the training part alone needs about need / 0.9), then exact: each part grows
    # by 0 or 1 with n
    n = 10 * need if "val" in splits else need + need // 9 + 1
    while n > 1 and enough(n - 1):
        n -= 1
    while not enough(n):
        n += 1
    return n



def split_tokens(data, split: str):
    """The token ids of `data`'s split named `split`, "train" or "val". Another name is
    refused: batch() drew from the validation split for any name but "train" (a "training"
    batch trained on the validation text) and split_loss scored the training split for any
    name but "val"."""
    return getattr(data, _known_split(split))


def _known_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got "
                         f"{split!r}")
    return split


def _token_file(pieces, n: int, dtype, changed: DataError) -> np.ndarray:
    """The concatenated pieces (n items) as a read-only array over an unlinked temporary file
    (GRAPHC_DATA_DIR, else the system's temporary directory). Its pages are the file's: clean,
    so the kernel can drop them under memory pressure, and the file goes with the process.
    `changed`: raised where the pieces hold other than n items."""
    setting = settings.DATA_DIR.get()
    directory = setting or tempfile.gettempdir()
    try:
        with tempfile.TemporaryFile(dir=directory, prefix="graphc-tokens-") as fh:
            for piece in pieces:
                fh.write(piece.tobytes())
            fh.flush()
            if fh.tell() != n * np.dtype(dtype).itemsize:
                raise changed
            mapped = np.memmap(fh, dtype=dtype, mode="r", shape=(n,))
    except OSError as exc:
        where = f"GRAPHC_DATA_DIR={setting}" if setting else f"the temporary directory {directory}"
        raise DataError(f"cannot hold the encoded text in {where}: {exc.strerror or exc}; "
                        "set GRAPHC_DATA_DIR to a writable directory with room for it") from None
    # an ndarray view (it keeps the mapping alive): plans are fed plain arrays
    return np.asarray(mapped)
