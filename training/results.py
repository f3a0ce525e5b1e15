"""The report of a `training.distill` run: test rows, validation choices, the exported bundle, the K/β plot."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from fastslow_desktop.models import save_bundle
from fastslow_desktop.models.bundle import write_manifest
from fastslow_desktop.models.bundle_check import MANIFEST
from fastslow_desktop.models.fast import FastEncoder
from fastslow_desktop.models.preprocess import ImagePreprocess
from fastslow_desktop.models.rerank import RerankConfig
from fastslow_desktop.models.slow_scorer import CaptionerScorer

from . import calibration, evaluate, report
from .params import TrainConfig
from .stages import slow_preprocess

logger = logging.getLogger("training.distill")

DISTILLED_NAMES = {"in_batch": "fast_distilled", "cached": "fast_distilled_cached"}


def training_cost(name: str, info: dict, cfg: TrainConfig) -> str:
    """One line: steps, minutes, and teacher pair evaluations where a teacher was used."""
    text = f"{info['steps']} steps, {info['seconds'] / 60:.1f} min"
    if name in DISTILLED_NAMES.values():
        text = f"{cfg.fast_steps} + {info['steps']} distill steps, {info['seconds'] / 60:.1f} min after branching"
        text += f", {info.get('teacher_pairs', 0)} teacher pairs"
        if "teacher_seconds" in info:
            text += f" (cached once in {info['teacher_seconds']:.0f} s)"
    return text



class Evaluation:
    """Rows of the report on the test split; the export of the bundle; report.json/.md and the K/β plot."""

    def __init__(self, cfg: TrainConfig, out: Path, tokenizer, slow, val: list, tests: dict[str, list], device,
                 t_start: float):
        """`tests`: {"test": items, "shifted": items}; every row is reported on each non-empty set."""
        self.cfg, self.out, self.tokenizer, self.slow, self.device, self.t_start = cfg, out, tokenizer, slow, device, t_start
        self.val, self.test = val, tests["test"]
        self.test_sets = {name: items for name, items in tests.items() if items}
        self.scorer = self.slow_scorer(slow)
        self.encoders: dict[str, FastEncoder] = {}
        self.infos: dict[str, dict] = {}
        self.rows: dict[str, list[dict]] = {name: [] for name in self.test_sets}
        self.galleries: dict[str, evaluate.Gallery] = {}
        self.queries: dict[str, evaluate.Queries] = {}
        self.summary: dict = {}

    @property
    def results(self) -> list[dict]:
        """The rows on the standard test set (the report's "results")."""
        return self.rows["test"]

    def slow_scorer(self, model) -> CaptionerScorer:
        return CaptionerScorer(model, self.tokenizer, ImagePreprocess(slow_preprocess(model)), device=self.device,
                               batch_size=256)

    def add_fast(self, name: str, spec, info: dict) -> None:
        # backend="torch": reported figures are the fp32 model's, whatever the machine's fastest backend.
        self.encoders[name] = FastEncoder(spec.model, self.tokenizer, ImagePreprocess(spec.preprocess), name,
                                          device=self.device, backend="torch")
        self.infos[name] = info

    def add_slow_info(self, name: str, info: dict) -> None:
        self.infos[name] = info

    def core(self, distilled: dict, train: list) -> None:
        """Pick the distilled student and tune re-ranking on validation; test rows; export; report."""
        cfg = self.cfg
        logger.info("choosing the distilled student and tuning re-ranking on the validation split")
        val_queries = evaluate.make_queries(self.val, cfg.eval_queries, cfg.seed + 1)
        students = [DISTILLED_NAMES[m] for m in cfg.distill_modes]
        val_gallery = evaluate.Gallery(self.val, self.scorer, {n: self.encoders[n] for n in students})
        val_r1 = {n: evaluate.evaluate_fast(val_gallery, n, val_queries)["R@1"] for n in students}
        self.shipped = max(students, key=lambda n: (val_r1[n], -students.index(n)))  # ties: the first listed
        chosen, beta_per_k, grid = evaluate.tune_rerank(
            val_gallery, self.shipped, val_queries, sorted(set(cfg.plot_ks) | set(cfg.rerank_ks)), cfg.betas,
            choose_from=cfg.rerank_ks)
        self.calibration = calibration.collect(val_gallery, val_queries, self.shipped, cfg.seed + 5,
                                               depth=max(cfg.rerank_ks))
        calibration.write(self.out / calibration.FILE, self.calibration)
        # Everything the bundle holds is fixed now: export it before the test rows (minutes of
        # exhaustive slow scoring), so the time to a usable bundle does not include them.
        mode = next(m for m in cfg.distill_modes if DISTILLED_NAMES[m] == self.shipped)
        bundle = self.export(distilled[mode][0], chosen, train)
        self.seconds_to_bundle = round(time.perf_counter() - self.t_start, 1)
        logger.info("exported %s %.1f min after the start", bundle, self.seconds_to_bundle / 60)

        for i, (name, items) in enumerate(self.test_sets.items()):
            logger.info("evaluating on the %s split", name)
            self.galleries[name] = evaluate.Gallery(items, self.scorer, self.encoders)
            self.queries[name] = evaluate.make_queries(items, cfg.eval_queries, cfg.seed + 2 + 10 * i)
            self.add_rows(self.test_rows(name, beta_per_k, chosen), name)
        self.gallery = self.galleries["test"]
        record_test_metrics(bundle, self.rows)
        self.summary = self.make_summary(train, bundle, chosen, val_r1, grid)
        self.write()

    def test_rows(self, name: str, beta_per_k: dict, chosen: RerankConfig) -> list[dict]:
        """Every fast model, the slow model, and re-ranking at each K, on one test set."""
        gallery, queries = self.galleries[name], self.queries[name]
        rows = [evaluate.evaluate_fast(gallery, model, queries) for model in self.encoders]
        rows.append(evaluate.evaluate_slow(gallery, queries))
        for k in self.cfg.rerank_ks:
            rk = RerankConfig(k=k, beta=beta_per_k[k], normalization=chosen.normalization)
            rows.append(evaluate.evaluate_rerank(gallery, self.shipped, queries, k, rk))
        return rows

    def export(self, spec, chosen: RerankConfig, train: list) -> Path:
        """The bundle, exported before the test rows exist (record_test_metrics adds them after)."""
        cfg = self.cfg
        return save_bundle(
            self.out / "bundle",
            name="synthscenes" if cfg.data.startswith("synthscenes") else cfg.preset,
            fast_model=spec.model, fast_arch=spec.arch, fast_preprocess=spec.preprocess,
            slow_model=self.slow, slow_preprocess=slow_preprocess(self.slow), tokenizer=self.tokenizer,
            rerank=chosen,
            provenance={"data": cfg.data, "preset": cfg.preset, "train_images": len(train),
                        "fast_model": self.shipped, "metrics": {},
                        "trained_by": "python -m training.distill"},
        )

    def make_summary(self, train: list, bundle: Path, chosen: RerankConfig, val_r1: dict, grid: dict) -> dict:
        cfg = self.cfg
        sizes = " / ".join(f"{len(items)} {name}" for name, items in self.test_sets.items())
        n_queries = " / ".join(f"{len(q.texts)} {name}" for name, q in self.queries.items())
        summary = {
            "preset": cfg.preset,
            "data": f"{cfg.data}: {len(train)} train / {len(self.val)} val / {sizes} images, "
                    f"{n_queries} test queries",
            "machine": report.machine(),
            "seconds_to_bundle": self.seconds_to_bundle,
            "seconds_core": round(time.perf_counter() - self.t_start, 1),
            "seconds_total": round(time.perf_counter() - self.t_start, 1),
            "stages": self.infos,
            "slow_visual_tokens_ms_per_image": round(self.gallery.ms_tokens_per_image, 3),
            "shipped_fast_model": self.shipped,
            "validation": {"fast_R@1": val_r1,
                           "rerank_R@1_by_K_beta": {str(k): {str(b): r for b, r in row.items()}
                                                    for k, row in grid.items()}},
            "rerank": chosen.to_dict(),
            "bundle": str(bundle),
            "calibration": {"file": calibration.FILE, **calibration.brief(self.calibration)},
            "results": self.results,
        }
        if "shifted" in self.rows:
            summary["results_shifted"] = self.rows["shifted"]
        # A resumed run's wall times are its own: stages finished (or begun) by earlier runs are not in them.
        summary["resumed"] = any(info.get("from_earlier_run") or info.get("steps_run", info.get("steps")) !=
                                 info.get("steps") for info in self.infos.values())
        return summary

    def ablations(self, variants: dict) -> None:
        """Rows for the measured variants, added to the same report (same test queries and gallery)."""
        for name, (spec, info) in variants.items():
            self.infos[name] = info
            if name != "slow_coarse":
                self.add_fast(name, spec, info)
        coarse = self.slow_scorer(variants["slow_coarse"][0]) if "slow_coarse" in variants else None
        for split, gallery in self.galleries.items():
            rows, queries = [], self.queries[split]
            for name in variants:
                if name == "slow_coarse":
                    rows.append(evaluate.evaluate_slow(gallery.with_slow(coarse), queries, "slow_coarse"))
                else:
                    gallery.add_fast(name, self.encoders[name])
                    rows.append(evaluate.evaluate_fast(gallery, name, queries))
            self.add_rows(rows, split)
        order = ["fast", *DISTILLED_NAMES.values(), *(n for n in variants if n != "slow_coarse"), "slow",
                 "slow_coarse", "rerank"]
        for rows in self.rows.values():
            rows.sort(key=lambda r: (order.index(r["model"]) if r["model"] in order else len(order), r["K"] or 0))
        self.summary["seconds_total"] = round(time.perf_counter() - self.t_start, 1)
        self.summary["seconds_ablation_training"] = round(sum(info["seconds"] for _, info in variants.values()), 1)
        self.write()

    def add_rows(self, rows: list[dict], split: str = "test") -> None:
        students = set(DISTILLED_NAMES.values())
        fast_info = self.infos["fast"]
        branch = fast_info["seconds"] * self.cfg.fast_steps / max(1, fast_info["steps"])  # shared NCE steps
        for row in rows:
            name = row["model"]
            parts = [self.shipped, "slow"] if name == "rerank" else [name]
            row["training_cost"] = "; ".join(training_cost(p, self.infos[p], self.cfg) for p in parts)
            row["train_seconds"] = round(sum(self.infos[p]["seconds"] for p in parts)
                                         + (branch if students & set(parts) else 0), 1)
            row["teacher_pairs"] = sum(self.infos[p].get("teacher_pairs", 0) for p in parts)
            if "ms_per_step" in self.infos.get(name, {}):
                row["ms_per_step"] = round(self.infos[name]["ms_per_step"], 1)
            if name == "rerank":
                row["fast_model"] = self.shipped
        self.rows[split].extend(rows)

    def write(self) -> None:
        report.write(self.out, self.summary)
        logger.info("wrote %s and %s", self.out / "report.json", self.summary["bundle"])
        from .plots import plot_rerank

        try:
            plot_rerank(self.summary, self.out / "rerank_k.png")
        except ImportError:
            logger.warning("matplotlib is not installed: no K/beta plot (pip install '.[train]')")


def record_test_metrics(bundle: Path, rows: dict[str, list[dict]]) -> None:
    """Add the test sets' R@1 to the exported manifest's provenance (weights and checksums untouched)."""
    metrics = {f"{prefix}{r['model']}" + (f"@{r['K']}" if r["K"] else ""): r["R@1"]
               for name, prefix in (("test", ""), ("shifted", "shifted:")) for r in rows.get(name, [])}
    manifest = json.loads((bundle / MANIFEST).read_text())  # as written: no defaults filled in
    manifest.setdefault("provenance", {})["metrics"] = metrics
    write_manifest(bundle, manifest)
