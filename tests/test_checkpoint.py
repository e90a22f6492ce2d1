"""golf/checkpoint.py: which checkpoints are kept, what an interrupted write leaves, the random generators' round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from golf.checkpoint import Checkpointer, load_checkpoint, rng_state, set_rng_state
from golf.errors import DataError


def test_the_newest_k_are_kept_and_half_written_files_are_not_checkpoints(tmp_path):
    ckpt = Checkpointer(tmp_path / "ck", every=5, keep=2, log=lambda _: None)
    assert ckpt.latest() is None and [s for s in range(1, 16) if ckpt.due(s)] == [5, 10, 15]
    for step in (5, 10, 15):
        ckpt.save(step, {"w": torch.full((3,), float(step))})
    (tmp_path / "ck" / ".step_00000020.pt.abc.tmp").write_bytes(b"half a file")  # a write killed midway
    assert ckpt.steps() == [10, 15] and ckpt.latest() == ckpt.path(15)
    state = load_checkpoint(ckpt.latest())
    assert torch.equal(state["w"], torch.full((3,), 15.0)) and state["meta"] == {}


def test_a_failed_write_leaves_the_older_checkpoints_whole(tmp_path):
    ckpt = Checkpointer(tmp_path, every=1, keep=3, log=lambda _: None)
    ckpt.save(1, {"w": torch.ones(2)})

    class Local:  # a class defined in a function cannot be pickled: torch.save fails after it began writing
        pass

    with pytest.raises((AttributeError, TypeError, RuntimeError)):
        ckpt.save(2, {"w": torch.ones(2), "x": Local()})
    assert ckpt.steps() == [1] and sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt"]
    assert torch.equal(load_checkpoint(ckpt.path(1))["w"], torch.ones(2))


def test_truncated_checkpoints_are_refused_naming_the_file(tmp_path):
    ckpt = Checkpointer(tmp_path, every=1, keep=1, log=lambda _: None)
    path = ckpt.save(3, {"w": torch.randn(100)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match=str(path)):
        load_checkpoint(path)


def test_random_generators_continue_where_they_were(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    Checkpointer(tmp_path, 1, 1, log=lambda _: None).save(1, {"rng": state})
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "step_00000001.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_clear_removes_the_training_s_checkpoints(tmp_path):
    ckpt = Checkpointer(tmp_path / "ck", every=1, keep=5, log=lambda _: None)
    for step in (1, 2):
        ckpt.save(step, {})
    ckpt.clear()
    assert not (tmp_path / "ck").exists()
