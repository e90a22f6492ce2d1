"""Checkpoints and train.resume=auto: an interrupted training, started again with the same command, ends with the
same weights and metrics as one that never stopped (bit for bit on CPU). Slow: they train."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from golf.checkpoint import Checkpointer, load_checkpoint
from golf.cli import compose
from golf.config import to_golf_config
from golf.errors import DataError
from golf.data.prepare import ensure_prepared
from golf.job import run_job
from golf.job.prepare import training_data_sha256
from golf.job.train import checkpoint_dir
from golf.trainer import Trainer

from testkit import REPO_ROOT

pytestmark = pytest.mark.slow

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=2048", "train.seq_len=128",
        "train.log_every=5", "train.warmdown_steps=10", "eval.batch_seqs=16", "eval.max_tokens=8193",
        "eval.compressor_baselines=false", "logger=none"]
# every piece of state a checkpoint must carry: Muon and Adam, EMA, QAT (switched on mid-run, soft round),
# the layer loop switched on mid-run, Reptile with its own data position
STATEFUL = ["optim.ema.decay=0.9", "quant=int8_zlib", "quant.qat.enabled=true", "quant.qat.start=0.3",
            "quant.qat.soft_round=true", "model.loop_start=1", "model.loop_end=3", "model.loop_repeats=1",
            "model.loop_from=0.4", "optim.reptile.enabled=true", "optim.reptile.every=4",
            "optim.reptile.inner_steps=1"]
SAME = ("val_bpb", "val_loss", "pre_quant_val_bpb", "last_train_loss", "steps", "train_tokens", "artifact_sha256",
        "qat_from_step", "reptile_meta_steps")


class Interrupted(BaseException):
    """Stands in for a kill right after a checkpoint was written."""


def config(corpus: Path, root: Path, *extra: str):
    return to_golf_config(compose([*TINY, f"data.path={corpus}", f"paths.root={root}", "train.iterations=20",
                                   "train.checkpoint_every=5", "train.keep_checkpoints=2", *STATEFUL, *extra]))


def ckpt_dir(cfg) -> Path:
    """Where run_job keeps this training's checkpoints (keyed on the data as prepared)."""
    return checkpoint_dir(cfg, training_data_sha256(cfg, ensure_prepared(cfg.data, log=lambda _: None), lambda _: None))


def test_an_interrupted_training_resumes_to_the_same_weights(text_corpus, tmp_path, monkeypatch):
    whole = run_job(config(text_corpus, tmp_path / "a"), tmp_path / "a" / "run", overrides=[])
    assert whole["status"] == "ok" and whole["resumed_from_step"] is None

    cfg = config(text_corpus, tmp_path / "b")
    save = Trainer.save_checkpoint

    def save_then_die(trainer: Trainer, step: int) -> None:
        save(trainer, step)
        if step == 15:
            raise Interrupted

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        run_job(cfg, tmp_path / "b" / "first", overrides=[])
    # keep_checkpoints=2: steps 10 and 15 remain, 5 was pruned
    assert Checkpointer(ckpt_dir(cfg), 5, 2).steps() == [10, 15]
    assert json.loads((tmp_path / "b" / "first" / "metrics.json").read_text())["status"] == "failed"

    monkeypatch.setattr(Trainer, "save_checkpoint", save)
    resumed = run_job(cfg, tmp_path / "b" / "second", overrides=[])
    assert resumed["resumed_from_step"] == 15
    assert resumed["resumed_from_run"] == str(tmp_path / "b" / "first")  # linked to the run it continues
    for key in SAME:
        assert resumed[key] == whole[key], key
    assert whole["qat_from_step"] is not None and whole["qat_from_step"] < 15  # QAT state crossed the restart
    assert "resumed from" in (tmp_path / "b" / "second" / "train.log").read_text()
    assert not ckpt_dir(cfg).exists()  # a finished training leaves its artifact, not its checkpoints


def test_a_checkpoint_that_does_not_fit_is_refused_and_resume_never_starts_anew(text_corpus, tmp_path):
    auto = config(text_corpus, tmp_path)
    path = Checkpointer(ckpt_dir(auto), 5, 2).save(5, {"not": "a trainer state"})
    with pytest.raises(DataError, match="does not fit this training") as refused:
        run_job(auto, tmp_path / "auto", overrides=[])
    assert str(path) in str(refused.value)
    never = config(text_corpus, tmp_path, "train.resume=never")
    assert ckpt_dir(never) == ckpt_dir(auto)  # the same training: it would find that file
    metrics = run_job(never, tmp_path / "run", overrides=[])
    assert metrics["status"] == "ok" and metrics["resumed_from_step"] is None and metrics["steps"] == 20


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_crafted_to_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    path = tmp_path / "step_00000005.pt"
    path.write_bytes(pickle.dumps({"model": payload}, protocol=2))
    with pytest.raises(DataError, match="step_00000005.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_sigkill_and_the_same_command_again(text_corpus, tmp_path):
    """A real kill: the process is SIGKILLed once its second checkpoint is on disk, then the same command runs."""
    def command(root: Path) -> list[str]:
        return [sys.executable, "-m", "golf.train", *TINY, f"data.path={text_corpus}", f"paths.root={root}",
                "train.iterations=40", "train.checkpoint_every=5", "optim.ema.decay=0.9"]

    env = {**os.environ, "WANDB_MODE": "disabled"}
    whole = subprocess.run(command(tmp_path / "a"), cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-3000:]

    root = tmp_path / "b"
    victim = subprocess.Popen(command(root), cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(root.glob("checkpoints/*/step_00000010.pt.sha256")) and victim.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint at step 10 within 300 s"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL  # killed mid-training, not finished

    again = subprocess.run(command(root), cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]

    def final(root: Path) -> dict:
        done = [json.loads(p.read_text()) for p in root.glob("runs/*/metrics.json")]
        return next(m for m in done if m["status"] == "ok")

    first, resumed = final(tmp_path / "a"), final(root)
    assert resumed["resumed_from_step"] is not None and resumed["resumed_from_step"] >= 10
    for key in ("val_bpb", "artifact_sha256", "steps", "last_train_loss"):
        assert resumed[key] == first[key], key


def test_a_finished_run_directory_is_skipped_and_another_config_is_refused(text_corpus, tmp_path, capsys):
    from golf.errors import ConfigError

    def cfg(*extra: str):
        return to_golf_config(compose([*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                                       "train.iterations=2", *extra]))

    first = run_job(cfg(), tmp_path / "run", overrides=[])
    log = (tmp_path / "run" / "train.log").read_text()
    again = run_job(cfg(), tmp_path / "run", overrides=[])
    assert again == first and "finished earlier" in capsys.readouterr().out
    assert (tmp_path / "run" / "train.log").read_text() == log  # nothing ran, nothing was appended
    with pytest.raises(ConfigError, match="another config"):
        run_job(cfg("seed=5"), tmp_path / "run", overrides=[])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == first  # the finished run is intact
    rerun = run_job(cfg("train.resume=never"), tmp_path / "run", overrides=[])
    assert rerun["status"] == "ok" and len((tmp_path / "run" / "train.log").read_text()) > len(log)


def test_a_restarted_sweep_skips_finished_jobs_and_reruns_the_rest(text_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "golf.train", "-m", "seed=1,2", *TINY, f"data.path={text_corpus}",
               f"paths.root={tmp_path}", "train.iterations=3", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    kept_log = (sweep / "0" / "train.log").read_text()
    crashed = json.loads((sweep / "1" / "metrics.json").read_text())
    (sweep / "1" / "metrics.json").write_text(json.dumps({**crashed, "status": "failed"}))  # as a crash leaves it

    again = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (sweep / "0" / "train.log").read_text() == kept_log  # finished: skipped
    rerun = json.loads((sweep / "1" / "metrics.json").read_text())
    assert rerun["status"] == "ok" and rerun["val_bpb"] == crashed["val_bpb"]
    assert "finished earlier" in again.stdout
