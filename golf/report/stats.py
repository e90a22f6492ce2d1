"""A sweep's jobs grouped into configurations, with per-configuration statistics and the comparison to a baseline.

A configuration is a job's command-line overrides minus `seed=...` and `hydra...` overrides, as a sorted tuple: the
seeds of one configuration are its repeats. Jobs are read from the run directories below the sweep directory
(overrides.yaml, config.yaml, metrics.json, metrics.jsonl; README.md). Only jobs whose status is "ok" or
"over_budget" enter the statistics; "diverged" and "failed" jobs (and jobs without a readable metrics.json, which
count as failed) are counted and never averaged in.

The comparison follows the record bar in docs/rules.md: a row is a record when its mean val_loss is at least 0.005 nats
below the baseline's AND the one-sided Welch's t-test (scipy.stats.ttest_ind, equal_var=False,
alternative="less": H1 = the row's val_loss is lower than the baseline's) gives p < 0.01. With fewer than two scored
jobs on either side there is no test: p is None and the row is no record. A row with over-budget artifacts is in the
statistics but flagged, and is never a record (the artifact limit is part of the rules).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from golf.report.jobs import (
    HEADLINE_METRICS, SCORED, STATUSES, Job, ReportError, Value, config_of, format_value, load_jobs, nested_get,
    parse_value, values_equal,
)

RECORD_MARGIN_NATS = 0.005  # docs/rules.md: a record beats the best score by at least 0.005 nats ...
RECORD_P = 0.01  # ... with p < 0.01 (Welch's t-test over seeds)


# ---------------------------------------------------------------------------------------------------- groups


@dataclass
class Group:
    """The jobs of one configuration."""

    config: tuple[tuple[str, str], ...]
    jobs: list[Job] = field(default_factory=list)
    reference: bool = False  # the "no TTT" row made of the TTT jobs' own measurements (NoTTTGroup), not a config

    @property
    def settings(self) -> dict[str, Value]:
        return {k: parse_value(v) for k, v in self.config}

    @property
    def scored(self) -> list[Job]:
        return [j for j in self.jobs if j.status in SCORED]

    def count(self, status: str) -> int:
        return sum(j.status == status for j in self.jobs)

    def values(self, metric: str) -> list[float]:
        """The metric of every scored job that has it, in job order."""
        return [v for v in (j.number(metric) for j in self.scored) if v is not None]

    def config_value(self, dotted: str) -> Any:
        """A key of the resolved config.yaml (of the first job that has one)."""
        for job in self.jobs:
            if job.config is not None:
                return nested_get(job.config, dotted)
        return None

    def has_config(self) -> bool:
        return any(j.config is not None for j in self.jobs)


NO_TTT_LABEL = "no TTT (the same artifacts)"


class NoTTTGroup(Group):
    """The reference of a TTT grid that has no configuration without TTT: each artifact the grid trained, scored
    without TTT on the same windows. Every TTT job measures it; a trained model counts once (jobs sharing an artifact
    share the number), so n is the number of distinct trainings, normally the seeds."""

    def __init__(self, ttt_jobs: Sequence[Job]):
        seen: dict[tuple, Job] = {}
        for job in ttt_jobs:
            if job.status in SCORED and job.without_ttt("val_bpb") is not None:
                artifact = (job.metrics or {}).get("artifact_sha256") or job.name
                seen.setdefault((artifact, job.without_ttt("val_bpb")), job)
        super().__init__((), list(seen.values()), reference=True)

    def values(self, metric: str) -> list[float]:
        return [v for v in (j.without_ttt(metric) for j in self.jobs) if v is not None]


def group_jobs(jobs: Sequence[Job]) -> tuple[list[Group], list[Job]]:
    """Configurations in the order of their first job, and the jobs whose configuration is unknown."""
    groups: dict[tuple, Group] = {}
    unknown: list[Job] = []
    for job in jobs:
        if job.overrides is None:
            unknown.append(job)
            continue
        key = config_of(job.overrides)
        groups.setdefault(key, Group(key)).jobs.append(job)
    return list(groups.values()), unknown


def varying_keys(groups: Sequence[Group]) -> list[str]:
    """Keys whose value differs between configurations (a key missing from some configurations varies too)."""
    keys = sorted({k for g in groups for k, _ in g.config})
    out = []
    for key in keys:
        values = {dict(g.config).get(key) for g in groups}
        if len(values) > 1:
            out.append(key)
    return out


def mean_std(values: Sequence[float]) -> tuple[Optional[float], Optional[float]]:
    """Mean (None when empty) and sample standard deviation, ddof=1 (None with fewer than 2 values)."""
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) >= 2 else None)


def welch_p_lower(row: Sequence[float], baseline: Sequence[float]) -> Optional[float]:
    """One-sided Welch's t-test p-value for H1: mean(row) < mean(baseline). None when either side has n < 2 or the
    test is undefined (both samples constant)."""
    if len(row) < 2 or len(baseline) < 2:
        return None
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly identical samples: scipy warns, and the p-value says what it can
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(np.asarray(row, dtype=np.float64), np.asarray(baseline, dtype=np.float64),
                            equal_var=False, alternative="less").pvalue)
    return p if math.isfinite(p) else None


# ------------------------------------------------------------------------------------------------------ summary


@dataclass
class Summary:
    """Everything the table and the plots need."""

    sweep_dir: Path
    jobs: list[Job]
    groups: list[Group]  # in row order (sorted by mean val_bpb, unscored rows last)
    rows: list[dict[str, Any]]  # one per group, same order
    keys: list[str]  # the varying keys: the table's configuration columns
    metrics: list[str]  # val_bpb, val_loss, then the extra ones
    baseline_index: int  # into rows / groups
    unknown_jobs: list[Job]  # job directories without a readable overrides.yaml: counted as failed, in no row

    @property
    def baseline_row(self) -> dict[str, Any]:
        return self.rows[self.baseline_index]

    def status_counts(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for job in self.jobs:
            counts[job.status] += 1
        return counts


def row_label(row: dict[str, Any], keys: Sequence[str]) -> str:
    """'ttt.freeze=2, ttt.lr=0.5' from the varying keys that the row sets; the full override list if none vary."""
    parts = [f"{k}={format_value(row.get(k))}" for k in keys if row.get(k) is not None]
    return ", ".join(parts) or row["config"] or "(defaults)"


def summarize(sweep_dir: str | Path, baseline: Optional[dict[str, Any]] = None,
              metrics: Sequence[str] = ()) -> Summary:
    """Read the sweep, group its jobs and compute every row (see the module docstring for the statistics)."""
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    groups, unknown = group_jobs(jobs)
    if not groups:
        raise ReportError(f"none of the {len(jobs)} job directories of {sweep_dir} has a readable overrides.yaml "
                          f"({', '.join(j.name for j in jobs[:10])}), so their configurations are unknown")
    extra = [m for m in dict.fromkeys(m.strip() for m in metrics) if m and m not in HEADLINE_METRICS]
    _check_metrics(extra, jobs, sweep_dir)
    names = [*HEADLINE_METRICS, *extra]
    keys = varying_keys(groups)

    reference = no_ttt_reference(groups)
    if reference is not None:  # the default baseline of a TTT grid; --baseline may still pick another row
        groups.append(reference)
    base_group = groups[_baseline_position(groups, keys, baseline)]
    rows = [_row(g, keys, names) for g in groups]
    base_row = rows[groups.index(base_group)]
    base_loss = base_group.values("val_loss")
    for group, row in zip(groups, rows):
        is_base = group is base_group
        row["baseline"] = is_base
        for metric in HEADLINE_METRICS:
            mean, base_mean = row[f"{metric}_mean"], base_row[f"{metric}_mean"]
            row[f"delta_{metric}"] = mean - base_mean if mean is not None and base_mean is not None else None
        row["p_value"] = None if is_base else welch_p_lower(group.values("val_loss"), base_loss)
        delta = row["delta_val_loss"]
        row["record"] = bool(not is_base and delta is not None and delta <= -RECORD_MARGIN_NATS + 1e-12
                             and row["p_value"] is not None and row["p_value"] < RECORD_P
                             and row["n_over_budget"] == 0)

    order = sorted(range(len(rows)), key=lambda i: (rows[i]["val_bpb_mean"] is None, rows[i]["val_bpb_mean"] or 0.0, i))
    groups = [groups[i] for i in order]
    rows = [rows[i] for i in order]
    return Summary(sweep_dir, jobs, groups, rows, keys, names, groups.index(base_group), unknown)


def no_ttt_reference(groups: Sequence[Group]) -> Optional[NoTTTGroup]:
    """The "no TTT" row for a sweep whose every configuration runs TTT and whose TTT jobs recorded the score without
    it; None when some configuration has no TTT (it is the reference) or nothing was recorded."""
    if any(_without_ttt(g) for g in groups):
        return None
    reference = NoTTTGroup([j for g in groups for j in g.jobs])
    return reference if reference.jobs else None


def freeze_warnings(summary: "Summary") -> list[str]:
    """One line per TTT configuration whose ttt.freeze freezes every block of its model (from config.yaml): only
    what lies outside the blocks can adapt, or nothing at all."""
    out = []
    for row, group in zip(summary.rows, summary.groups):
        freeze, protocol = group.config_value("ttt.freeze"), group.config_value("ttt.protocol")
        blocks = group.config_value("model.shared_blocks") or group.config_value("model.num_layers")
        if group.reference or protocol in (None, "none") or not isinstance(freeze, int) or not isinstance(blocks, int):
            continue
        if freeze >= blocks:
            out.append(f"{row['label']}: ttt.freeze={freeze} freezes every block of the {blocks}-block model; only "
                       "the parameters outside the blocks (embedding, head, skip weights) can adapt, and none when "
                       "ttt.params is not `all` or ttt.freeze_embeddings=true.")
    return out


def _row(group: Group, keys: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    settings = group.settings
    row: dict[str, Any] = {k: settings.get(k) for k in keys}
    row["config"] = " ".join(k if k.startswith("~") else f"{k}={v}" for k, v in group.config)
    row["label"] = ""
    row["n"] = len(group.scored)
    row["n_ok"] = group.count("ok")
    row["n_diverged"] = group.count("diverged")
    row["n_failed"] = group.count("failed")
    row["n_over_budget"] = group.count("over_budget")
    row["over_budget"] = row["n_over_budget"] > 0
    row["seeds"] = " ".join(str(j.seed) for j in group.scored if j.seed is not None)
    row["jobs"] = " ".join(j.name for j in group.jobs)
    for metric in metrics:
        row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(group.values(metric))
    row["label"] = row_label(row, keys)
    row["reference"] = group.reference
    if group.reference:
        row["config"], row["label"] = "ttt=none (each artifact of the sweep scored without TTT)", NO_TTT_LABEL
    return row


def _check_metrics(extra: Sequence[str], jobs: Sequence[Job], sweep_dir: Path) -> None:
    with_metrics = [j for j in jobs if j.metrics]
    if not extra or not with_metrics:
        return
    available = sorted({k for j in with_metrics for k, v in j.metrics.items() if isinstance(v, (int, float))})
    missing = [m for m in extra if not any(m in j.metrics for j in with_metrics)]
    if missing:
        raise ReportError(f"--metrics {','.join(missing)}: not in any metrics.json of {sweep_dir}; numeric metrics "
                          f"there: {', '.join(available)}")


# ----------------------------------------------------------------------------------------------------- baseline


def parse_baseline(text: str) -> dict[str, str]:
    """'ttt.freeze=2,ttt.lr=0.5' -> {'ttt.freeze': '2', 'ttt.lr': '0.5'} (a comma starts a new pair only when a
    KEY= follows it, so list values keep their commas)."""
    pairs: dict[str, str] = {}
    for part in re.split(r",(?=\s*[+~]?[\w./-]+=)", text.strip()):
        key, sep, value = part.partition("=")
        key = key.strip().lstrip("+")
        if not sep or not key:
            raise ReportError(f"--baseline {text!r}: expected KEY=VALUE[,KEY=VALUE], e.g. --baseline ttt=none or "
                              "--baseline ttt.freeze=2,ttt.lr=0.5")
        pairs[key] = value.strip()
    return pairs


def _baseline_position(groups: Sequence[Group], keys: Sequence[str], baseline: Optional[dict[str, Any]]) -> int:
    if baseline:
        return _match_baseline(groups, keys, baseline)
    for i, group in enumerate(groups):  # default: the first configuration without TTT, or the "no TTT" reference
        if group.reference or _without_ttt(group):
            return i
    return 0  # else the configuration of the first job


def _without_ttt(group: Group) -> bool:
    if group.has_config():
        return str(group.config_value("ttt.protocol")).lower() == "none"
    settings = dict(group.config)
    if "ttt.protocol" in settings:
        return settings["ttt.protocol"].lower() == "none"
    if "ttt" in settings:
        return settings["ttt"].lower() == "none"
    return not any(k.startswith("ttt.") for k in settings)


def _match_baseline(groups: Sequence[Group], keys: Sequence[str], baseline: dict[str, Any]) -> int:
    override_keys = {k for g in groups for k, _ in g.config}
    if groups[-1].reference and {k: str(v).lower() for k, v in baseline.items()} in ({"ttt": "none"},
                                                                                   {"ttt.protocol": "none"}):
        return len(groups) - 1  # --baseline ttt=none: the "no TTT" reference row
    groups = [g for g in groups if not g.reference]

    def value_of(group: Group, key: str) -> Any:
        if key in override_keys:  # a key the sweep's overrides set: a configuration without it does not match
            return group.settings.get(key)
        return group.config_value(key)  # a key no override sets (ttt.protocol, ...): its resolved value

    matches = [i for i, g in enumerate(groups)
               if all(values_equal(value_of(g, k), v) for k, v in baseline.items())]
    if len(matches) == 1:
        return matches[0]
    wanted = ",".join(f"{k}={v}" for k, v in baseline.items())
    listing = "; ".join(_describe_group(g, keys) for g in (groups if not matches else [groups[i] for i in matches]))
    if not matches:
        raise ReportError(f"--baseline {wanted}: no configuration of the sweep has that value; its rows are: {listing}")
    raise ReportError(f"--baseline {wanted}: {len(matches)} configurations match ({listing}); add KEY=VALUE pairs to "
                      "pick one")


def _describe_group(group: Group, keys: Sequence[str]) -> str:
    settings = group.settings
    parts = [f"{k}={format_value(settings[k])}" for k in keys if k in settings]
    return ",".join(parts) or " ".join(f"{k}={v}" for k, v in group.config) or "(defaults)"
