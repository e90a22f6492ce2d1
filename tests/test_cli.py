"""The command line as a person meets it: bad input ends with one paragraph, exit code 2, no traceback."""

from __future__ import annotations

import pytest

from testkit import golf_command


@pytest.mark.parametrize(
    "args,key",
    [
        (["model=tiny", "train.iterations=abc"], "train.iterations"),
        (["+model.depth=3"], "model.depth"),
        (["ttt.freeze=9"], "ttt.freeze"),
        (["train.batch_tokens=1000"], "train.batch_tokens"),
    ],
)
def test_train_rejects_bad_overrides_with_exit_code_2(args, key, tmp_path):
    result = golf_command("golf.train", *args, f"paths.root={tmp_path}")
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run directory for a bad config"


def test_data_prepare_rejects_bad_overrides(tmp_path):
    result = golf_command("golf.data", "prepare", "data.vocab_size=12", f"paths.root={tmp_path}")
    assert result.returncode == 2
    assert "data.vocab_size" in result.stderr and "Traceback" not in result.stderr


def test_data_needs_a_command():
    result = golf_command("golf.data")
    assert result.returncode == 2 and "prepare" in result.stderr


def test_missing_text_dir_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    result = golf_command("golf.data", "prepare", "data=text_dir", f"data.path={missing}", f"paths.root={tmp_path}")
    assert result.returncode == 2
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


def test_the_multirun_flag_may_come_after_overrides():
    from golf.cli import flags_first

    assert flags_first(["model=tiny", "sweep=ttt_lr", "-m", "seed=1,2"]) == ["-m", "model=tiny", "sweep=ttt_lr", "seed=1,2"]
    assert flags_first(["a=1", "--multirun"]) == ["--multirun", "a=1"]
    assert flags_first(["a=1"]) == ["a=1"]
