"""The sweep report's tables: summary.csv (every column, full precision) and summary.md (the table a person reads,
with the notes on how to read it, the jobs that are not ok and the plots)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from golf.report.jobs import format_value
from golf.report.stats import NO_TTT_LABEL, RECORD_MARGIN_NATS, RECORD_P, Summary, freeze_warnings


def csv_columns(summary: Summary) -> list[str]:
    stats = [f"{m}_{s}" for m in summary.metrics for s in ("mean", "std")]
    return [*summary.keys, "label", "config", "baseline", "n", "n_ok", "n_diverged", "n_failed", "n_over_budget",
            "over_budget", *stats, "delta_val_bpb", "delta_val_loss", "p_value", "record", "seeds", "jobs"]


def render_csv(summary: Summary) -> str:
    """One row per configuration, every column; floats at full precision (repr), None as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = csv_columns(summary)
    writer.writerow(columns)
    for row in summary.rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ------------------------------------------------------------------------------------------------------- Markdown


def render_markdown(summary: Summary, plots: Sequence[Path] = ()) -> str:
    counts = summary.status_counts()
    n_jobs = len(summary.jobs)
    no_metrics = sum(1 for j in summary.jobs if j.metrics is None)
    failed = f"{counts['failed']} failed" + (f" ({no_metrics} without metrics.json)" if no_metrics else "")
    base = summary.baseline_row
    lines = [
        f"# Sweep report: `{summary.sweep_dir}`",
        "",
        f"{n_jobs} jobs: {counts['ok']} ok, {counts['diverged']} diverged, {failed}, "
        f"{counts['over_budget']} over budget. {sum(not r.get('reference') for r in summary.rows)} configurations"
        + (f", varying {', '.join(f'`{k}`' for k in summary.keys)}" if summary.keys else "")
        + (f", and the {NO_TTT_LABEL} row" if any(r.get("reference") for r in summary.rows) else "") + ".",
        "",
        f"Baseline: **{_md(base['label'])}** (marked ◀ in the table).",
        "",
    ]
    lines += _table(summary)
    lines += [
        "",
        "Sorted by mean val_bpb. Means and sample standard deviations (±) over the seeds of each configuration; "
        "n counts the jobs in the statistics (status ok or over_budget); diverged and failed jobs are counted, never "
        "averaged in. Δ: mean minus the baseline's mean (bpb in bits per byte, loss in nats per token). "
        f"p: one-sided Welch's t-test of val_loss, H1 = lower than the baseline's (— with n < 2 on either side). "
        f"record? yes = mean val_loss at least {RECORD_MARGIN_NATS} nats below the baseline's with p < {RECORD_P} "
        "and no artifact over budget.",
    ]
    if any(r.get("reference") for r in summary.rows):
        lines += ["", f"{NO_TTT_LABEL}: every configuration of this sweep runs TTT, so the reference is each artifact "
                  "the sweep trained, scored without TTT on the same windows (every TTT job measures it: "
                  "no_ttt_val_bpb in metrics.json); n counts distinct artifacts."]
    for note in freeze_warnings(summary):
        lines += ["", f"⚠ {note}"]
    if any(r["over_budget"] for r in summary.rows):
        lines += ["", "⚠ marks configurations with an artifact over the 16,000,000-byte limit: in the statistics, "
                  "never a record."]
    lost = [j for j in summary.jobs if j.status != "ok"]
    if lost:
        lines += ["", "## Jobs not ok", ""]
        for job in lost:
            config = " ".join(j for j in (job.overrides or ["(overrides.yaml missing: configuration unknown)"]))
            problem = _one_line(job.problem or "")
            what = problem if problem.startswith(job.status) else f"{job.status}: {problem}" if problem else job.status
            lines.append(f"- `{job.name}/` ({_md(config)}): {_md(what)}")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def _table(summary: Summary) -> list[str]:
    keys = summary.keys or ["config"]
    extra = summary.metrics[2:]
    header = ["", *keys, "n", "div", "fail", "over", "val_bpb", "Δ bpb", "val_loss", "Δ loss", "p", "record?", *extra]
    align = ["---", *["---"] * len(keys), *["--:"] * 4, *["--:"] * 5, ":-:", *["--:"] * len(extra)]
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    for row in summary.rows:
        marks = ["◀ baseline" if row["baseline"] else "", "⚠ over budget" if row["over_budget"] else ""]
        record = "—" if row["baseline"] else ("**yes**" if row["record"] else "no")
        cells = [
            " ".join(m for m in marks if m),
            *[_md(format_value(row.get(k)) if k != "config" else (row["config"] or "(defaults)")) for k in keys],
            str(row["n"]), str(row["n_diverged"]), str(row["n_failed"]), str(row["n_over_budget"]),
            _pm(row["val_bpb_mean"], row["val_bpb_std"], ".4f"), _signed(row["delta_val_bpb"]),
            _pm(row["val_loss_mean"], row["val_loss_std"], ".4f"), _signed(row["delta_val_loss"]),
            _p(row["p_value"]), record,
            *[_pm_auto(row[f"{m}_mean"], row[f"{m}_std"]) for m in extra],
        ]
        if row.get("reference"):  # no key is set: the first key column names the row
            cells[1] = _md(row["label"])
        if row["baseline"]:
            cells[1:1 + len(keys)] = [f"**{c}**" if c else c for c in cells[1:1 + len(keys)]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _pm(mean: Optional[float], std: Optional[float], fmt: str) -> str:
    if mean is None:
        return "—"
    return f"{mean:{fmt}}" + (f" ± {std:{fmt}}" if std is not None else "")


def _pm_auto(mean: Optional[float], std: Optional[float]) -> str:
    """About four significant digits for the mean, the std to the same decimals (seconds, bytes, ...)."""
    if mean is None:
        return "—"
    magnitude = math.floor(math.log10(abs(mean))) if mean else 0
    decimals = min(max(3 - magnitude, 0), 6)
    return _pm(mean, std, f".{decimals}f")


def _signed(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:+.4f}"


def _p(p: Optional[float]) -> str:
    if p is None:
        return "—"
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
