"""Text tokenizer: CLIP's BPE (bpe.py, the vocabulary open_clip ships), optionally compacted; no torch
until a tensor is asked for, so the lean query path (text_onnx) tokenizes without importing it.

Small models trained on a narrow world (SynthScenes) would spend most of their weights on a
49 408-row embedding table they never use, so a bundle may keep only the BPE ids seen in
training. Unknown pieces then map to UNK. Hub models use the full vocabulary unchanged.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .bpe import shared_bpe

if TYPE_CHECKING:
    import torch

PAD_ID = 0

_VOWEL_START = re.compile(r"\ba (?=[aeiou])")
_CONSONANT_START = re.compile(r"\ban (?=[^aeiou\s])")


def normalize_query(text: str) -> str:
    """Lower-case, collapse spaces, drop a final full stop, and fix a/an so either article matches."""
    text = " ".join(text.strip().lower().split())
    text = text.rstrip(".").rstrip()
    text = _VOWEL_START.sub("an ", text)
    return _CONSONANT_START.sub("a ", text)


@dataclass
class TokenizerConfig:
    """What a bundle's manifest records about its tokenizer."""

    type: str = "open_clip"  # open_clip BPE
    context_length: int = 16  # tokens incl. start and end
    vocab: list[int] | None = None  # kept BPE ids (compact vocabulary); None = the full BPE vocabulary
    open_clip_name: str | None = None  # for hub models: the open_clip tokenizer name (e.g. ViT-B-32)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class QueryReading:
    """How much of a query a tokenizer reads (TextTokenizer.reading)."""

    unknown: tuple[str, ...]  # words the vocabulary lacks, in order, once each
    dropped: str  # the end of the query past the context ("" when all of it is read)
    known: int  # words read that the vocabulary holds


class TextTokenizer:
    """Turns strings into (n, context_length) id tensors: [SOT, pieces..., EOT, PAD...]."""

    def __init__(self, config: TokenizerConfig):
        self.config = config
        self._bpe = shared_bpe()  # one per process: the fast and slow models share it
        self.context_length = config.context_length
        if config.vocab is None:
            self._compact = None
            self.vocab_size = len(self._bpe.encoder)
            self.sot_id = self._bpe.sot_token_id
            self.eot_id = self._bpe.eot_token_id
            self.unk_id = None
        else:
            # 0 = PAD, 1 = UNK, then kept pieces, then SOT, then EOT last: open_clip's text tower
            # pools at the argmax id, which must be the end token.
            self._compact = {bpe: i + 2 for i, bpe in enumerate(config.vocab)}
            self.unk_id = 1
            self.sot_id = len(config.vocab) + 2
            self.eot_id = len(config.vocab) + 3
            self.vocab_size = len(config.vocab) + 4

    @classmethod
    def compact_for(cls, texts: Iterable[str], context_length: int = 16) -> TextTokenizer:
        """A tokenizer whose vocabulary is exactly the BPE pieces used by `texts`."""
        bpe = shared_bpe()
        seen: set[int] = set()
        for text in texts:
            seen.update(bpe.encode(normalize_query(text)))
        return cls(TokenizerConfig(context_length=context_length, vocab=sorted(seen)))

    def encode_pieces(self, text: str) -> list[int]:
        pieces = self._bpe.encode(normalize_query(text))
        if self._compact is None:
            return pieces
        return [self._compact.get(p, self.unk_id) for p in pieces]

    def reading(self, text: str) -> QueryReading:
        """What of `text` these models cannot read: words with a piece outside a compact vocabulary
        (they become UNK), and the words past the context (cut off by `ids`)."""
        budget, used, known = self.context_length - 2, 0, 0  # the start and end tokens take two places
        unknown: list[str] = []
        dropped: list[str] = []
        for word, pieces in self._bpe.words(normalize_query(text)):
            if dropped or used + len(pieces) > budget:
                dropped.append(word)
                continue
            used += len(pieces)
            if all(c in string.punctuation for c in word):
                continue
            if self._compact is not None and any(p not in self._compact for p in pieces):
                unknown.append(word)
            else:
                known += 1
        return QueryReading(tuple(dict.fromkeys(unknown)), " ".join(dropped), known)

    def ids(self, texts: str | Sequence[str]) -> np.ndarray:
        """(n, context_length) int64 ids, as a numpy array (no torch)."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.full((len(texts), self.context_length), PAD_ID, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode_pieces(text)][: self.context_length - 1] + [self.eot_id]
            out[row, : len(ids)] = ids
        return out

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.ids(texts))

    def to_config(self) -> dict:
        cfg = self.config
        return {
            "type": cfg.type,
            "context_length": cfg.context_length,
            "vocab": cfg.vocab,
            "open_clip_name": cfg.open_clip_name,
        }

    @classmethod
    def from_config(cls, data: dict) -> TextTokenizer:
        return cls(
            TokenizerConfig(
                type=data.get("type", "open_clip"),
                context_length=int(data["context_length"]),
                vocab=data.get("vocab"),
                open_clip_name=data.get("open_clip_name"),
            )
        )
