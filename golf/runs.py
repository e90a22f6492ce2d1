"""The run directory: config.yaml, overrides.yaml, git.txt, train.log, metrics.jsonl, metrics.json (README.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from golf import REPO_ROOT
from golf.atomic import atomic_write_json, atomic_write_text
from golf.errors import writes_to
from golf.logs import ensure_terminal, file_is_logged, get_logger

RUN_LOG = get_logger("golf.run")
LOGGER_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    name: str = "wandb"
    mode: str = "offline"  # offline runs live in <run>/wandb; upload later with `wandb sync`
    project: str = "golf"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    log_artifact: bool = False  # also upload artifact.golf as a W&B Artifact (sha256 and size in its metadata)


def logger_problems(cfg: LoggerConfig) -> list[tuple[str, Any, str]]:
    if cfg.mode not in LOGGER_MODES:
        return [("logger.mode", cfg.mode, "one of " + ", ".join(LOGGER_MODES))]
    return []


# Environment variables whose values are secrets (WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...): their values
# never reach the run directory or W&B, whatever route they take (an ${oc.env:...} interpolation, a shell-expanded
# override, an error message, a git diff), whatever their length. A name is secret when one of its _-separated words
# is one of these (so TOKENIZERS_PARALLELISM is not, and neither is PWD).
SECRET_WORDS = frozenset({"KEY", "APIKEY", "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASSPHRASE",
                          "CREDENTIAL", "CREDENTIALS", "AUTH"})
# values that switch something on or off are settings, not secrets: replacing them would garble every file
FLAG_VALUES = frozenset({"", "0", "1", "true", "false", "yes", "no", "on", "off", "none", "null"})
SHORT_SECRET = 4  # shorter values are replaced only where they stand alone, not inside other words and numbers


def is_secret_name(name: str) -> bool:
    return any(word in SECRET_WORDS for word in name.upper().split("_"))


def secrets_in_environment(environ: Optional[dict[str, str]] = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items()
            if is_secret_name(name) and value.strip().lower() not in FLAG_VALUES}


def redact(obj: Any, secrets: Optional[dict[str, str]] = None) -> Any:
    """`obj` (plain dicts, lists, strings, numbers) with every secret value replaced by <redacted $NAME>."""
    secrets = secrets_in_environment() if secrets is None else secrets
    if not secrets:
        return obj
    if isinstance(obj, str):
        for name, value in sorted(secrets.items(), key=lambda item: -len(item[1])):
            if len(value) >= SHORT_SECRET:
                obj = obj.replace(value, f"<redacted ${name}>")
            else:
                obj = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", f"<redacted ${name}>", obj)
        return obj
    if isinstance(obj, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, secrets) for v in obj)
    return obj


def secret_in(text: str, secrets: Optional[dict[str, str]] = None) -> Optional[str]:
    """The name of the environment variable whose secret value `text` carries, or None."""
    return next((name for name, _ in (secrets_in_environment() if secrets is None else secrets).items()
                 if redact(text, {name: _}) != text), None)


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
