"""Parses rclip-style combined queries: '"red circle" + photo.jpg - "blue"', with weights like 2:"red circle"."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..media import DecodeError, is_photo, load_image
from .types import SearchError

_WEIGHT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*:\s*(?=\S)")
# What a person may mean as a weight before a quoted term but is none: "-1:", "nan:", "1e9:", "+2:".
_BAD_WEIGHT = re.compile(r'^([+-]?(?:[\d.]+(?:e[+-]?\d+)?|nan|inf(?:inity)?))\s*:\s*"', re.IGNORECASE)


@dataclass(frozen=True)
class QueryTerm:
    """One part of a query: a text or an image file, with a signed weight (negative = subtracted)."""

    kind: str  # "text" | "image" | "segment"
    value: str  # the text, the image path, or the segment id as a string
    weight: float = 1.0


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[QueryTerm, ...]

    @property
    def positive_texts(self) -> list[tuple[float, str]]:
        """(weight, text) of the added text terms: the only part the slow captioner can score."""
        return [(t.weight, t.value) for t in self.terms if t.kind == "text" and t.weight > 0]


def _looks_like_image_path(text: str) -> bool:
    return is_photo(text) or os.path.isfile(os.path.expanduser(text))


def _split(query: str) -> list[tuple[int, str]]:
    """Top-level '+' / '-' operators (standing alone, outside quotes) split the query into signed parts."""
    parts: list[tuple[int, str]] = []
    sign, buf, in_quote = 1, [], False
    n = len(query)
    for i, c in enumerate(query):
        is_operator = (not in_quote and c in "+-" and (i == 0 or query[i - 1].isspace())
                       and (i + 1 == n or query[i + 1].isspace() or query[i + 1] == '"'))
        if is_operator:
            term = "".join(buf).strip()
            if term:
                parts.append((sign, term))
            elif parts:
                raise SearchError(f"Two operators in a row in the query {query!r}: put a term between them.")
            sign, buf = (1 if c == "+" else -1), []
            continue
        if c == '"':
            in_quote = not in_quote
        buf.append(c)
    term = "".join(buf).strip()
    if term:
        parts.append((sign, term))
    elif parts or query.strip():
        raise SearchError(f"The query {query!r} ends with an operator: add a term after it.")
    return parts


def _weight(match: re.Match) -> float:
    weight = float(match.group(1))
    if weight == 0:
        raise SearchError("A weight of 0 leaves its term out: remove the term, or give it a weight above 0.")
    return weight


def _check_weight(raw: str) -> None:
    """A weight-like prefix before a quote that is no positive number is refused, not searched as text."""
    bad = _BAD_WEIGHT.match(raw)
    if bad and not _WEIGHT.match(raw):
        raise SearchError(f"{bad.group(1)!r} is not a weight: a weight is a number above 0, as in "
                          '2:"red circle"; to subtract a term, write - "blue" instead.')


def _term(sign: int, raw: str, combined: bool) -> QueryTerm:
    weight = 1.0
    _check_weight(raw)
    match = _WEIGHT.match(raw)
    # A weight is only read where it cannot be part of ordinary text ("2:30 pm" stays text).
    if match and (combined or raw[match.end():].startswith('"')):
        weight, raw = _weight(match), raw[match.end():].strip()
    if raw.startswith('"'):
        body = raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:]
        body = body.strip()
        if not body:
            raise SearchError('An empty quoted term ("") cannot be searched for.')
        # A quoted existing picture is an image term: that is how a path with spaces or " - " is written.
        kind = "image" if _looks_like_image_path(body) and os.path.isfile(os.path.expanduser(body)) else "text"
        return QueryTerm(kind, body, sign * weight)
    kind = "image" if combined and _looks_like_image_path(raw) else "text"
    return QueryTerm(kind, raw, sign * weight)


def parse_query(text: str) -> ParsedQuery:
    """Plain text stays one text term; quotes, weights or standalone +/- make a combined query.

    Unquoted terms that name an image file (by extension, or an existing file) are image terms.
    """
    text = text.strip()
    if not text:
        return ParsedQuery(())
    _check_weight(text)
    parts = _split(text)
    weighted_quote = (m := _WEIGHT.match(text)) is not None and text[m.end():].startswith('"')
    combined = len(parts) > 1 or parts[0][0] < 0 or text.startswith('"') or weighted_quote
    if not combined:
        # A lone path to a picture is an image query; anything else is the text itself.
        if _looks_like_image_path(text) and os.path.isfile(os.path.expanduser(text)):
            return ParsedQuery((QueryTerm("image", text),))
        return ParsedQuery((QueryTerm("text", text),))
    return ParsedQuery(tuple(_term(sign, raw, True) for sign, raw in parts))


def missing_picture(parsed: ParsedQuery) -> str | None:
    """The note for a query that is one picture's name with no such file: it was searched as words."""
    if len(parsed.terms) == 1 and parsed.terms[0].kind == "text" and is_photo(parsed.terms[0].value):
        return f"There is no picture at {parsed.terms[0].value}: the words were searched for instead."
    return None


def request_terms(text: str, image: str | None = None, like_segment: int | None = None) -> ParsedQuery:
    """All terms of a request: its text (parsed), plus its image file and its "more like this" segment."""
    parsed = parse_query(text)
    extra = []
    if image:
        extra.append(QueryTerm("image", image))
    if like_segment is not None:
        extra.append(QueryTerm("segment", str(int(like_segment))))
    terms = parsed.terms + tuple(extra)
    if not terms:
        raise SearchError("Nothing to search for: type a description, or give a picture to search with.")
    if not any(t.weight > 0 for t in terms):
        raise SearchError("A query needs at least one term that is added, not only subtracted ones.")
    return ParsedQuery(terms)


def load_query_image(path: str):
    """The picture of an image term, decoded; SearchError with a person's reason when it cannot be."""
    try:
        return load_image(path)
    except DecodeError as exc:
        raise SearchError(f"Cannot search with the picture {path}: {exc}") from exc
    except OSError as exc:
        raise SearchError(f"Cannot read the picture {path}: {exc.strerror or exc}") from exc
