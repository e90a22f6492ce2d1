"""Resumable training checkpoints: written atomically, the newest k kept, loaded without unpickling objects.

A checkpoint is one file, <dir>/step_<step>.pt, holding plain containers of tensors, numbers and strings (the
trainer's state_dict: model, optimizers, data position, hooks, RNG, step and clock). It is written by torch.save to a
temporary file and renamed into place, so a kill at any moment leaves the previous checkpoints whole. It is read with
torch.load(weights_only=True), whose unpickler accepts only those containers: a file crafted to run code on load is
refused, naming the file.

The directory is <paths.root>/checkpoints/<cache key>: the key hashes everything that decides the trained weights
(golf/cache.py), so the same command finds its checkpoints whatever run directory it was given, and a different
training never picks them up.
"""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from golf.atomic import atomic_open
from golf.errors import DataError

_NAME = re.compile(r"^step_(\d+)\.pt$")


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
        """Steps of the checkpoints on disk, oldest first (temporary files of an interrupted write are not listed)."""
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.pt"

    def latest(self) -> Optional[Path]:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        path = self.path(step)
        with atomic_open(path) as f:
            torch.save({**state, "meta": self.meta}, f)
        for old in self.steps()[:-self.keep]:
            self.path(old).unlink(missing_ok=True)
        self.log(f"checkpoint {path} written (step {step})")
        return path

    def clear(self) -> None:
        """Remove this training's checkpoints (it finished: its artifact is what remains)."""
        for step in self.steps():
            self.path(step).unlink(missing_ok=True)
        try:
            self.directory.rmdir()
        except OSError:
            pass  # something else lives there (a temporary file of another writer): leave it


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise DataError(f"the checkpoint {path} cannot be loaded: {str(err).strip().splitlines()[0]} (golf loads "
                        "checkpoints without unpickling objects; delete the file, or run with train.resume=never to "
                        "start anew)") from None


def resume_training(trainer: Any, checkpointer: Checkpointer, log: Callable[[str], None]) -> dict[str, Any]:
    """Continue `trainer` (a golf.trainer.Trainer) from the newest checkpoint, if there is one. Returns its step and
    who wrote it (run directory, W&B run id), or {} when there is none and training starts anew."""
    latest = checkpointer.latest()
    if latest is None:
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
