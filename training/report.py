"""Report files: OUT/report.json (machine-readable) and OUT/report.md (the table for the README)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

COLUMNS = ("model", "K", "R@1", "R@5", "R@10", "ms_per_query")


def machine() -> dict:
    import os

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def table(rows: list[dict]) -> list[str]:
    """Markdown lines of one results table."""
    lines = ["| " + " | ".join(COLUMNS) + " | training cost |", "|" + "---|" * (len(COLUMNS) + 1)]
    for row in rows:
        cells = ["" if row.get(c) is None else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + f" | {row.get('training_cost', '')} |")
    return lines


def _listed(values: list[float]) -> str:
    return ", ".join(str(v) for v in values)


def seed_table(seeds: dict) -> list[str]:
    """Markdown lines of the seed comparison: R@1 mean ± sd per model and test set, and each gain."""
    sets = list(seeds["R@1"])
    lines = [f"Seeds {seeds['seeds']} (fast and each distilled student at equal student steps and batches; "
             "one teacher): R@1 mean ± sd", "", "| model | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for model in seeds["R@1"][sets[0]]:
        cells = [f"{seeds['R@1'][s][model]['mean']} ± {seeds['R@1'][s][model]['sd']} "
                 f"({_listed(seeds['R@1'][s][model]['values'])})" for s in sets]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    for model, by_set in seeds["gain"].items():
        # sd: the larger of the two models' spreads (what gain_vs_2sd tests); the paired sd, over the
        # per-seed gains, is shown beside it because the two models of a seed share their first steps
        cells = [f"{g['mean']} ± {g['sd']} ({_listed(g['values'])}; paired sd "
                 f"{g['paired_sd']}), > 2 sd: {g['gain_vs_2sd']}" for g in by_set.values()]
        lines.append(f"| gain {model} − fast | " + " | ".join(cells) + " |")
    return lines


def write(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# training.distill --preset {report['preset']}",
        "",
        f"Data: {report['data']}. Machine: {report['machine']['cores']} CPU cores"
        + (f", {report['machine']['cuda']}" if report["machine"]["cuda"] else ", no GPU")
        + (f". Wall time: {report['seconds_to_bundle'] / 60:.1f} min to the exported bundle, "
           f"{report['seconds_core'] / 60:.1f} min with the test rows" if "seconds_to_bundle" in report
           else f". Wall time: {report['seconds_core'] / 60:.1f} min to the exported bundle and its test rows")
        + (f", {report['seconds_total'] / 60:.1f} min with the variants"
           if report["seconds_total"] > report["seconds_core"] else "")
        + (" (of this resumed run only: time spent by earlier runs on its stages is not counted)"
           if report.get("resumed") else "") + ".",
        "",
        *table(report["results"]),
    ]
    if report.get("results_shifted"):
        lines += ["", "Shifted test set (another renderer, evaluation only: sizes, aspect, textures, blur, "
                  "noise, JPEG 60-95; re-rank K and β as chosen on validation):", "",
                  *table(report["results_shifted"])]
    if report.get("seeds"):
        lines += ["", *seed_table(report["seeds"])]
    shipped = (f"Shipped fast model: {report.get('shipped_fast_model')} (best validation R@1: "
               f"{report.get('validation', {}).get('fast_R@1')}). Exported re-rank defaults: {report['rerank']}")
    lines += ["", shipped, ""]
    (out / "report.md").write_text("\n".join(lines))
