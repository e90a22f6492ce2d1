"""What W&B receives, read back from the offline files the wandb SDK wrote for a tiny 2-job sweep (its own protobuf
records, no fake module): run names, history keys and their step metrics, attached files, the artifact, and the
sweep's summary run with its config and tags."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from golf import REPO_ROOT

pytestmark = pytest.mark.slow

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=4096", "train.seq_len=128",
        "train.iterations=4", "eval.batch_seqs=16", "eval.max_tokens=4096", "eval.compressor_baselines=false",
        "ttt=score_first", "ttt.chunk_tokens=1024", "ttt.epochs=1", "ttt.batch_seqs=4",
        "logger=wandb", "logger.log_artifact=true"]

# The SDK writes leveldb's log format (32 KiB blocks of checksum, length, type + body) after a 7-byte header
# (":W&B", a 2-byte magic, a version byte).
LOG_BLOCK, LOG_HEADER, WANDB_HEADER = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list:
    """Every record of a .wandb file, parsed with the SDK's own protobuf (wandb_internal_pb2.Record)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B log"
    records, pending, pos = [], b"", WANDB_HEADER
    while pos + LOG_HEADER <= len(data):
        if LOG_BLOCK - pos % LOG_BLOCK < LOG_HEADER:  # a block's tail too short for a header is padding
            pos += LOG_BLOCK - pos % LOG_BLOCK
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + LOG_HEADER])
        body, pos = data[pos + LOG_HEADER:pos + LOG_HEADER + length], pos + LOG_HEADER + length
        if kind in (FIRST, MIDDLE):
            pending += body
        elif kind in (FULL, LAST):
            records.append(wandb_internal_pb2.Record.FromString(pending + body))
            pending = b""
    return records


class OfflineRun:
    """The parts of one offline run's records this test looks at."""

    def __init__(self, run_dir: Path):
        (self.path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
        records = wandb_records(self.path)
        self.files_dir = self.path.parent / "files"
        kinds = lambda kind: [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]  # noqa: E731
        (self.run,) = kinds("run")
        self.config = {u.key: json.loads(u.value_json) for u in self.run.config.update}
        self.step_metrics = {m.glob_name or m.name: m.step_metric for m in kinds("metric")}
        self.history = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in h.item}
                        for h in kinds("history")]
        self.files = {f.path for r in kinds("files") for f in r.files}
        self.artifacts = kinds("artifact")
        self.summary = {}
        for s in kinds("summary"):
            self.summary.update({"/".join(u.nested_key) or u.key: json.loads(u.value_json) for u in s.update})


def offline_env(tmp_path: Path) -> dict[str, str]:
    """Offline, silent, and every W&B folder (settings, cache, artifact staging) inside the test's directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    wandb_home = tmp_path / "wandb_home"
    return {**env, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1",
            "WANDB_CONFIG_DIR": str(wandb_home / "config"), "WANDB_CACHE_DIR": str(wandb_home / "cache"),
            "WANDB_DATA_DIR": str(wandb_home / "data"), "WANDB_ARTIFACT_DIR": str(wandb_home / "artifacts")}


def test_a_sweeps_offline_wandb_files_hold_names_axes_files_artifact_and_summary(text_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "golf.train", *TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}",
               f"hydra.sweep.dir={sweep}", "-m", "ttt.lr=0.01,0.02"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=offline_env(tmp_path), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert len(jobs) == 2
    assert sorted(json.loads((job / "metrics.json").read_text())["reused_artifact"] for job in jobs) == [False, True]

    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        run = OfflineRun(job)
        # named by the swept override alone (none of the shared TINY overrides), then sweep and job: unique
        (swept,) = [o for o in yaml.safe_load((job / "overrides.yaml").read_text()) if o.startswith("ttt.lr=")]
        assert run.run.display_name == f"{swept} @ {sweep.name}/{job.name}"
        assert run.run.run_group == sweep.name and "model:tiny" in run.run.tags
        assert run.config["overrides"] == yaml.safe_load((job / "overrides.yaml").read_text())

        # each family against its own axis, and every row of it carries that axis
        assert run.step_metrics["ttt/*"] == "ttt/chunk" and run.step_metrics["final/*"] == "final/step"
        chunk_rows = [row for row in run.history if "ttt/chunk_bpb" in row]
        assert len(chunk_rows) == metrics["ttt_chunks"] > 1
        assert [row["ttt/chunk"] for row in chunk_rows] == [c["chunk"] for c in metrics["diagnostics"]["ttt_chunks"]]
        (final,) = [row for row in run.history if "final/val_bpb" in row]
        assert final["final/step"] == metrics["steps"]
        for key in ("val_bpb", "pre_quant_val_bpb", "quant_val_bpb", "ttt_val_bpb", "no_ttt_val_bpb", "ttt_delta_bpb"):
            assert final[f"final/{key}"] == pytest.approx(metrics[key]), key
        if not metrics["reused_artifact"]:  # the training's curve is on W&B's own step: the training step
            assert [row["_step"] for row in run.history if "train_loss" in row][-1] == metrics["steps"]
        assert run.summary["val_bpb"] == pytest.approx(metrics["val_bpb"])

        # the run directory's files, under golf/ (W&B's own config.yaml stays W&B's)
        assert {"golf/config.yaml", "golf/train.log", "golf/metrics.json"} <= run.files
        for name in ("config.yaml", "metrics.json"):
            assert (run.files_dir / "golf" / name).read_bytes() == (job / name).read_bytes()

        # the artifact, with its sha256 and size
        (artifact,) = run.artifacts
        artifact_file = job / "artifact.golf"
        metadata = json.loads(artifact.metadata)
        assert artifact.type == "model"
        assert metadata["sha256"] == hashlib.sha256(artifact_file.read_bytes()).hexdigest()
        assert metadata["size_bytes"] == artifact_file.stat().st_size
        assert [c.path for c in artifact.manifest.contents] == ["artifact.golf"]

    summary = OfflineRun(sweep)
    assert summary.run.display_name == f"summary @ {sweep.name}" and summary.run.job_type == "summary"
    assert summary.run.run_group == sweep.name
    assert {"model:tiny", "ttt:score_first"} <= set(summary.run.tags)
    assert summary.config["swept"] == {"ttt.lr": "0.01,0.02"}
    assert "lr" not in summary.config["ttt"]  # a swept key has no single value
    assert summary.config["ttt"]["chunk_tokens"] == 1024 and summary.config["model"]["name"] == "tiny"
    assert {"golf/summary.csv", "golf/summary.md"} <= summary.files
