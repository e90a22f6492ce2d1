"""Hydra habits: every run directory keeps Hydra's .hydra/ record, golf's messages go through `logging` (so
hydra.verbose and hydra/job_logging work) while the terminal and train.log look as before, and the jobs of a
parallel (joblib) multirun prefix their terminal lines with their number."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import pytest
import yaml
from omegaconf import OmegaConf

import golf.logs as logs
from testkit import golf_command
from golf.hydra_record import HYDRA_FILES, write_hydra_record
from golf.runs import RunDir

TINY = ["model=tiny", "data=text_dir", "data.vocab_size=384", "train.batch_tokens=2048", "train.seq_len=64",
        "train.iterations=2", "train.log_every=1", "eval.max_tokens=2048", "eval.compressor_baselines=false",
        "logger=none", "train.reuse=false"]
SECRET = "sk-hydra-habits-0123456789"


# ------------------------------------------------------------------------------------------------------ unit


def test_parallel_jobs_prefix_every_line_with_their_number(monkeypatch):
    handler = logs.TerminalHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    record = logging.LogRecord("golf.run", logging.INFO, __file__, 1, "first line\nsecond line", None, None)
    monkeypatch.setattr(logs, "parallel_job_number", lambda: 3)
    handler.emit(record)
    monkeypatch.setattr(logs, "parallel_job_number", lambda: None)
    handler.emit(record)
    assert out.getvalue().splitlines() == ["[job 3] first line", "[job 3] second line", "first line", "second line"]


def test_outside_hydra_golf_prints_once_and_not_twice_beside_another_terminal_handler(monkeypatch, tmp_path, capsys):
    golf_logger = logging.getLogger("golf")
    monkeypatch.setattr(golf_logger, "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    run = RunDir(tmp_path / "run")
    run.log("hello from golf")
    run.log("hello again")
    assert capsys.readouterr().out.splitlines() == ["hello from golf", "hello again"]  # as plain as before
    assert [line.split(" ", 2)[2] for line in (tmp_path / "run" / "train.log").read_text().splitlines()] == \
        ["hello from golf", "hello again"]
    monkeypatch.setattr(golf_logger, "handlers", [])
    stream = io.StringIO()
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.StreamHandler(stream)])  # someone else's set-up
    run.log("third")
    assert capsys.readouterr().out == "" and stream.getvalue() == "third\n" and not golf_logger.handlers


def test_the_hydra_record_is_redacted_and_never_rewrites_a_finished_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLF_TEST_API_KEY", SECRET)
    task = OmegaConf.create({"seed": 1, "logger": {"group": SECRET}, "name": "${seed}"})
    hydra = OmegaConf.create({"overrides": {"task": [f"logger.group={SECRET}"]}, "job": {"num": 0}})
    write_hydra_record(tmp_path, task, hydra)
    for name in HYDRA_FILES:
        text = (tmp_path / ".hydra" / name).read_text()
        assert SECRET not in text and "<redacted $GOLF_TEST_API_KEY>" in text, name
    assert yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())["name"] == "${seed}"  # unresolved
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "ok"}))
    before = (tmp_path / ".hydra" / "config.yaml").read_text()
    write_hydra_record(tmp_path, OmegaConf.create({"seed": 2}), hydra)
    assert (tmp_path / ".hydra" / "config.yaml").read_text() == before


# ---------------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_run_keeps_hydra_dir_and_hydra_verbose_and_job_logging_work(text_corpus, tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}", "seed=7"]
    plain = golf_command("golf.train", *args, f"hydra.run.dir={run_dir}", "hydra.verbose=true")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == sorted(HYDRA_FILES)
    assert "seed=7" in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert (run_dir / "config.yaml").is_file()  # golf's resolved config stays beside it
    lines = plain.stdout.splitlines()  # with hydra.verbose Hydra adds its own "[...][HYDRA]" lines; golf's stay plain
    assert [line for line in lines if "step 1/2" in line][0].startswith("step 1/2")
    assert any(line.startswith("run directory ") for line in lines)  # golf's debug line, shown by hydra.verbose
    assert "golf scorecard" in plain.stdout
    log = (run_dir / "train.log").read_text().splitlines()
    assert log and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in log)

    hydra_format = golf_command("golf.train", *args, f"hydra.run.dir={tmp_path / 'run2'}",
                                "hydra/job_logging=default")
    assert hydra_format.returncode == 0, hydra_format.stderr[-3000:]
    assert re.search(r"\]\[golf\.run\]\[INFO\] - step 1/2", hydra_format.stdout)
    steps = [line for line in (tmp_path / "run2" / "train.log").read_text().splitlines() if "step 1/2" in line]
    assert len(steps) == 1  # Hydra's file handler writes train.log; golf does not write the same lines again


@pytest.mark.slow
def test_joblib_jobs_prefix_their_terminal_lines(text_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    result = golf_command("golf.train", *TINY, f"data.path={text_corpus}", f"paths.root={tmp_path}",
                          f"hydra.sweep.dir={sweep}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                          "report.enabled=false", "-m", "seed=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    for job in (0, 1):
        assert re.search(rf"^\[job {job}\] step 1/2 ", result.stdout, re.MULTILINE), result.stdout[-3000:]
        assert re.search(rf"^\[job {job}\] golf scorecard", result.stdout, re.MULTILINE)
        assert (sweep / str(job) / ".hydra" / "overrides.yaml").is_file()
        assert not (sweep / str(job) / "train.log").read_text().count("[job ")  # train.log has no prefix


def test_golf_train_has_hydras_tab_completion():
    """`eval "$(golf-train -sc install=bash)"` completes overrides: golf's own checks let Hydra's query through."""
    import os
    import shutil
    import subprocess

    exe = shutil.which("golf-train", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("golf-train is not installed next to this Python (pip install -e .)")
    env = {**os.environ, "COMP_LINE": "golf-train model=", "COMP_POINT": "17"}
    out = subprocess.run([exe, "-sc", "query=bash"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "model=tiny" in out.stdout.split(), out.stderr[-2000:]
