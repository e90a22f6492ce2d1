"""write_report: a sweep's summary.csv, summary.md and plots, each written atomically into the sweep directory; what
the command (golf/report/command.py), the Hydra multirun-end callback (golf/hydra_callbacks.py) and W&B use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from golf.atomic import atomic_write_text
from golf.report.stats import parse_baseline, summarize
from golf.report.tables import render_csv, render_markdown

CSV_NAME = "summary.csv"
MD_NAME = "summary.md"


@dataclass
class ReportResult:
    """What a report wrote: the rows (dicts, one per configuration, sorted by mean val_bpb), the Markdown text and
    the paths of the files."""

    sweep_dir: Path
    rows: list[dict[str, Any]]
    markdown: str
    csv_path: Path
    md_path: Path
    plot_paths: list[Path] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)  # the baseline row (also one of `rows`)
    keys: list[str] = field(default_factory=list)  # the varying keys: the configuration columns

    @property
    def files(self) -> list[Path]:
        return [self.csv_path, self.md_path, *self.plot_paths]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["record"]]


def write_report(sweep_dir: str | Path, baseline: Optional[dict[str, Any] | str] = None,
                 metrics: Sequence[str] = ()) -> ReportResult:
    """Summarize the sweep in `sweep_dir` and write summary.csv, summary.md and the plots that apply into it.

    baseline: {key: value} pairs (or "key=value,key=value") naming the baseline configuration; keys are override keys
    (or resolved config keys, such as ttt.protocol); default: the first configuration without TTT, else the first job's.
    metrics: extra metrics.json keys to average besides val_bpb and val_loss.
    Raises ReportError (a GolfError) for a missing or empty directory, an unmatched baseline or an unknown metric.
    """
    from golf.report.plots import make_plots  # matplotlib only when a report is written

    if isinstance(baseline, str):
        baseline = parse_baseline(baseline)
    summary = summarize(sweep_dir, baseline, metrics)
    plots = make_plots(summary, summary.sweep_dir)
    csv_path = summary.sweep_dir / CSV_NAME
    md_path = summary.sweep_dir / MD_NAME
    atomic_write_text(csv_path, render_csv(summary))
    markdown = render_markdown(summary, plots)
    atomic_write_text(md_path, markdown)
    return ReportResult(summary.sweep_dir, summary.rows, markdown, csv_path, md_path, plots, summary.baseline_row,
                        list(summary.keys))
