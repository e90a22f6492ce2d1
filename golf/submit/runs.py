"""The runs a submission is made of, as found on disk, and the refusals.

DIR is one run directory (it holds metrics.json) or a sweep directory whose job directories hold theirs. Each run
must have ended ok, be audited compliant (compliance.json with "compliant": true, which `audit.enabled=true` writes),
have scored with a legal protocol, say in metrics.json the seed its config.yaml has, and fit the 16,000,000 bytes
with the submission's own code (model_bytes + the size of train_gpt.py). The runs of a sweep must be one config:
the same config.yaml but for the seed, and no seed twice. Anything else is a SubmitError naming the run and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from golf.errors import GolfError
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES


class SubmitError(GolfError):
    """Runs that cannot be submitted; the message names the run and what is wrong."""


@dataclass
class SubmittedRun:
    path: Path
    config: dict[str, Any]  # config.yaml: golf's resolved config
    metrics: dict[str, Any]
    compliance: Optional[dict[str, Any]]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])


def _read(path: Path, loader) -> Any:
    try:
        return loader(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise SubmitError(f"cannot read {path}: {err}") from None


def find_runs(directory: Path) -> list[SubmittedRun]:
    if not directory.is_dir():
        raise SubmitError(f"{directory} is not a directory; give a run directory (outputs/runs/<run>) or a sweep "
                          "directory (outputs/sweeps/<sweep>)")
    dirs = [directory] if (directory / "metrics.json").is_file() else sorted(
        (p for p in directory.iterdir() if (p / "metrics.json").is_file()), key=lambda p: p.name)
    if not dirs:
        raise SubmitError(f"{directory} holds no finished run: neither it nor a folder in it has a metrics.json")
    runs = []
    for path in dirs:
        if not (path / "config.yaml").is_file():
            raise SubmitError(f"{path} has metrics.json but no config.yaml: not a golf run directory")
        compliance = path / "compliance.json"
        runs.append(SubmittedRun(path, _read(path / "config.yaml", yaml.safe_load),
                                 _read(path / "metrics.json", json.loads),
                                 _read(compliance, json.loads) if compliance.is_file() else None))
    return runs


def check_runs(runs: list[SubmittedRun], code_bytes: int) -> None:
    """Refuse (SubmitError) what cannot go into one submission; `code_bytes`: the size of its train_gpt.py."""
    for run in runs:
        m = run.metrics
        if m.get("status") not in ("ok", "over_budget"):
            raise SubmitError(f"{run.path} did not end ok (status {m.get('status')!r}): only finished, scored runs "
                              "can be submitted")
        if m.get("seed") != run.seed:
            raise SubmitError(f"{run.path}: metrics.json says seed {m.get('seed')!r} but its config.yaml says seed "
                              f"{run.seed}: the run is not what its config says; rerun it")
        if run.compliance is None:
            raise SubmitError(f"{run.path} has no compliance audit (no compliance.json): rerun with audit.enabled=true "
                              "(or `python -m golf.audit artifact=RUN_DIR` with the run's eval and ttt settings)")
        if not run.compliance.get("compliant"):
            failed = [name for name, check in run.compliance.get("checks", {}).items()
                      if isinstance(check, dict) and check.get("passed") is False]
            raise SubmitError(f"{run.path} is not compliant: its audit failed {', '.join(failed) or 'a check'} "
                              f"(compliance.json); a non-compliant evaluation cannot be submitted")
        if m.get("ttt_illegal") or run.config.get("ttt", {}).get("protocol") == "adapt_first":
            raise SubmitError(f"{run.path} evaluates with ttt.protocol=adapt_first, which adapts before it scores: "
                              "illegal under condition C3")
        total = int(m["model_bytes"]) + code_bytes
        if total > ARTIFACT_LIMIT_BYTES:
            raise SubmitError(f"{run.path} is over the budget: {m['model_bytes']:,} model bytes + {code_bytes:,} bytes "
                              f"of train_gpt.py = {total:,} > {ARTIFACT_LIMIT_BYTES:,}; shrink the model or its export")
    _one_config(runs)


def _one_config(runs: list[SubmittedRun]) -> None:
    first = runs[0]
    same = {k: v for k, v in first.config.items() if k != "seed"}
    seen: dict[int, Path] = {}
    for run in runs:
        other = {k: v for k, v in run.config.items() if k != "seed"}
        if other != same:
            keys = ", ".join(_differences(same, other)[:5])
            raise SubmitError(f"{run.path} and {first.path} differ in more than the seed ({keys}): a submission is "
                              "one config over several seeds; submit each config's runs on their own")
        if run.seed in seen:
            raise SubmitError(f"{run.path} and {seen[run.seed]} both ran seed {run.seed}: each seed once")
        seen[run.seed] = run.path


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]
