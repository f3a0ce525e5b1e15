"""SynthScenes captions: the canonical wording of a scene, parsing a caption back, the relevance rule."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .scenes import COLOURS, CONVERSE, COUNT_WORDS, COUNTS, RELATIONS, SHAPES, SIZES, Scene, SceneObject, relation_between

# --- captions ------------------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(colour: str, shape: str, size: str | None = None) -> str:
    words = [w for w in (size, colour, shape) if w]
    return f"{_article(words[0])} {' '.join(words)}"


def pair_relation(scene: Scene) -> str:
    relation = relation_between(*scene.objects)
    if relation is None:
        raise ValueError("the two objects are too close for any relation to hold")
    return relation


def canonical_caption(scene: Scene) -> str:
    first = scene.objects[0]
    if scene.kind == "single":
        return _noun_phrase(first.colour, first.shape, first.size)
    if scene.kind == "pair":
        second = scene.objects[1]
        return (
            f"{_noun_phrase(first.colour, first.shape)} {pair_relation(scene)} "
            f"{_noun_phrase(second.colour, second.shape)}"
        )
    return f"{COUNT_WORDS[len(scene.objects)]} {first.size} {first.colour} {first.shape}s"


def true_captions(scene: Scene) -> list[str]:
    """Every caption the scene satisfies: the canonical one first."""
    captions = [canonical_caption(scene)]
    first = scene.objects[0]
    if scene.kind == "single":
        captions.append(_noun_phrase(first.colour, first.shape))
    elif scene.kind == "pair":
        second = scene.objects[1]
        captions.append(
            f"{_noun_phrase(second.colour, second.shape)} "
            f"{CONVERSE[pair_relation(scene)]} {_noun_phrase(first.colour, first.shape)}"
        )
    return captions


@dataclass(frozen=True)
class ObjectTerm:
    """An object as a query names it; size None means "any size"."""

    colour: str
    shape: str
    size: str | None = None

    def matches(self, obj: SceneObject) -> bool:
        return (
            obj.colour == self.colour
            and obj.shape == self.shape
            and (self.size is None or obj.size == self.size)
        )


@dataclass(frozen=True)
class Query:
    kind: str  # "single" | "pair" | "count"
    subject: ObjectTerm
    relation: str | None = None  # pairs: how subject stands to other
    other: ObjectTerm | None = None
    count: int | None = None

    @property
    def text(self) -> str:
        """The query in canonical wording."""
        s = self.subject
        if self.kind == "count":
            return f"{COUNT_WORDS[self.count]} {s.size} {s.colour} {s.shape}s"
        if self.kind == "pair":
            return (
                f"{_noun_phrase(s.colour, s.shape)} {self.relation} "
                f"{_noun_phrase(self.other.colour, self.other.shape)}"
            )
        return _noun_phrase(s.colour, s.shape, s.size)


_COLOUR = "(" + "|".join(COLOURS) + ")"
_SHAPE = "(" + "|".join(SHAPES) + ")"
_SIZE = "(" + "|".join(SIZES) + ")"
_RELATION = "(" + "|".join(RELATIONS) + ")"
_SINGLE_RE = re.compile(rf"an? (?:{_SIZE} )?{_COLOUR} {_SHAPE}")
_PAIR_RE = re.compile(rf"an? {_COLOUR} {_SHAPE} {_RELATION} an? {_COLOUR} {_SHAPE}")
_COUNT_RE = re.compile(rf"({'|'.join(COUNTS)}) {_SIZE} {_COLOUR} {_SHAPE}s")


def parse_caption(text: str) -> Query | None:
    """The query a caption states, or None when it is not in the SynthScenes grammar."""
    text = text.strip().lower()
    if text.endswith("."):
        text = text[:-1]
    text = " ".join(text.split())
    if match := _SINGLE_RE.fullmatch(text):
        size, colour, shape = match.groups()
        return Query("single", ObjectTerm(colour, shape, size))
    if match := _PAIR_RE.fullmatch(text):
        colour_a, shape_a, relation, colour_b, shape_b = match.groups()
        return Query("pair", ObjectTerm(colour_a, shape_a), relation, ObjectTerm(colour_b, shape_b))
    if match := _COUNT_RE.fullmatch(text):
        word, size, colour, shape = match.groups()
        return Query("count", ObjectTerm(colour, shape, size), count=COUNTS[word])
    return None


def satisfies(scene: Scene, query: str | Query) -> bool:
    """The relevance rule: the scene holds exactly the query's objects (and relation, for pairs)."""
    if isinstance(query, str):
        query = parse_caption(query)
        if query is None:
            return False
    if scene.kind != query.kind:
        return False
    objs = scene.objects
    if query.kind == "single":
        return query.subject.matches(objs[0])
    if query.kind == "count":
        return len(objs) == query.count and all(query.subject.matches(o) for o in objs)
    for a, b in (objs, objs[::-1]):
        if (
            query.subject.matches(a)
            and query.other.matches(b)
            and relation_between(a, b) == query.relation
        ):
            return True
    return False
