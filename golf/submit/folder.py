"""The records folder, written: <root>/records/track_<track>/<date>_<name>/ with train_gpt.py, submission.json,
README.md, requirements.txt and each seed's train log and compliance.json (the audit of its artifact). A folder that
already holds files is refused: a submission is never written over another."""

from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from golf.atomic import atomic_write_bytes, atomic_write_text
from golf.errors import writes_to
from golf.runs import git_description
from golf.submit.bundle import REQUIREMENTS, script_text
from golf.submit.readme import readme
from golf.submit.recipe import baseline_settings, recipe
from golf.submit.provenance import golf_commit
from golf.submit.runs import SubmitError, SubmittedRun, check_commits, check_runs, find_runs
from golf.submit.settings import SubmitSettings
from golf.submit.submission_json import read_baseline, submission


@dataclass
class Submission:
    folder: Path
    doc: dict[str, Any]  # submission.json
    runs: list[SubmittedRun]


def run_config(run: SubmittedRun) -> Any:
    """The run's config as golf's typed config (checked as golf.train checks it)."""
    from omegaconf import OmegaConf

    from golf.config import to_golf_config

    return to_golf_config(OmegaConf.create(run.config))


def write_submission(directory: Path, settings: SubmitSettings) -> Submission:
    runs = sorted(find_runs(directory, settings.audit_dirs()), key=lambda r: r.seed)
    cfg = run_config(runs[0])
    bundling = golf_commit(git_description())
    check_commits(runs, bundling)
    script = script_text(cfg, Path(cfg.data.shards_dir).name, Path(cfg.data.tokenizer).name, runs[0].git_text)
    code_bytes = len(script.encode("utf-8"))
    check_runs(runs, code_bytes)
    name = settings.name or cfg.name
    date = settings.date or datetime.date.today().isoformat()
    folder = Path(settings.root) / "records" / f"track_{settings.track}" / f"{date}_{name}"
    if folder.exists() and any(folder.iterdir()):
        raise SubmitError(f"{folder} already holds files; a submission is never written over another: move it, or "
                          "choose submit.name=... or submit.root=...")
    baseline: Optional[dict[str, Any]] = read_baseline(settings.baseline) if settings.baseline else None
    changed = recipe(runs[0].config, baseline_settings())
    doc = submission(runs, settings, name, date, code_bytes, changed, baseline)
    doc["golf_commit"] = {"run": golf_commit(runs[0].git_text), "bundled": bundling}
    with writes_to(folder):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "train_gpt.py", script)
        atomic_write_text(folder / "submission.json", json.dumps(doc, indent=2) + "\n")
        atomic_write_text(folder / "README.md", readme(doc, runs, changed))
        atomic_write_text(folder / "requirements.txt", "\n".join(REQUIREMENTS) + "\n")
        for run in runs:
            if (run.path / "train.log").is_file():
                atomic_write_bytes(folder / f"train_seed{run.seed}.log", (run.path / "train.log").read_bytes())
            shutil.copyfile(run.compliance_path, folder / f"compliance_seed{run.seed}.json")
    return Submission(folder, doc, runs)
