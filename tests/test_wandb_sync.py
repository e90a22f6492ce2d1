"""scripts/wandb_sync.py finds every offline W&B run of a sweep and refuses what has none."""

from __future__ import annotations

import importlib.util

from golf import REPO_ROOT

spec = importlib.util.spec_from_file_location("wandb_sync", REPO_ROOT / "scripts" / "wandb_sync.py")
wandb_sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wandb_sync)


def test_finds_each_jobs_offline_run_and_the_summary_run(tmp_path, capsys):
    for path in ("0/wandb/offline-run-20261123_1-a", "1/wandb/offline-run-20261123_2-b", "wandb/offline-run-3-summary",
                 "0/wandb/latest-run", "2/notes/offline-run-x"):
        (tmp_path / path).mkdir(parents=True)
    found = wandb_sync.offline_runs(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "0/wandb/offline-run-20261123_1-a", "1/wandb/offline-run-20261123_2-b", "wandb/offline-run-3-summary"]
    assert wandb_sync.main([str(tmp_path), "--dry-run"]) == 0
    assert "3 offline run(s)" in capsys.readouterr().out


def test_a_directory_without_runs_is_a_clear_error(tmp_path, capsys):
    assert wandb_sync.main([str(tmp_path)]) == 2
    assert "no offline W&B runs" in capsys.readouterr().err
    assert wandb_sync.main([str(tmp_path / "missing")]) == 2
