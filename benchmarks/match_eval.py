"""Acceptance of the match judgement (issue 17) on SynthScenes test galleries the calibration never saw.

    python -m benchmarks.match_eval [--images 500] [--queries 150]

For the standard test set (training renderer, seed 3) and the shifted test set (shifted renderer,
seed 4): `--queries` queries whose scene is in the gallery ("present") and as many captions of scenes
no gallery image shows ("absent"). Each query runs the product's stage 2 on an in-memory gallery (fast
top K, slow scores, re-rank order) and is judged by the shipped bundle's `Models.matcher`, exactly as
the engine judges re-ranked results. Goals: on present queries whose top result is relevant, that
top is "yes" in ≥ 90 %; on absent queries, no result is "yes" in ≥ 90 %. Writes
benchmarks/match_eval-result.json, .md and a reliability diagram .png. Thresholds come from the
manifest (fitted on validation data by training.calibrate_bundle), never from these sets.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastslow_desktop.models import load_bundle
from fastslow_desktop.synthscenes import generate, generate_shifted
from training.calibrate_bundle import Scored, collect
from training.data import read_synthscenes_folder
from training.params import TrainConfig

logger = logging.getLogger("benchmarks.match_eval")

HERE = Path(__file__).parent
GOAL = 0.90
BINS = 10


def judged(models, scored: Sequence[Scored]) -> list[list[tuple[str, float]]]:
    """The product's judgement of each query's re-ranked candidates (prior cached per query)."""
    return [models.matcher.judge(q.slow, [(1.0, q.text)], q.n_tokens, q.worst) for q in scored]


def summarise(scored: Sequence[Scored], verdicts: Sequence[list[tuple[str, float]]]) -> dict:
    """Goal rates, confusion tables and reliability bins of one test set."""
    present = [(q, v) for q, v in zip(scored, verdicts) if q.kind == "present"]
    absent = [(q, v) for q, v in zip(scored, verdicts) if q.kind == "absent"]
    top_rel = [(q, v) for q, v in present if q.relevant[0]]
    labels = ("yes", "maybe", "no")
    top_table = {"present, top relevant": {l: sum(v[0][0] == l for _, v in top_rel) for l in labels},
                 "present, top not relevant": {l: sum(v[0][0] == l for q, v in present if not q.relevant[0])
                                               for l in labels},
                 "absent": {l: sum(v[0][0] == l for _, v in absent) for l in labels}}
    rel = np.concatenate([q.relevant for q in scored])
    lab = [label for v in verdicts for label, _ in v]
    p = np.array([prob for v in verdicts for _, prob in v])
    all_table = {"relevant": {l: int(sum(1 for r, x in zip(rel, lab) if r and x == l)) for l in labels},
                 "not relevant": {l: int(sum(1 for r, x in zip(rel, lab) if not r and x == l)) for l in labels}}
    edges = np.linspace(0, 1, BINS + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, BINS - 1)
    bins = [{"from": round(float(edges[b]), 2), "to": round(float(edges[b + 1]), 2), "n": int((which == b).sum()),
             "mean_p": round(float(p[which == b].mean()), 4) if (which == b).any() else None,
             "relevant": round(float(rel[which == b].mean()), 4) if (which == b).any() else None}
            for b in range(BINS)]
    ece = sum(b["n"] * abs(b["mean_p"] - b["relevant"]) for b in bins if b["n"]) / max(1, len(p))
    return {
        "queries": {"present": len(present), "absent": len(absent)},
        "present_top_relevant": round(len(top_rel) / max(1, len(present)), 4),
        "top_yes_when_relevant": round(float(np.mean([v[0][0] == "yes" for _, v in top_rel])), 4) if top_rel else None,
        "absent_no_yes": (round(float(np.mean([all(l != "yes" for l, _ in v) for _, v in absent])), 4)
                          if absent else None),
        "present_top_yes_but_not_relevant": sum(v[0][0] == "yes" for q, v in present if not q.relevant[0]),
        "top_result_table": top_table, "all_judged_table": all_table, "reliability": bins, "ece": round(ece, 4),
    }


def plot(results: dict, path: Path) -> None:
    """Reliability diagram: mean predicted probability vs share relevant, per bin, per test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for (name, data), marker in zip(results.items(), ("o", "s")):
        pts = [(b["mean_p"], b["relevant"], b["n"]) for b in data["reliability"] if b["n"]]
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], marker=marker, label=f"{name} (ECE {data['ece']:.3f})")
        for x, y, n in pts:
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("match_probability (bin mean)")
    ax.set_ylabel("share of results that are relevant")
    ax.set_title("Match judgement: reliability on SynthScenes test sets")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(report: dict) -> str:
    lines = [f"# Match judgement on SynthScenes ({report['command']})", "",
             f"Bundle {report['bundle']}; calibration: {report['calibration']}", "",
             f"Galleries of {report['images']} images; K = {report['k']} re-ranked per query; "
             f"{report['seconds']:.0f} s on {report['machine']}.", "",
             "| set | present R@1 | top is yes when relevant (goal ≥ 90 %) | absent: no yes (goal ≥ 90 %) | "
             "top yes but not relevant | ECE |", "|---|---|---|---|---|---|"]
    for name, r in report["sets"].items():
        lines.append(f"| {name} | {r['present_top_relevant']:.1%} | {r['top_yes_when_relevant']:.1%} | "
                     f"{r['absent_no_yes']:.1%} | {r['present_top_yes_but_not_relevant']} | {r['ece']:.3f} |")
    for name, r in report["sets"].items():
        lines += ["", f"## {name}: the top result's judgement (queries)", "", "| | yes | maybe | no |",
                  "|---|---|---|---|"]
        lines += [f"| {row} | {c['yes']} | {c['maybe']} | {c['no']} |" for row, c in r["top_result_table"].items()]
        lines += ["", f"## {name}: every judged result (query × candidate)", "", "| | yes | maybe | no |",
                  "|---|---|---|---|"]
        lines += [f"| {row} | {c['yes']} | {c['maybe']} | {c['no']} |" for row, c in r["all_judged_table"].items()]
    lines += ["", "![reliability diagram](match_eval-result.png)", ""]
    return "\n".join(lines)


def gallery(kind: str, n: int, root: Path) -> list:
    folder = root / kind
    seed = TrainConfig().seeds[kind]
    if kind == "shifted":
        generate_shifted(folder, n, seed=seed, twins=True)
    else:
        generate(folder, n, 0, seed=seed, twins=True)
    return read_synthscenes_folder(folder)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.match_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default="resources/models/synthscenes")
    parser.add_argument("--images", type=int, default=500, help="images per test gallery")
    parser.add_argument("--queries", type=int, default=150, help="present queries and absent queries, each")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = load_bundle(args.bundle, device="cpu")
    if models.matcher is None:
        raise SystemExit(f"{args.bundle} has no match calibration: run python -m training.calibrate_bundle first")
    start, sets = time.perf_counter(), {}
    with tempfile.TemporaryDirectory(prefix="fastslow-match-eval-") as tmp:
        for kind in ("test", "shifted"):
            items = gallery(kind, args.images, Path(tmp))
            scored = collect(items, models, args.queries, seed=1, k=models.rerank_config.k, with_removed=False)
            sets[kind] = summarise(scored, judged(models, scored))
            logger.info("%s: %s", kind, {k: v for k, v in sets[kind].items() if not isinstance(v, (dict, list))})
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    report = {"command": f"python -m benchmarks.match_eval {shown}".strip(), "bundle": args.bundle,
              "calibration": {k: v for k, v in models.match_calibration.to_dict().items() if k != "fitted"},
              "images": args.images, "k": models.rerank_config.k, "seconds": round(time.perf_counter() - start, 1),
              "machine": f"{platform.machine()}, CPU only, shared", "goal": GOAL, "sets": sets}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "match_eval-result.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "match_eval-result.md").write_text(markdown(report))
    plot(sets, args.out / "match_eval-result.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
