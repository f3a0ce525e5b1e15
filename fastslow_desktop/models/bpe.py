"""CLIP's byte-level BPE without torch or open_clip: the same ids as open_clip's SimpleTokenizer.

A one-shot `fastslow search` must tokenize its query without importing torch (seconds), and
open_clip's tokenizer module imports torch and, through the package, torchvision and transformers.
This reads the BPE merge table that open_clip ships (located without importing the package) and
applies the published CLIP algorithm; tests check it against open_clip's ids string by string.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import itertools
from pathlib import Path

import regex

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # CLIP keeps this many merges of the table (the rest were never trained)
SOT, EOT = "<start_of_text>", "<end_of_text>"
END_OF_WORD = "</w>"


def vocab_file() -> Path:
    """open_clip's BPE table, found through the import system without running open_clip's __init__."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / VOCAB_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{VOCAB_FILE} not found: is open_clip_torch installed?")


def _byte_alphabet() -> dict[int, str]:
    """Each byte as one printable character: printable Latin-1 bytes stand for themselves, the
    others (controls, space) are moved past 255 in byte order, so no piece holds whitespace."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in kept}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def _fix_text(text: str) -> str:
    """ftfy.fix_text, skipped for printable ASCII without "&": every fix ftfy makes needs a character
    outside that set (mojibake, controls, line breaks, HTML entities), and importing ftfy costs a one-shot
    query about 0.1 s. tests/test_bpe... checks the shortcut against ftfy."""
    if text.isascii() and text.isprintable() and "&" not in text:
        return text
    import ftfy

    return ftfy.fix_text(text)


def clean(text: str) -> str:
    """What CLIP tokenizes: mojibake fixed, HTML entities decoded (twice), whitespace collapsed, lower case."""
    text = html.unescape(html.unescape(_fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipBpe:
    """Text -> CLIP BPE ids (no start/end tokens, no padding); thread-safe after construction."""

    def __init__(self, path: Path | None = None):
        # Only the merges CLIP uses (the first 48 894 of the file's 262 144 lines), kept as the file's own
        # "left right" lines: no tuple per merge. Reading the whole file and splitting each line took
        # 104-201 ms of a 1.1 s one-shot query; this takes 73-87 (2-core AMD EPYC, idle).
        with gzip.open(path or vocab_file(), "rt", encoding="utf-8") as fh:
            merges = [line.rstrip("\n") for line in itertools.islice(fh, 1, N_MERGES + 1)]
        self.byte_char = _byte_alphabet()
        symbols = list(self.byte_char.values())
        vocab = [*symbols, *(s + END_OF_WORD for s in symbols), *(m.replace(" ", "") for m in merges), SOT, EOT]
        self.encoder: dict[str, int] = dict(zip(vocab, range(len(vocab))))
        self.ranks: dict[str, int] = dict(zip(merges, range(len(merges))))  # "left right" -> rank
        self.sot_token_id, self.eot_token_id = self.encoder[SOT], self.encoder[EOT]
        self._words = regex.compile(
            rf"{SOT}|{EOT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE)
        # A dict read and written under the GIL: each word is merged once per process.
        self._merged: dict[str, tuple[str, ...]] = {SOT: (SOT,), EOT: (EOT,)}

    def _merge(self, word: str) -> tuple[str, ...]:
        """A word (byte characters) as its BPE pieces: the lowest-ranked adjacent pair is joined
        everywhere, left to right, until no adjacent pair is a known merge."""
        done = self._merged.get(word)
        if done is not None:
            return done
        parts = [*word[:-1], word[-1] + END_OF_WORD]
        while len(parts) > 1:
            ranked = [(self.ranks.get(f"{a} {b}", N_MERGES), (a, b)) for a, b in zip(parts, parts[1:])]
            rank, (left, right) = min(ranked, key=lambda item: item[0])
            if rank == N_MERGES:  # no adjacent pair is a merge
                break
            joined, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
                    joined.append(left + right)
                    i += 2
                else:
                    joined.append(parts[i])
                    i += 1
            parts = joined
        self._merged[word] = result = tuple(parts)
        return result

    def words(self, text: str) -> list[tuple[str, list[int]]]:
        """`text` after CLIP's cleaning as its words (and punctuation runs), each with its BPE ids."""
        out = []
        for word in self._words.findall(clean(text)):
            chars = "".join(self.byte_char[b] for b in word.encode("utf-8"))
            out.append((word, [self.encoder[piece] for piece in self._merge(chars)]))
        return out

    def encode(self, text: str) -> list[int]:
        """The BPE ids of `text` after CLIP's cleaning."""
        return [i for _word, ids in self.words(text) for i in ids]


@functools.lru_cache(maxsize=1)
def shared_bpe() -> ClipBpe:
    """One BPE per process: reading the 48 894-merge table takes about 80 ms."""
    return ClipBpe()
