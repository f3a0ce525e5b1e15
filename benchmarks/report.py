"""The results file: JSON (machine block + result rows) and the markdown table the README shows."""

from __future__ import annotations

import json
from pathlib import Path

from .common import Result


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2g}"


def _met(row: Result) -> str:
    if row.goal is None:
        return ""
    if row.met is None:
        return "not measured"
    return "met" if row.met else "**missed**"


def markdown(machine: dict, rows: list[Result]) -> str:
    gpu = machine.get("gpu") or "no GPU"
    flags = ", ".join(machine.get("cpu_flags") or []) or "none of those tracked"
    lines = [
        (f"Measured {machine['date_utc']} on {machine['cpu']} ({machine['cores']} cores, ISA flags {flags}; "
        f"{machine['ram_gb']} GB RAM, {gpu}), torch {machine['torch']} with {machine['torch_threads']} threads "
        f"(OMP_NUM_THREADS={machine.get('omp_num_threads')}), mode `{machine['mode']}`, commit {machine.get('git_commit')}. "
        f"Load average at start {', '.join(f'{x:.1f}' for x in machine['load_average_start'])}, at end "
        f"{', '.join(f'{x:.1f}' for x in machine.get('load_average_end', []))} (a shared machine). Every ratio "
        f"is against a baseline measured in the same run."),
        "",
        "| figure | value | unit | baseline | ratio | goal | | how |",
        "|---|---:|---|---:|---:|---|---|---|",
    ]
    for row in rows:
        note = row.note.replace("|", "/").replace("\n", " ")
        lines.append(f"| `{row.name}` | {_fmt(row.value)} | {row.unit} | {_fmt(row.baseline)} | {_fmt(row.ratio)} | "
                     f"{row.goal or ''} | {_met(row)} | {note} |")
    for note in machine.get("notes", []):
        lines.append(f"\n- {note}")
    return "\n".join(lines) + "\n"


def write(out: Path, machine: dict, rows: list[Result]) -> Path:
    """Write FILE.json and FILE.md next to it; returns the markdown path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, "results": [r.to_json() for r in rows]}
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md = out.with_suffix(".md")
    md.write_text(markdown(machine, rows))
    return md
