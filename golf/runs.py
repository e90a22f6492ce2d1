"""The run directory: config.yaml, overrides.yaml, git.txt, train.log, metrics.jsonl, metrics.json (README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from golf import REPO_ROOT
from golf.atomic import atomic_write_json, atomic_write_text
from golf.errors import writes_to
from golf.logs import ensure_terminal, file_is_logged, get_logger
from golf.secrets import redact, secrets_in_environment

RUN_LOG = get_logger("golf.run")


class RunDir:
    """One job's directory. Only rank 0 writes (`writer=False` on the others turns every write into a no-op)."""

    def __init__(self, path: str | Path, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        self.secrets = secrets_in_environment()
        if writer:
            with writes_to(self.path):
                self.path.mkdir(parents=True, exist_ok=True)

    def start(self, config: dict[str, Any], overrides: list[str]) -> None:
        if not self.writer:
            return
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(redact(config, self.secrets), sort_keys=False))
        atomic_write_text(self.path / "overrides.yaml", yaml.safe_dump(redact(list(overrides), self.secrets)))
        atomic_write_text(self.path / "git.txt", redact(git_description(), self.secrets))

    def log(self, message: str) -> None:
        """A human line: printed, and appended to train.log."""
        if not self.writer:
            return
        message = redact(message, self.secrets)
        ensure_terminal()  # outside a Hydra job nothing else sets up the terminal (golf/logs.py)
        RUN_LOG.info(message)  # through logging: hydra/job_logging decides how the terminal shows it
        if file_is_logged(self.path / "train.log"):
            return
        with writes_to(self.path / "train.log"), open(self.path / "train.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def log_metrics(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        with writes_to(self.path / "metrics.jsonl"), open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(redact(json.dumps(record), self.secrets) + "\n")

    def finish(self, metrics: dict[str, Any]) -> None:
        """metrics.json, the final record, written last and atomically."""
        if self.writer:
            atomic_write_json(self.path / "metrics.json", redact(metrics, self.secrets))


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
