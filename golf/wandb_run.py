"""W&B on rank 0, offline by default. W&B is a mirror of the run directory: it never fails or stalls a job.

What a run holds: the resolved config, the training curves against the training step, the TTT per-chunk records
against `ttt/chunk`, the final scores (`final/*`) against `final/step` (the scored model's training steps) in history
and in the summary, the run directory's config.yaml, train.log and metrics.json as run files (under golf/), and with
logger.log_artifact=true the artifact as a W&B Artifact.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from golf.digest import file_sha256
from golf.logger_config import LoggerConfig
from golf.secrets import redact

# Online init with no network would otherwise wait W&B's default 90 s before giving up.
INIT_TIMEOUT_S = 30

# Each family of metrics plots against its own x axis: (step metric, the keys it is the axis of).
TTT_STEP, FINAL_STEP = "ttt/chunk", "final/step"
STEP_AXES = ((TTT_STEP, "ttt/*"), (FINAL_STEP, "final/*"))

# metrics.json keys that are scores (or their costs): logged to history as final/<key> as well as to the summary.
FINAL_KEYS = ("val_bpb", "val_loss", "pre_quant_val_bpb", "pre_quant_val_loss", "quant_val_bpb", "quant_val_loss",
              "quant_gap_bpb", "sliding_val_bpb", "no_ttt_val_bpb", "ttt_val_bpb", "ttt_delta_bpb", "artifact_bytes",
              "eval_time_s", "ttt_time_s")

# Files of the run directory attached to its W&B run. They go under golf/ in the run's files: W&B keeps its own
# config.yaml (the run's config) at the top, and ours would replace it.
RUN_FILES = ("config.yaml", "train.log", "metrics.json")
FILES_FOLDER = "golf"


def wandb_key(record_key: str) -> str:
    """A TTT chunk record's metrics.jsonl key as W&B shows it: `ttt_chunk_bpb` -> `ttt/chunk_bpb`."""
    return "ttt/" + (record_key[len("ttt_"):] if record_key.startswith("ttt_") else record_key)


def wandb_enabled(cfg: LoggerConfig) -> bool:
    """WANDB_MODE in the environment wins (tests and CI set it to disabled)."""
    return cfg.name != "none" and (os.environ.get("WANDB_MODE") or cfg.mode) != "disabled"


class WandbRun:
    def __init__(self, cfg: LoggerConfig, run_dir: Path, name: str, config: dict[str, Any], job_type: str = "train"):
        self.run = None
        self.cfg, self.run_dir = cfg, Path(run_dir)
        if not wandb_enabled(cfg):
            return
        mode = os.environ.get("WANDB_MODE") or cfg.mode
        argv = sys.argv
        try:
            import wandb

            sys.argv = redact(list(argv))  # W&B records the command line in the run's metadata
            self.run = wandb.init(
                project=cfg.project,
                entity=cfg.entity,
                group=redact(cfg.group),
                tags=redact(list(cfg.tags)),
                name=redact(name),
                job_type=job_type,
                config=redact(config),  # environment secrets never reach W&B, even through the config
                dir=str(run_dir),
                mode=mode,
                settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, console="off", silent=True),
            )
        except Exception as err:  # W&B trouble must not cost a training run
            warnings.warn(f"W&B is off for this run: wandb.init failed ({redact(str(err))})", stacklevel=2)
            self.run = None
        finally:
            sys.argv = argv
        if self.run is not None:
            self._define_axes()

    def _define_axes(self) -> None:
        try:
            for step_metric, keys in STEP_AXES:
                self.run.define_metric(step_metric)
                self.run.define_metric(keys, step_metric=step_metric)
        except Exception as err:  # the run still records everything; charts then share W&B's own step
            warnings.warn(f"W&B charts keep the default x axis: define_metric failed ({err})", stacklevel=3)

    def log(self, record: dict[str, Any], step: int | None = None) -> None:
        if self.run is None:
            return
        try:
            self.run.log(record, step=step)
        except Exception as err:
            warnings.warn(f"W&B log failed, W&B is off from here: {err}", stacklevel=2)
            self.run = None

    def log_chunk(self, record: Mapping[str, Any]) -> None:
        """One TTT chunk record (metrics.jsonl's ttt_chunk, ttt_chunk_bpb, ...) against the chunk index."""
        self.log({wandb_key(key): value for key, value in record.items()})

    def log_final(self, metrics: Mapping[str, Any], train_steps: int) -> None:
        """The scores of metrics.json into history (final/<key>), one point at the scored model's training steps."""
        scores = {f"final/{key}": metrics[key] for key in FINAL_KEYS
                  if isinstance(metrics.get(key), (int, float)) and not isinstance(metrics.get(key), bool)}
        if scores:
            self.log({FINAL_STEP: train_steps, **scores})

    def finish(self, summary: dict[str, Any], files: Sequence[str] = RUN_FILES) -> None:
        """Summary values, the run directory's `files` (those that exist) and, with logger.log_artifact, the
        artifact; then the run ends."""
        if self.run is None:
            return
        try:
            self._attach(files)
            artifact = summary.get("artifact_path")
            if self.cfg.log_artifact and artifact and Path(artifact).is_file():
                self._log_artifact(Path(artifact), summary)
        except Exception as err:
            warnings.warn(f"W&B could not attach the run's files: {redact(str(err))}", stacklevel=2)
        try:
            for key, value in summary.items():
                if isinstance(value, (int, float, str, bool)):
                    self.run.summary[key] = redact(value)
            self.run.finish()
        except Exception as err:
            warnings.warn(f"W&B finish failed: {err}", stacklevel=2)
        self.run = None

    def _attach(self, files: Sequence[str]) -> None:
        """Copies (the files are final by now, and already redacted by RunDir) uploaded when the run is synced."""
        folder = Path(self.run.dir) / FILES_FOLDER
        for name in files:
            source = self.run_dir / name
            if source.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, folder / name)
                self.run.save(str(folder / name), base_path=self.run.dir, policy="end")

    def _log_artifact(self, path: Path, metrics: Mapping[str, Any]) -> None:
        """Named by its content: jobs that share a trained artifact (the cache) share one W&B artifact version."""
        import wandb

        sha256 = file_sha256(path)
        metadata = {"sha256": sha256, "size_bytes": path.stat().st_size}
        metadata.update({key: metrics[key] for key in ("artifact_bytes", "code_bytes", "bits_per_weight")
                         if isinstance(metrics.get(key), (int, float)) and math.isfinite(metrics[key])})
        artifact = wandb.Artifact(f"golf-artifact-{sha256[:16]}", type="model", metadata=metadata,
                                  description=f"{path.name}: sha256 {sha256}, {metadata['size_bytes']:,} bytes")
        artifact.add_file(str(path), name=path.name, policy="immutable")  # no copy: the file is final
        self.run.log_artifact(artifact)
