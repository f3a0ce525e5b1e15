"""Progress events and run reports of the indexer, and a terminal progress bar for them."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass
class Progress:
    """One progress event; the UI wraps these in a signal, the terminal in a tqdm bar."""

    phase: str  # "scanning", "indexing", "saving", "done"
    done: int = 0
    total: int = 0
    rate: float = 0.0  # files per second so far
    eta: float | None = None  # seconds left, None while unknown
    current: str | None = None  # the file being worked on
    failed: int = 0
    paused: bool = False


@dataclass
class IndexReport:
    """What one indexing run did. `to_json()` gives the keys of `fastslow index --json`."""

    indexed: int = 0  # files decoded and embedded in this run
    moved: int = 0  # renamed or moved files recognised by content, keeping their embeddings
    unchanged: int = 0
    removed: int = 0
    failed: int = 0  # files that could not be decoded in this run
    reembedded: int = 0  # files given embeddings for a new model (their segments kept)
    segments: int = 0  # segments embedded in this run
    seconds: float = 0.0  # the whole run, model loading included
    load_seconds: float = 0.0  # of which loading the model (throughput leaves it out)
    cancelled: bool = False
    offline_roots: tuple[str, ...] = ()

    @property
    def work_seconds(self) -> float:
        return max(0.0, self.seconds - self.load_seconds)

    @property
    def files_per_s(self) -> float:
        files = self.indexed + self.reembedded + self.failed
        return files / self.work_seconds if self.work_seconds > 0 else 0.0

    @property
    def segments_per_s(self) -> float:
        return self.segments / self.work_seconds if self.work_seconds > 0 else 0.0

    def to_json(self) -> dict:
        data = {key: getattr(self, key) for key in ("indexed", "moved", "unchanged", "removed", "failed")}
        data["seconds"] = round(self.seconds, 3)
        data.update(load_seconds=round(self.load_seconds, 3), segments=self.segments, reembedded=self.reembedded,
                    files_per_s=round(self.files_per_s, 2), segments_per_s=round(self.segments_per_s, 2),
                    cancelled=self.cancelled, offline_roots=list(self.offline_roots))
        return data

    def throughput_line(self) -> str:
        loading = f" (+{self.load_seconds:.1f} s loading models)" if self.load_seconds >= 0.05 else ""
        again = f", re-embedded {self.reembedded} with new models" if self.reembedded else ""
        counted = " with the failed ones" if self.failed else ""  # they took decoding time too
        return (f"indexed {self.indexed} file{'' if self.indexed == 1 else 's'}{again} "
                f"({self.segments} segment{'' if self.segments == 1 else 's'}) "
                f"in {self.work_seconds:.1f} s{loading}: "
                f"{self.files_per_s:.1f} files/s{counted}, {self.segments_per_s:.1f} segments/s; "
                f"{self.moved} moved, {self.unchanged} unchanged, {self.removed} removed, {self.failed} failed"
                + (" (cancelled)" if self.cancelled else ""))


class TqdmProgress:
    """A progress callback drawing a tqdm bar on stderr (quiet when stderr is not a terminal)."""

    def __init__(self, disable: bool | None = None):
        self._bar = None
        self._disable = (not sys.stderr.isatty()) if disable is None else disable

    def __call__(self, event: Progress) -> None:
        if self._disable:
            return
        from tqdm import tqdm

        if event.phase == "indexing":
            if self._bar is None:
                self._bar = tqdm(total=event.total, unit="file", desc="indexing", file=sys.stderr, leave=False)
            self._bar.n = event.done
            self._bar.set_postfix_str(("paused " if event.paused else "") + f"{event.failed} failed", refresh=False)
            self._bar.refresh()
        elif event.phase == "done":
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
