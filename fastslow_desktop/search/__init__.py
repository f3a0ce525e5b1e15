"""Search: fast shortlist (ANN), staged results, slow re-rank of the top K, image and combined queries (no Qt)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .query import ParsedQuery, QueryTerm, parse_query
from .types import SearchError, SearchRequest, SearchResult, StageResult

if TYPE_CHECKING:
    from .engine import SearchEngine, SearchHandle

__all__ = [
    "ParsedQuery", "QueryTerm", "SearchEngine", "SearchError", "SearchHandle", "SearchRequest", "SearchResult",
    "StageResult", "parse_query",
]


def __getattr__(name: str):
    # The engine pulls in torch; `fastslow --help` and the argument parser should not pay for that.
    if name in ("SearchEngine", "SearchHandle"):
        return getattr(importlib.import_module(".engine", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
