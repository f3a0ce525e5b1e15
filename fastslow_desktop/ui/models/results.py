"""The results grid's model: search results with named roles; thumbnails arrive lazily by row."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QImage, QPixmap

from ...search.moments import Moment, moments_of
from ..format import match_text, moment_label
from ..workers.thumbnails import ThumbnailLoader

_USER = int(Qt.ItemDataRole.UserRole)


class ResultRoles:
    """Named roles for views, delegates and tests (Qt.UserRole + n)."""

    Result = _USER + 1  # the SearchResult itself
    SegmentId = _USER + 2
    Path = _USER + 3
    Kind = _USER + 4  # "image" | "video"
    Score = _USER + 5  # the final score (stage 2 when re-ranked)
    FastScore = _USER + 6
    SlowScore = _USER + 7  # None when not re-ranked
    TimeStart = _USER + 8  # seconds, None for photos
    TimeEnd = _USER + 9
    Rank = _USER + 10  # 1-based position in the current order
    ThumbnailState = _USER + 11  # "loaded" | "loading" | "missing"
    Match = _USER + 12  # "yes" | "maybe" | "no"; None before re-ranking
    MatchProbability = _USER + 13
    Moment = _USER + 14  # "0:02–0:06" for videos (the badge and the preview say the same), "" for photos

    NAMES = {Result: b"result", SegmentId: b"segmentId", Path: b"path", Kind: b"kind", Score: b"score",
             FastScore: b"fastScore", SlowScore: b"slowScore", TimeStart: b"timeStart", TimeEnd: b"timeEnd",
             Rank: b"rank", ThumbnailState: b"thumbnailState", Match: b"match",
             MatchProbability: b"matchProbability", Moment: b"moment"}


def matches_first(results: list) -> list:
    """Results judged a match ahead of the rest, each part in its own order, so one divider splits them."""
    return [r for r in results if r.match == "yes"] + [r for r in results if r.match != "yes"]


def divider_of(results: list) -> tuple[str | None, int]:
    """Where the grid's divider goes: ("matches", n) after n matches, ("none", 0) when the slow stage
    judged the results and none matches, (None, 0) before any judgement."""
    if not any(r.match is not None for r in results):
        return None, 0
    n = sum(1 for r in results if r.match == "yes")
    return ("matches", n) if n else ("none", 0)


_MISSING = None  # cached for files whose thumbnail cannot be read, so they are not retried on every paint


class ResultsModel(QAbstractListModel):
    """A list of SearchResult. `set_results` replaces it (reset); `reorder` applies stage 2 in place."""

    CACHE_SIZE = 800  # pixmaps kept (≈ 80 kB each at 144 px)

    def __init__(self, thumbnails: ThumbnailLoader | None = None, parent=None, pixel_ratio: float = 1.0):
        super().__init__(parent)
        self._pixel_ratio = pixel_ratio  # device pixels per logical one: thumbnails are decoded that much larger
        self._results: list = []
        self._row_of: dict[int, int] = {}
        self._stage = 0
        self._divider: tuple[str | None, int] = (None, 0)  # cached: the grid's layout asks per item
        self._candidates: list = []  # the query's fast shortlist: every scored segment (video moments)
        self._loader = thumbnails
        self._pixmaps: OrderedDict[int, QPixmap | None] = OrderedDict()
        self._pending: set[int] = set()
        if thumbnails is not None:
            thumbnails.loaded.connect(self._on_thumbnail)

    # -- contents -------------------------------------------------------------------------
    @property
    def stage(self) -> int:
        """1 while showing fast results, 2 once re-ranked; 0 when empty."""
        return self._stage

    def results(self) -> list:
        return list(self._results)

    def segment_ids(self) -> list[int]:
        return [r.segment_id for r in self._results]

    def result(self, row: int):
        return self._results[row] if 0 <= row < len(self._results) else None

    def row_of(self, segment_id: int) -> int | None:
        return self._row_of.get(segment_id)

    def divider(self) -> tuple[str | None, int]:
        """("matches", n): a divider after the first n rows; ("none", 0): nothing matches; (None, 0)."""
        return self._divider

    def moments_of(self, result) -> list[Moment]:
        """All moments of this result's video in the current query's shortlist ([] for photos)."""
        if result is None or result.kind != "video":
            return []
        return moments_of(result.media_id, self._candidates, chosen=result.segment_id)

    def set_results(self, results: list, stage: int = 1, candidates: list | None = None) -> None:
        """A new result set: a reset (views drop selection and scroll state)."""
        self.beginResetModel()
        self._results = matches_first(list(results))
        self._divider = divider_of(self._results)
        self._candidates = list(candidates or [])
        self._row_of = {r.segment_id: i for i, r in enumerate(self._results)}
        self._stage = stage if self._results else 0
        if self._loader is not None:
            self._loader.clear()  # thumbnails of the old set still queued are not needed now
        self._pending.clear()
        self.endResetModel()

    def reorder(self, results: list, stage: int = 2, candidates: list | None = None) -> None:
        """The same files in a new order (stage 2): a layout change, so selection follows its file.

        A file is the item here, not a segment: stage 2 may pick another moment of a video, and
        that video keeps its place in the selection (its badge shows the new moment).
        """
        if candidates is not None:
            self._candidates = list(candidates)
        media = [r.media_id for r in results]
        if len(set(media)) != len(media) or sorted(media) != sorted(r.media_id for r in self._results):
            self.set_results(results, stage, candidates)
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_media = [self._results[i.row()].media_id for i in old]
        self._results = matches_first(list(results))
        self._divider = divider_of(self._results)
        self._row_of = {r.segment_id: i for i, r in enumerate(self._results)}
        self._stage = stage
        row_of_media = {r.media_id: i for i, r in enumerate(self._results)}
        self.changePersistentIndexList(old, [self.index(row_of_media[m], 0) for m in old_media])
        self.layoutChanged.emit()

    def row_of_media(self, media_id: int) -> int | None:
        """The row of this photo or video (whichever of its moments is shown)."""
        return next((i for i, r in enumerate(self._results) if r.media_id == media_id), None)

    # -- QAbstractListModel ---------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._results)

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names.update({role: QByteArray(name) for role, name in ResultRoles.NAMES.items()})
        return names

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._results) or index.column() != 0:
            return None
        r = self._results[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(r.path).name
        if role == Qt.ItemDataRole.ToolTipRole:
            moment = moment_label(r.t_start, r.t_end)
            return r.path + (f"\n{moment}" if moment else "")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self._spoken(index.row(), r)
        if role == Qt.ItemDataRole.AccessibleDescriptionRole:
            return r.path
        if role == Qt.ItemDataRole.DecorationRole:
            return self._pixmap(r)
        if role == ResultRoles.Result:
            return r
        if role == ResultRoles.SegmentId:
            return r.segment_id
        if role == ResultRoles.Path:
            return r.path
        if role == ResultRoles.Kind:
            return r.kind
        if role == ResultRoles.Score:
            return float(r.score)
        if role == ResultRoles.FastScore:
            return float(r.fast_score)
        if role == ResultRoles.SlowScore:
            return None if r.slow_score is None else float(r.slow_score)
        if role == ResultRoles.TimeStart:
            return r.t_start
        if role == ResultRoles.TimeEnd:
            return r.t_end
        if role == ResultRoles.Match:
            return r.match
        if role == ResultRoles.MatchProbability:
            return r.match_probability
        if role == ResultRoles.Moment:
            return moment_label(r.t_start, r.t_end) if r.kind == "video" else ""
        if role == ResultRoles.Rank:
            return index.row() + 1
        if role == ResultRoles.ThumbnailState:
            if r.segment_id not in self._pixmaps:
                return "loading"
            return "missing" if self._pixmaps[r.segment_id] is _MISSING else "loaded"
        return None

    def _spoken(self, row: int, r) -> str:
        """What a screen reader says of a card: what the grid paints (name, moment badge, section heading)
        and what the preview shows (the match judgement), e.g. "2.mp4, video 0:02–0:07, match yes · 97 %, 3 of
        40, in Matches"."""
        parts = [Path(r.path).name, f"video {moment_label(r.t_start, r.t_end)}" if r.kind == "video" else "photo"]
        match = match_text(r)
        if match:
            parts.append(f"match {match}")
        parts.append(f"{row + 1} of {len(self._results)}")
        state, n = self._divider
        if state == "matches":
            parts.append("in Matches" if row < n else "in Similar, not exact")
        elif state == "none":
            parts.append("nothing matches exactly")
        return ", ".join(parts)

    # -- thumbnails -----------------------------------------------------------------------
    def _pixmap(self, result) -> QPixmap | None:
        sid = result.segment_id
        if sid in self._pixmaps:
            self._pixmaps.move_to_end(sid)
            return self._pixmaps[sid]
        if self._loader is not None and sid not in self._pending:
            source = result.thumb or (result.path if result.kind == "image" else None)
            if source is None:
                self._remember(sid, _MISSING)
                return None
            self._pending.add(sid)
            self._loader.request(sid, source)
        return None  # the delegate paints a placeholder until the thumbnail arrives

    def _remember(self, sid: int, pixmap: QPixmap | None) -> None:
        self._pixmaps[sid] = pixmap
        self._pixmaps.move_to_end(sid)
        while len(self._pixmaps) > self.CACHE_SIZE:
            self._pixmaps.popitem(last=False)

    def _on_thumbnail(self, sid: int, image: QImage) -> None:
        self._pending.discard(sid)
        # QPixmap only on the GUI thread (this slot): workers produced the QImage.
        pixmap = QPixmap.fromImage(image) if not image.isNull() else _MISSING
        if pixmap is not _MISSING:
            pixmap.setDevicePixelRatio(self._pixel_ratio)
        self._remember(sid, pixmap)
        row = self._row_of.get(sid)
        if row is not None:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def thumbnail_size(self) -> QSize:
        return self._loader.size if self._loader is not None else QSize()
