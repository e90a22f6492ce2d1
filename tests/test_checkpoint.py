"""golf/checkpoint.py: which checkpoints are kept, what an interrupted write leaves, the random generators' round trip."""

from __future__ import annotations

import errno
import io
import os
import random
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch

import golf.checkpoint
from golf.checkpoint import Checkpointer, load_checkpoint, resume_training, rng_state, set_rng_state
from golf.errors import DataError, OutputError


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
    assert ckpt.steps() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt", "step_00000001.pt.sha256"]
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


class _Trainer:
    """What resume_training needs of a trainer: load_state_dict, steps_done, train_time_s."""

    def __init__(self):
        self.loaded = None
        self.steps_done, self.train_time_s = 0, 0.0

    def load_state_dict(self, state):
        self.loaded = state
        self.steps_done = int(state["step"])


@pytest.mark.parametrize("damage", ["flip a bit", "truncate", "drop the hash"])
def test_a_damaged_newest_checkpoint_is_refused_by_name_and_the_older_one_used(tmp_path, damage):
    ckpt = Checkpointer(tmp_path, every=1, keep=2, log=lambda _: None)
    for step in (1, 2):
        ckpt.save(step, {"step": step, "w": torch.full((1000,), float(step))})
    newest = ckpt.path(2)
    data = bytearray(newest.read_bytes())
    if damage == "flip a bit":
        data[len(data) // 2] ^= 0x01  # inside the tensor's bytes: torch.load alone would load it
        newest.write_bytes(bytes(data))
    elif damage == "truncate":
        newest.write_bytes(bytes(data[:-100]))
    else:
        (tmp_path / (newest.name + ".sha256")).unlink()
    lines: list[str] = []
    trainer = _Trainer()
    resumed = resume_training(trainer, ckpt, lines.append)
    assert resumed["step"] == 1 and torch.equal(trainer.loaded["w"], torch.full((1000,), 1.0))
    if damage != "drop the hash":  # without its hash the file is not a checkpoint at all: nothing to refuse
        assert any(str(newest) in line and "refused" in line for line in lines), lines


def test_when_every_checkpoint_is_damaged_training_starts_anew_and_says_so(tmp_path):
    ckpt = Checkpointer(tmp_path, every=1, keep=1, log=lambda _: None)
    path = ckpt.save(1, {"step": 1, "w": torch.ones(100)})
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x10
    path.write_bytes(bytes(data))
    lines: list[str] = []
    assert resume_training(_Trainer(), ckpt, lines.append) == {}
    assert any("starts anew" in line for line in lines), lines


class _FullDisk(io.RawIOBase):
    """A file on a disk that fills after `room` bytes."""

    def __init__(self, room: int):
        self.room = room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return len(data)


# torch.save lets the OSError through when the disk fills early, and turns it into a RuntimeError that says nothing
# of the disk when it fills later
@pytest.mark.parametrize("room", [300, 1000, 100_000])
def test_a_full_disk_while_writing_a_checkpoint_names_the_file_and_keeps_the_older_ones(tmp_path, monkeypatch, room):
    ckpt = Checkpointer(tmp_path, every=1, keep=2, log=lambda _: None)
    ckpt.save(1, {"step": 1, "w": torch.ones(10)})
    real_open = golf.checkpoint.atomic_open

    @contextmanager
    def full_disk(path):
        with real_open(path):  # the real temporary file, removed when the write fails
            yield _FullDisk(room)

    monkeypatch.setattr(golf.checkpoint, "atomic_open", full_disk)
    with pytest.raises(OutputError) as refused:
        ckpt.save(2, {"step": 2, "w": torch.ones(100_000)})
    assert str(ckpt.path(2)) in str(refused.value) and "No space left" in str(refused.value)
    assert ckpt.steps() == [1] and resume_training(_Trainer(), ckpt, lambda _: None)["step"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_writer(tmp_path):
    from golf.atomic import _HOST

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited: its pid names no running writer
    killed = tmp_path / f".step_00000003.pt.{_HOST}-{dead_pid}.x1y2.tmp"
    alive = tmp_path / f".step_00000003.pt.{_HOST}-{os.getpid()}.a1b2.tmp"  # a writer still running
    other_host = tmp_path / f".step_00000003.pt.elsewhere-{dead_pid}.c3d4.tmp"  # cannot tell: left alone
    for path in (killed, alive, other_host):
        path.write_bytes(b"half a checkpoint")
    Checkpointer(tmp_path, every=1, keep=2, log=lambda _: None).save(4, {"step": 4})
    assert not killed.exists() and alive.exists() and other_host.exists()
