"""What a query's words mean to the models: the notes a search shows when part of a query goes unread."""

from __future__ import annotations

from collections.abc import Iterable

SHOWN_WORDS = 5  # unknown words named in a note; the rest are counted


def _quoted(words: tuple[str, ...]) -> str:
    shown = ", ".join(f"“{w}”" for w in words[:SHOWN_WORDS])
    more = len(words) - SHOWN_WORDS
    return f"{shown} and {more} more" if more > 0 else shown


def reading_notes(tokenizer, texts: Iterable[str]) -> list[str]:
    """One sentence per problem: words the models do not know (a small bundle knows only its training
    words), and the end of a query longer than their context. None when the tokenizer cannot tell."""
    reading = getattr(tokenizer, "reading", None)
    if reading is None:
        return []
    notes = []
    for text in texts:
        read = reading(text)
        if read.unknown and not read.known:
            notes.append(f"These models know none of the words of “{text}”: the results are not about it.")
        elif read.unknown:
            notes.append(f"These models do not know {_quoted(read.unknown)}: the results match the rest of the query.")
        if read.dropped:
            notes.append(f"The query is longer than these models read: “{read.dropped}” was left out.")
    return notes
