"""The run directory: config.yaml, overrides.yaml, git.txt, train.log, metrics.jsonl, metrics.json (DESIGN.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from tqdm import tqdm

from golf import REPO_ROOT
from golf.atomic import atomic_write_json, atomic_write_text

LOGGER_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    name: str = "wandb"
    mode: str = "offline"  # offline runs live in <run>/wandb; upload later with `wandb sync`
    project: str = "golf"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)


class RunDir:
    """One job's directory. Only rank 0 writes (`writer=False` on the others turns every write into a no-op)."""

    def __init__(self, path: str | Path, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        if writer:
            self.path.mkdir(parents=True, exist_ok=True)

    def start(self, config: dict[str, Any], overrides: list[str]) -> None:
        if not self.writer:
            return
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        atomic_write_text(self.path / "overrides.yaml", yaml.safe_dump(list(overrides)))
        atomic_write_text(self.path / "git.txt", git_description())

    def log(self, message: str) -> None:
        """A human line: printed, and appended to train.log."""
        if not self.writer:
            return
        tqdm.write(message)  # prints above a progress bar instead of through it
        with open(self.path / "train.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def log_metrics(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def finish(self, metrics: dict[str, Any]) -> None:
        """metrics.json, the final record, written last and atomically."""
        if self.writer:
            atomic_write_json(self.path / "metrics.json", metrics)


def git_description(repo: Path = REPO_ROOT) -> str:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"(git unavailable: {err})"
        return out.stdout if out.returncode == 0 else f"(git {' '.join(args)} failed: {out.stderr.strip()})"

    commit = git("rev-parse", "HEAD").strip()
    status = git("status", "--porcelain")
    diff = git("diff", "HEAD")
    dirty = "dirty" if status.strip() else "clean"
    return f"commit: {commit}\nstate: {dirty}\npython: {sys.version.split()[0]}\n\n{status}\n{diff}"
