"""Values and places that passed the checks and then failed with a traceback: each is now one paragraph naming it,
exit code 2, before any work."""

from __future__ import annotations

import os

import pytest

from testkit import golf_command


def refused(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("golf: "), result.stderr
    return last


@pytest.mark.parametrize("seed", [2**32, 2**40])
def test_a_seed_numpy_cannot_take_is_refused(seed, tmp_path):
    message = refused(golf_command("golf.train", "model=tiny", f"seed={seed}", f"paths.root={tmp_path}"))
    assert "seed" in message and "2**32" in message
    assert not list(tmp_path.glob("runs/*"))  # no run directory left behind


def test_a_run_directory_that_cannot_exist_is_named(tmp_path):
    message = refused(golf_command("golf.train", "model=tiny", "logger=none", "hydra.run.dir=/proc/golf-none/x"))
    assert "/proc/golf-none" in message


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_given_as_the_artifact_is_called_what_it_is(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    else:
        path = "/dev/null"
    message = refused(golf_command("golf.eval", f"artifact={path}", "logger=none", f"paths.root={tmp_path}"))
    assert str(path) in message and "not a regular file" in message and "does not exist" not in message
