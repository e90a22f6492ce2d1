"""W&B mirrors a run and never fails or stalls it: a fake wandb module stands in for the real one (what the real
SDK writes is checked in tests/test_wandb_offline_e2e.py)."""

from __future__ import annotations

import hashlib
import sys
import types

import pytest

from golf.logger_config import LoggerConfig
from golf.wandb_run import FINAL_STEP, INIT_TIMEOUT_S, TTT_STEP, WandbRun


class FakeArtifact:
    def __init__(self, name, type, metadata, description):
        self.name, self.type, self.metadata, self.files = name, type, metadata, []

    def add_file(self, path, name, policy):
        self.files.append((path, name, policy))


class FakeRun:
    def __init__(self, files_dir):
        self.logged, self.summary, self.finished = [], {}, False
        self.metrics, self.saved, self.artifacts = {}, [], []
        self.dir = str(files_dir)

    def define_metric(self, name, step_metric=None):
        self.metrics[name] = step_metric

    def log(self, record, step=None):
        self.logged.append((step, record))

    def save(self, path, base_path, policy):
        self.saved.append((path, base_path, policy))

    def log_artifact(self, artifact):
        self.artifacts.append(artifact)

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch, tmp_path):
    module = types.SimpleNamespace(calls=[])

    def init(**kwargs):
        module.calls.append(kwargs)
        if module.fail:
            raise RuntimeError("no network")
        module.run = FakeRun(tmp_path / "wandb_files")
        return module.run

    module.init, module.fail = init, False
    module.Settings = lambda **kwargs: kwargs
    module.Artifact = FakeArtifact
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return module


def test_offline_run_gets_the_resolved_config_and_a_bounded_init(fake_wandb, tmp_path):
    run = WandbRun(LoggerConfig(group="g", tags=["model:tiny"]), tmp_path, "r1", {"seed": 3})
    (call,) = fake_wandb.calls
    assert call["mode"] == "offline" and call["dir"] == str(tmp_path) and call["config"] == {"seed": 3}
    assert call["group"] == "g" and call["tags"] == ["model:tiny"] and call["name"] == "r1"
    assert call["settings"]["init_timeout"] == INIT_TIMEOUT_S
    run.log({"loss": 1.0}, step=5)
    run.finish({"val_bpb": 2.0, "nested": {"x": 1}})
    assert fake_wandb.run.logged == [(5, {"loss": 1.0})]
    assert fake_wandb.run.summary == {"val_bpb": 2.0} and fake_wandb.run.finished


def test_ttt_chunks_and_final_scores_each_get_their_own_axis(fake_wandb, tmp_path):
    run = WandbRun(LoggerConfig(), tmp_path, "r", {})
    assert fake_wandb.run.metrics == {TTT_STEP: None, "ttt/*": TTT_STEP, FINAL_STEP: None, "final/*": FINAL_STEP}
    run.log_chunk({"ttt_chunk": 3, "ttt_chunk_bpb": 1.5})
    run.log_final({"val_bpb": 1.25, "ttt_delta_bpb": -0.5, "status": "ok", "ttt_illegal": False, "steps": 7},
                  train_steps=7)
    (_, chunk), (_, final) = fake_wandb.run.logged
    assert chunk == {"ttt/chunk": 3, "ttt/chunk_bpb": 1.5}
    assert final == {"final/step": 7, "final/val_bpb": 1.25, "final/ttt_delta_bpb": -0.5}  # scores only, not flags


def test_finish_attaches_the_run_files_under_golf_and_the_artifact_when_asked(fake_wandb, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.yaml", "train.log"):  # metrics.json missing: attached are those that exist
        (run_dir / name).write_text(f"{name} text")
    artifact = run_dir / "artifact.golf"
    artifact.write_bytes(b"GOLFART\x01 weights")
    run = WandbRun(LoggerConfig(log_artifact=True), run_dir, "r", {})
    run.finish({"artifact_path": str(artifact), "artifact_bytes": 99})
    files_dir = tmp_path / "wandb_files"
    assert [(path, base) for path, base, _ in fake_wandb.run.saved] == [
        (str(files_dir / "golf" / name), str(files_dir)) for name in ("config.yaml", "train.log")]
    assert (files_dir / "golf" / "train.log").read_text() == "train.log text"
    (logged,) = fake_wandb.run.artifacts
    sha256 = hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert logged.type == "model" and sha256[:16] in logged.name
    assert logged.metadata == {"sha256": sha256, "size_bytes": artifact.stat().st_size, "artifact_bytes": 99}
    assert logged.files == [(str(artifact), "artifact.golf", "immutable")]


def test_no_artifact_unless_logger_log_artifact(fake_wandb, tmp_path):
    artifact = tmp_path / "artifact.golf"
    artifact.write_bytes(b"x")
    WandbRun(LoggerConfig(), tmp_path, "r", {}).finish({"artifact_path": str(artifact)})
    assert fake_wandb.run.artifacts == [] and fake_wandb.run.finished


def test_environment_mode_wins_and_disabled_never_calls_wandb(fake_wandb, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    WandbRun(LoggerConfig(mode="online"), tmp_path, "r", {})
    assert fake_wandb.calls == []


def test_logger_none_never_calls_wandb(fake_wandb, tmp_path):
    WandbRun(LoggerConfig(name="none", mode="disabled"), tmp_path, "r", {}).log({"a": 1})
    assert fake_wandb.calls == []


def test_a_failing_init_turns_wandb_off_with_a_warning(fake_wandb, tmp_path):
    fake_wandb.fail = True
    with pytest.warns(UserWarning, match="W&B is off"):
        run = WandbRun(LoggerConfig(mode="online"), tmp_path, "r", {})
    run.log({"loss": 1.0}, step=1)  # no error: W&B is simply off
    run.log_chunk({"ttt_chunk": 0})
    run.finish({})
    assert run.run is None
