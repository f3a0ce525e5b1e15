"""The K/β figure of a training report: re-ranked R@1 and cost per query against K (matplotlib).

    python -m training.plots results/synthetic/report.json docs/rerank_k.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def plot_rerank(report: dict, path: Path) -> Path:
    """Left: validation R@1 by K for each β. Right: test R@1 and ms per query by K, with the baselines."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.ticker
    import matplotlib.pyplot as plt

    grid = report["validation"]["rerank_R@1_by_K_beta"]
    ks = sorted(int(k) for k in grid)
    betas = sorted({float(b) for row in grid.values() for b in row})
    rows = report["results"]
    rerank = sorted((r for r in rows if r["model"] == "rerank"), key=lambda r: r["K"])
    by_name = {r["model"]: r for r in rows if r["model"] != "rerank"}
    shipped = report.get("shipped_fast_model", "fast_distilled")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for beta in betas:
        left.plot(ks, [grid[str(k)].get(str(beta), float("nan")) for k in ks], marker="o", ms=3, label=f"β = {beta:g}")
    left.axvline(report["rerank"]["k"], color="grey", ls=":", lw=1)
    left.set(xscale="log", xlabel="K (fast shortlist re-scored by the slow model)", ylabel="R@1 (%)",
             title="Validation: R@1 by K and β")
    left.set_xticks(ks, [str(k) for k in ks])
    left.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # log-axis minor labels clutter
    left.legend(fontsize=8)

    k_test = [r["K"] for r in rerank]
    right.plot(k_test, [r["R@1"] for r in rerank], marker="o", color="C0", label="re-ranked R@1")
    if "slow" in by_name:
        right.axhline(by_name["slow"]["R@1"], color="C0", ls="--", lw=1, label="exhaustive slow R@1")
    if shipped in by_name:
        right.axhline(by_name[shipped]["R@1"], color="C0", ls=":", lw=1, label="fast only R@1")
    right.set(xscale="log", xlabel="K", ylabel="R@1 (%)", title="Test: R@1 and cost by K")
    right.set_xticks(k_test, [str(k) for k in k_test])
    right.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    cost = right.twinx()
    cost.plot(k_test, [r["ms_per_query"] for r in rerank], marker="s", color="C3", label="re-rank ms/query")
    if "slow" in by_name:
        cost.axhline(by_name["slow"]["ms_per_query"], color="C3", ls="--", lw=1, label="exhaustive slow ms/query")
    cost.set(yscale="log", ylabel="ms per query (log)")
    handles = right.get_legend_handles_labels()[0] + cost.get_legend_handles_labels()[0]
    right.legend(handles=handles, fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    plot_rerank(json.loads(Path(args[0]).read_text()), Path(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
