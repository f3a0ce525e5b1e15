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


def write(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# training.distill --preset {report['preset']}",
        "",
        f"Data: {report['data']}. Machine: {report['machine']['cores']} CPU cores"
        + (f", {report['machine']['cuda']}" if report["machine"]["cuda"] else ", no GPU")
        + f". Wall time: {report['seconds_core'] / 60:.1f} min to the exported bundle"
        + (f", {report['seconds_total'] / 60:.1f} min with the variants"
           if report["seconds_total"] > report["seconds_core"] else "") + ".",
        "",
        "| " + " | ".join(COLUMNS) + " | training cost |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for row in report["results"]:
        cells = ["" if row.get(c) is None else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + f" | {row.get('training_cost', '')} |")
    shipped = (f"Shipped fast model: {report.get('shipped_fast_model')} (best validation R@1: "
               f"{report.get('validation', {}).get('fast_R@1')}). Exported re-rank defaults: {report['rerank']}")
    lines += ["", shipped, ""]
    (out / "report.md").write_text("\n".join(lines))
