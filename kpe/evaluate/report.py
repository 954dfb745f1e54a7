"""Reports of evaluation results: flat table rows, a rich table, F1@k curves (PNG), a markdown page, and the
train gate's decision page."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from kpe.evaluate.gate import BOOTSTRAP_DRAWS, interval_text
from kpe.evaluate.metrics import KS

if TYPE_CHECKING:
    from kpe.evaluate.harness import EvaluationResult

CURVE_KS: tuple[int, ...] = KS


def table_rows(results: Sequence[EvaluationResult]) -> list[dict]:
    """One flat row per result: the headline numbers (macro F1 over present and all gold, micro F1@5
    over all gold as in SIFRank / PromptRank) and the timing."""
    rows = []
    for r in results:
        row = {"dataset": r["dataset"], "method": r["method"], "n_docs": r["n_docs"]}
        for gold_set in ("present", "all"):
            for k in ("5", "10", "M"):
                row[f"macro_{gold_set}_f1@{k}"] = round(r["macro"][gold_set][f"f1@{k}"], 4)
        row["micro_all_f1@5"] = round(r["micro"]["all"]["f1@5"], 4)
        row["seconds"] = round(r["seconds"], 2)
        rows.append(row)
    return rows


_RICH_COLUMNS = (
    ("dataset", "dataset"), ("method", "method"), ("n_docs", "docs"),
    ("macro_present_f1@5", "F1@5 pres"), ("macro_present_f1@10", "F1@10 pres"), ("macro_present_f1@M", "F1@M pres"),
    ("macro_all_f1@5", "F1@5 all"), ("macro_all_f1@10", "F1@10 all"), ("micro_all_f1@5", "µF1@5 all"),
    ("seconds", "s"),
)


def rich_table(results: Sequence[EvaluationResult], title: str = "Keyphrase evaluation") -> Table:
    """The headline numbers of :func:`table_rows` as a rich table (F1 as percentages)."""
    table = Table(
        title=title,
        caption="F1@k pres/all: macro F1 over present/all gold (P@k = TP/k); µF1@5 all: micro, pooled counts",
    )
    for _, header in _RICH_COLUMNS:
        table.add_column(header, justify="left" if header in ("dataset", "method") else "right")
    for row in table_rows(results):
        table.add_row(*(f"{100 * row[key]:.2f}" if "f1@" in key else str(row[key]) for key, _ in _RICH_COLUMNS))
    return table


def plot_f1_curves(results: Sequence[EvaluationResult], out_path: Path | str, ks: Sequence[int] = CURVE_KS) -> Path:
    """PNG of macro F1@k against k, one panel per dataset, one line per method (solid: present gold,
    dashed: all gold). Uses the Agg backend; returns the file written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in results)) or ["(none)"]
    methods = list(dict.fromkeys(r["method"] for r in results))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.8), squeeze=False, sharey=True)
    for ax, dataset in zip(axes[0], datasets):
        for r in (r for r in results if r["dataset"] == dataset):
            for gold_set, style in (("present", "-"), ("all", "--")):
                ys = [r["macro"][gold_set][f"f1@{k}"] for k in ks]
                label = f"{r['method']} ({gold_set})"
                ax.plot(ks, ys, style, marker="o", color=colors[r["method"]], label=label)
        ax.set_title(dataset)
        ax.set_xlabel("k")
        ax.set_xticks(list(ks))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("macro F1@k")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.12 if handles else 0, 1, 1))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def markdown_report(results: Sequence[EvaluationResult], png_path: Path | str | None = None,
                    failures: Sequence[str] = ()) -> str:
    """A markdown page: the results table, the F1@k figure embedded as a data URI plus its path, and
    any method that failed."""
    rows = table_rows(results)
    lines = ["# Keyphrase evaluation", ""]
    if rows:
        columns = list(rows[0])
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    else:
        lines.append("No results.")
    lines += [
        "",
        "Macro F1 = mean of per-document F1 (precision at k divided by k even when fewer are predicted); "
        "micro F1@5 = from TP/predicted/gold counts pooled over the corpus (SIFRank / PromptRank protocol). "
        "Matching: hyphens split, lowercase, Porter stems, exact sequence match.",
    ]
    if png_path is not None:
        png_path = Path(png_path)
        data = base64.b64encode(png_path.read_bytes()).decode("ascii")
        lines += [
            "",
            f"![F1@k per method and dataset](data:image/png;base64,{data})",
            "",
            f"Figure file: `{png_path.resolve()}`",
        ]
    if failures:
        lines += ["", "## Failed", ""] + [f"- {failure}" for failure in failures]
    return "\n".join(lines) + "\n"


def gate_markdown(result: Mapping[str, Any], candidate: Mapping[str, dict], production: Mapping[str, dict]) -> str:
    """The train gate's artifact: per-set metrics of both sides, deltas, the decision and its reason
    (``result``: ``{"version", "status", "decision"}`` of the gate step)."""
    d = result["decision"]
    lines = [
        f"# Train gate: `{result['version']}` -> **{result['status']}**",
        "",
        f"Candidate `{d['candidate_version']}` against production `{d['production_version']}` "
        f"(method `{d['production_method']}`); primary metric macro {d['primary']} over present gold.",
        "",
        "| set | docs | candidate F1@5 | production F1@5 | delta | delta 95% CI | candidate F1@10 | production F1@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cmp in d["per_set"].items():
        c10 = candidate[name]["macro"]["present"].get("f1@10", float("nan"))
        p10 = production[name]["macro"]["present"].get("f1@10", float("nan"))
        lines.append(f"| {name} | {candidate[name]['n_docs']} | {cmp['candidate']:.4f} | {cmp['production']:.4f} | "
                     f"{cmp['delta']:+.4f} | {interval_text(cmp.get('ci95'))} | {c10:.4f} | {p10:.4f} |")
    lines += [
        f"| **mean** | | **{d['primary_candidate']:.4f}** | **{d['primary_production']:.4f}** | "
        f"**{d['delta']:+.4f}** | {interval_text(d.get('delta_ci95'))} | | |",
        "",
        f"- margin {d['margin']:.4f}, tolerance {d['tolerance']:.4f}, "
        f"regressions: {', '.join(d['regressions']) or 'none'}",
        f"- decision: **{'promote' if d['promote'] else 'reject'}**; final status **{result['status']}**",
        f"- reason: {d['reason']}",
        f"- 95% CI: paired bootstrap over the documents of each set ({BOOTSTRAP_DRAWS:,} draws); an interval that "
        "holds 0 means these sets cannot tell the two models apart",
    ]
    if d.get("not_promoted"):
        lines.append(f"- not promoted: {d['not_promoted']}")
    if d.get("method_choice"):
        choice = d["method_choice"]
        scores = ", ".join(f"`{m}` {v:.4f}" for m, v in choice["mean_f1@5_present"].items())
        lines.append(f"- method chosen on the gate sets: **{choice['chosen']}** (mean F1@5: {scores})")
    if d.get("training"):
        t = d["training"]
        lines.append(f"- training: {t.get('steps')} steps, {t.get('seconds', 0):.0f} s, data {t.get('docs')}, "
                     f"validation {t.get('validation')}")
    return "\n".join(lines) + "\n"
