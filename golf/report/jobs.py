"""A sweep's jobs as found on disk: each run directory below the sweep directory (overrides.yaml, config.yaml,
metrics.json, metrics.jsonl; README.md), its status, and its configuration (the command-line overrides minus
`seed=...` and `hydra...`, as a sorted tuple: the seeds of one configuration are its repeats). A job without a
readable metrics.json counts as failed. The grouping and the statistics are golf/report/stats.py's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from golf.errors import GolfError

STATUSES = ("ok", "diverged", "failed", "over_budget")
SCORED = ("ok", "over_budget")  # the statuses whose numbers enter the statistics
HEADLINE_METRICS = ("val_bpb", "val_loss")
JOB_FILES = ("overrides.yaml", "config.yaml", "metrics.json", "metrics.jsonl", "train.log")

Value = Any  # int | float | str | None: a typed override value


class ReportError(GolfError):
    """A sweep directory that cannot be reported on, or a --baseline / --metrics that does not fit the sweep."""


# ---------------------------------------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One job directory of a sweep, as found on disk."""

    path: Path
    overrides: Optional[list[str]]  # None when overrides.yaml is missing or unreadable
    config: Optional[dict[str, Any]]  # config.yaml (resolved, nested), None when missing
    metrics: Optional[dict[str, Any]]  # metrics.json, None when missing or unreadable
    status: str  # one of STATUSES; "failed" when metrics.json is missing, unreadable or has an unknown status
    problem: Optional[str] = None  # why a job is not scored (missing metrics.json, the error, diverged at step ...)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seed(self) -> Optional[int]:
        for item in self.overrides or ():
            key, value = split_override(item)
            if key == "seed":
                parsed = parse_value(value)
                return parsed if isinstance(parsed, int) else None
        for source in (self.metrics, self.config):
            if source and isinstance(source.get("seed"), int):
                return source["seed"]
        return None

    def number(self, metric: str) -> Optional[float]:
        """A finite number from metrics.json (bools count as 0/1), else None."""
        value = (self.metrics or {}).get(metric)
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        return None

    def without_ttt(self, metric: str) -> Optional[float]:
        """val_bpb / val_loss of this job's artifact scored without TTT, which every TTT job measures on the same
        windows (no_ttt_*; runs from before that key: sliding_* when sliding windows ran, else quant_*). None for a
        job that did not run TTT or another metric."""
        m = self.metrics or {}
        if metric not in HEADLINE_METRICS or m.get("ttt_val_bpb") is None and m.get("no_ttt_val_bpb") is None:
            return None
        windows = "sliding" if m.get("sliding_val_bpb") is not None else "quant"
        for key in (f"no_ttt_{metric}", f"{windows}_{metric}"):
            if key in m:
                return self.number(key)
        return None

    def chunk_bpb(self) -> dict[int, float]:
        """The TTT per-chunk bpb from metrics.jsonl (chunk index -> bpb; a chunk logged twice keeps its last value)."""
        out: dict[int, float] = {}
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return out
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line or "ttt_chunk" not in line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash
                    continue
                chunk, bpb = record.get("ttt_chunk"), record.get("ttt_chunk_bpb")
                if isinstance(chunk, int) and isinstance(bpb, (int, float)) and math.isfinite(bpb):
                    out[chunk] = float(bpb)
        return out


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Sub-directories that are run directories (hold a run file, or are named by a job number), by job number."""
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
            and (p.name.isdigit() or any((p / name).exists() for name in JOB_FILES))]
    return sorted(jobs, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))


def load_job(path: Path) -> Job:
    overrides = _read_yaml(path / "overrides.yaml")
    if overrides is not None and not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        overrides = None
    config = _read_yaml(path / "config.yaml")
    config = config if isinstance(config, dict) else None
    metrics_path = path / "metrics.json"
    metrics: Optional[dict[str, Any]] = None
    problem: Optional[str] = None
    if not metrics_path.is_file():
        status, problem = "failed", "no metrics.json (the job stopped before writing it)"
    else:
        try:
            loaded = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            loaded, problem = None, f"unreadable metrics.json ({err})"
        metrics = loaded if isinstance(loaded, dict) else None
        status = metrics.get("status") if metrics else None
        if status not in STATUSES:
            problem = problem or f"metrics.json has status {status!r}, not one of {', '.join(STATUSES)}"
            status = "failed"
        elif status == "failed":
            problem = str(metrics.get("error") or "failed")
        elif status == "diverged":
            step = metrics.get("diverged_at_step")
            problem = f"diverged at step {step}" if step is not None else "diverged"
        elif status == "over_budget":
            problem = f"artifact over budget ({metrics.get('artifact_bytes')} bytes)"
    if overrides is None and problem is None:
        problem = "no readable overrides.yaml"
    return Job(path, overrides, config, metrics, status, problem)


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def load_jobs(sweep_dir: str | Path) -> list[Job]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.exists():
        raise ReportError(f"sweep directory {sweep_dir} does not exist; give the directory of a multirun, such as "
                          "outputs/sweeps/<stamp>_<name>/, whose sub-directories 0/, 1/, ... are the jobs")
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir} is a file, not a sweep directory; give the directory of a multirun, such as "
                          "outputs/sweeps/<stamp>_<name>/, whose sub-directories 0/, 1/, ... are the jobs")
    dirs = find_job_dirs(sweep_dir)
    if not dirs:
        hint = (" It looks like a single run directory (it holds the run files itself); a report compares the jobs "
                "of a sweep.") if any((sweep_dir / name).exists() for name in JOB_FILES) else ""
        raise ReportError(f"sweep directory {sweep_dir} holds no job directories (sub-directories 0/, 1/, ... with "
                          f"overrides.yaml, config.yaml or metrics.json), so there is nothing to report.{hint} "
                          "Give the directory of a multirun, such as outputs/sweeps/<stamp>_<name>/")
    return [load_job(d) for d in dirs]


# ---------------------------------------------------------------------------------------------- configurations


def split_override(item: str) -> tuple[str, str]:
    """'ttt.lr=0.5' -> ('ttt.lr', '0.5'); '+model.x=1' -> ('model.x', '1'); '~key' -> ('~key', '')."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if key.startswith("+"):
        key = key.lstrip("+")
    return key, value.strip() if sep else ""


def is_ignored_key(key: str) -> bool:
    return key == "seed" or key == "hydra" or key.startswith(("hydra.", "hydra/"))


def config_of(overrides: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The canonical configuration of a job: its overrides minus seed and hydra ones, as sorted (key, value) pairs."""
    pairs = {}
    for item in overrides:
        key, value = split_override(item)
        if key and not is_ignored_key(key):
            pairs[key] = value  # a key given twice: the last one wins, as in Hydra
    return tuple(sorted(pairs.items()))


_INT = re.compile(r"^[+-]?\d+$")


def parse_value(text: Any) -> Value:
    """An override's value typed: int, float, or the string itself (true/false/null stay strings)."""
    if not isinstance(text, str):
        return text
    s = text.strip()
    if _INT.match(s):
        return int(s)
    try:
        value = float(s)
    except ValueError:
        return s
    return value if math.isfinite(value) or s.lower() in ("inf", "+inf", "-inf", "nan") else s


def values_equal(a: Value, b: Value) -> bool:
    if a is None or b is None:
        return a is None and b is None
    ta, tb = parse_value(str(a) if isinstance(a, bool) else a), parse_value(str(b) if isinstance(b, bool) else b)
    if isinstance(ta, (int, float)) and isinstance(tb, (int, float)):
        return float(ta) == float(tb)
    return str(ta).lower() == str(tb).lower()


def value_sort_key(value: Value) -> tuple:
    """None first, then numbers in numeric order, then strings."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def format_value(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def nested_get(config: Optional[dict[str, Any]], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
