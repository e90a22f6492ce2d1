"""Resumable training checkpoints: written atomically, the newest k kept, loaded without unpickling objects.

A checkpoint is <dir>/step_<step>.pt, holding plain containers of tensors, numbers and strings (the trainer's
state_dict: model, optimizers, data position, hooks, RNG, step and clock), and beside it step_<step>.pt.sha256, the
sha256 of the .pt file's bytes, hashed as they were written. Both are written to temporary files and renamed into
place, the .pt first, so a kill at any moment leaves the previous checkpoints whole; a .pt without its hash is not a
checkpoint. On resume the newest checkpoint's bytes are checked against its hash: a damaged one (a flipped bit, a
truncated file) is refused by name in train.log and the next older whole one is used. It is read with
torch.load(weights_only=True), whose unpickler accepts only those containers: a file crafted to run code on load is
refused, naming the file. A full disk while writing is an OutputError naming the file ("No space left on device"),
not torch's RuntimeError, and the older checkpoints stay whole. Temporary files of a writer that was killed are
removed by the next writer on the same host.

The directory is <paths.root>/checkpoints/<cache key>: the key hashes everything that decides the trained weights
(golf/cache.py), so the same command finds its checkpoints whatever run directory it was given, and a different
training never picks them up.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from golf.atomic import atomic_open, atomic_write_text, stale_temp_files
from golf.digest import file_sha256
from golf.errors import DataError, is_write_error, output_error

_NAME = re.compile(r"^step_(\d+)\.pt$")
_ANY_NAME = re.compile(r"^step_\d+\.pt(\.sha256)?$")
HASH_SUFFIX = ".sha256"


class _HashingWriter(io.RawIOBase):
    """What torch.save writes to: passes the bytes on, hashing them, and keeps the OSError a write raised (torch
    reports it as a RuntimeError that says nothing of the disk)."""

    def __init__(self, f):
        self.f, self.digest, self.error = f, hashlib.sha256(), None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            written = self.f.write(data)
        except OSError as err:
            self.error = err
            raise
        self.digest.update(memoryview(data)[:written])
        return written


class Checkpointer:
    def __init__(self, directory: Path, every: int, keep: int, log: Callable[[str], None] = print,
                 meta: Optional[dict[str, Any]] = None):
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.log = log
        self.meta = meta or {}  # who wrote it (run directory, W&B run id): saved with every checkpoint

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def steps(self) -> list[int]:
        """Steps of the checkpoints on disk, oldest first: a .pt with its hash beside it (temporary files of an
        interrupted write, and a .pt whose hash was never written, are not checkpoints)."""
        if not self.directory.is_dir():
            return []
        names = {p.name for p in self.directory.iterdir()}
        found = (_NAME.match(name) for name in names)
        return sorted(int(m.group(1)) for m in found if m and m.group(0) + HASH_SUFFIX in names)

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.pt"

    def latest(self) -> Optional[Path]:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        path = self.path(step)
        self._remove_stale()
        writer = None
        try:
            with atomic_open(path) as f:
                writer = _HashingWriter(f)
                torch.save({**state, "meta": self.meta}, writer)
            atomic_write_text(_hash_path(path), writer.digest.hexdigest() + "\n")
        except RuntimeError as err:
            if writer is not None and writer.error is not None and is_write_error(writer.error):
                raise output_error(writer.error, path) from err
            raise
        for old in self.steps()[:-self.keep]:
            self.remove(old)
        self.log(f"checkpoint {path} written (step {step})")
        return path

    def remove(self, step: int) -> None:
        _hash_path(self.path(step)).unlink(missing_ok=True)  # the hash first: a .pt alone is no checkpoint
        self.path(step).unlink(missing_ok=True)

    def _remove_stale(self) -> None:
        """Temporary files of killed writers, and .pt files whose hash was never written."""
        for tmp in stale_temp_files(self.directory, _ANY_NAME):
            tmp.unlink(missing_ok=True)
        if self.directory.is_dir():
            whole = set(self.steps())
            for p in self.directory.iterdir():
                m = _NAME.match(p.name)
                if m and int(m.group(1)) not in whole:
                    p.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove this training's checkpoints (it finished: its artifact is what remains)."""
        for step in self.steps():
            self.remove(step)
        self._remove_stale()
        try:
            self.directory.rmdir()
        except OSError:
            pass  # something else lives there (a temporary file of another writer): leave it


def _hash_path(path: Path) -> Path:
    return path.with_name(path.name + HASH_SUFFIX)


def verify_checkpoint(path: Path) -> Optional[str]:
    """Why the checkpoint's bytes cannot be trusted (they do not match the hash written with them), or None."""
    try:
        recorded = _hash_path(path).read_text(encoding="utf-8").strip()
        actual = file_sha256(path)
    except (OSError, UnicodeDecodeError) as err:
        return f"it cannot be read ({getattr(err, 'strerror', None) or err})"
    if actual != recorded:
        return "its bytes do not match the sha256 written with it (damaged)"
    return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise DataError(f"the checkpoint {path} cannot be loaded: {str(err).strip().splitlines()[0]} (golf loads "
                        "checkpoints without unpickling objects; delete the file, or run with train.resume=never to "
                        "start anew)") from None


def newest_whole_checkpoint(checkpointer: Checkpointer, log: Callable[[str], None]) -> Optional[Path]:
    """The newest checkpoint whose bytes match their hash; each damaged newer one is refused by name in the log."""
    for step in reversed(checkpointer.steps()):
        path = checkpointer.path(step)
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        log(f"checkpoint {path} refused: {problem}; trying the next older one")
    return None


def resume_training(trainer: Any, checkpointer: Checkpointer, log: Callable[[str], None]) -> dict[str, Any]:
    """Continue `trainer` (a golf.trainer.Trainer) from the newest whole checkpoint, if there is one. Returns its
    step and who wrote it (run directory, W&B run id), or {} when there is none and training starts anew."""
    had_any = bool(checkpointer.steps())
    latest = newest_whole_checkpoint(checkpointer, log)
    if latest is None:
        if had_any:
            log("no whole checkpoint left: training starts anew")
        return {}
    state = load_checkpoint(latest)
    try:
        trainer.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"the checkpoint {latest} does not fit this training ({first}); delete it, or run with "
                        "train.resume=never to start anew") from None
    writer = state.get("meta", {})
    log(f"resumed from {latest}: step {trainer.steps_done}, {trainer.train_time_s:.1f}s of training done, written "
        f"by {writer.get('run_dir')} (W&B run {writer.get('wandb_run_id')}); train.resume=never starts anew")
    return {"step": trainer.steps_done, **writer}


def rng_state() -> dict[str, Any]:
    """Every random generator training may draw from, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
