"""`python -m golf.report DIR [--baseline KEY=VALUE[,KEY=VALUE]] [--metrics val_bpb,ttt_time_s,...]`: a sweep's table
and plots.

DIR is a multirun's sweep directory (outputs/sweeps/<stamp>_<name>/) whose sub-directories are the jobs' run
directories. Jobs are grouped into configurations (the overrides minus seed); each row has the job counts, mean and
sample std over seeds of val_bpb, val_loss and the asked metrics, the deltas of the means against the baseline row,
the one-sided Welch's t-test p-value of val_loss (H1: lower than the baseline's) and the record flag (docs/rules.md:
at least 0.005 nats lower with p < 0.01).

Written into DIR, each atomically: summary.csv, summary.md and the PNG plots that apply. The parts:
    jobs.py      the sweep's run directories as found on disk, and their configurations
    stats.py     configurations grouped, their statistics, the baseline and the record bar
    tables.py    summary.csv and summary.md
    plots.py     the PNG plots (matplotlib, only when a report is written)
    write.py     write_report, which the command, the Hydra multirun-end callback and W&B use
    command.py   the command line (argparse, not Hydra: the report reads finished runs and composes no config)
    config.py    ReportConfig, the `report.*` keys of the end-of-multirun report
"""

from golf.report.command import main
from golf.report.jobs import ReportError
from golf.report.tables import render_csv, render_markdown
from golf.report.write import ReportResult, write_report

__all__ = ["ReportResult", "write_report", "render_markdown", "render_csv", "main", "ReportError"]
