"""What a test-time-training method is, and the registry that finds one by its `ttt.method` name.

The score-first loop (engine.py) is the same for every method: plan pieces, score a piece, then adapt on it. A
method decides only what "adapt" means, through the small interface below: which tensors train and how they go back
to their start at a document boundary, the loss of a batch, the optimizer step, and what it adds to each piece's
record. The engine never asks a method's name.

Adding a method: one module in golf/evaluate/ttt/methods/ named after the method (its class subclasses `Method` and
is decorated with `@register`), one conf/ttt/<name>.yaml, its tests. The registry imports every module of that
folder the first time it is asked, so nothing else lists the methods; golf/quant/code_size.py counts the chosen
method's module (and what it imports) toward code_bytes.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar, Optional, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from golf.evaluate.ttt.config import Problem, TTTConfig
from golf.evaluate.ttt.params import Adaptable, freeze_warnings, select_adaptable
from golf.evaluate.ttt.plan import Piece


class Stepper(Protocol):
    """What the engine lends a method's step: the adapted tensors and the two halves of a plain step."""

    tensors: list[Tensor]

    def gradients(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
        """.grad of every adapted tensor := gradient of the method's loss on `mask`'s targets, all ranks together."""

    def apply(self) -> None:
        """Clip the gradients (ttt.grad_clip) and take the optimizer's step at the lr the schedule set."""


class Method:
    """The plain method and every method's defaults: the model parameters that ttt.params / ttt.freeze /
    ttt.freeze_embeddings select, the mean loss over the batch's targets, one optimizer step per batch, nothing to
    reset and nothing to add to a record.

    Class attributes: `name` (its ttt.method value), `compilable` (the engine may run the model's forward through
    torch.compile; a method that patches modules cannot) and `follows_documents` (pieces also split where a new
    document starts, and reset() is called there together with a fresh optimizer; the schedule's clock then counts
    target positions, so the lr never depends on where later documents start)."""

    name: ClassVar[str]
    compilable: ClassVar[bool] = True
    follows_documents: ClassVar[bool] = False
    # the claim the audit's cross-document check holds a method to: a document's scores depend only on that document
    # and the artifact (per-document adapters on a frozen base); False whenever earlier documents move the weights
    document_independent: ClassVar[bool] = False
    # the method runs its own scoring loop (run_documents below) instead of the engine's chunk loop
    runs_documents: ClassVar[bool] = False

    @staticmethod
    def problems(cfg: TTTConfig) -> list[Problem]:
        """(key, value, allowed) for each of the method's own ttt.* knobs that cannot run. Called for every
        registered method whatever ttt.method is, so a knob is always checked where it is set."""
        return []

    def __init__(self, model: nn.Module, cfg: TTTConfig):
        self.model, self.cfg = model, cfg
        self.adaptables: list[Adaptable] = select_adaptable(model, cfg)

    def warnings(self) -> list[str]:
        """Lines the engine prints once before it starts (as WARNING)."""
        return freeze_warnings(self.model, self.cfg, len(self.adaptables))

    def reset(self) -> None:
        """A new document starts (follows_documents only): the adapted tensors back to their start."""

    def loss(self, nll: Tensor, mask: Tensor, n_valid: int) -> Tensor:
        """The batch's loss from this rank's per-target losses `nll` and valid-target `mask`; `n_valid` counts the
        valid targets of every rank. Dividing by it makes the ranks' summed gradients the one-process gradient."""
        return torch.where(mask, nll, 0.0).sum() / n_valid

    def step(self, stepper: Stepper, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> dict[Any, float]:
        """One adaptation step on a batch (every rank passes the whole batch). Returns per-step values that the
        engine averages over the piece and hands to record()."""
        stepper.gradients(x, y, mask)
        stepper.apply()
        return {}

    def record(self, piece: Piece, step_means: dict[Any, float]) -> dict[str, Any]:
        """Keys added to a piece's record (appended after the engine's own). A dict-valued key is also logged."""
        return {}

    def close(self) -> None:
        """The run is over: leave the model as it was handed over (weights aside)."""

    @classmethod
    def run_documents(cls, model: nn.Module, val: Any, tables: Any, windows: Any, cfg: TTTConfig, eval_cfg: Any,
                      device: torch.device, autocast: Any, log: Any) -> Any:
        """runs_documents only: score the plan's targets document by document, adapting as the method does, and
        return the engine's TTTResult (with its ledger). The engine hands over the whole evaluation."""
        raise NotImplementedError(f"ttt.method={cls.name} does not run its own loop")


REGISTRY: dict[str, type[Method]] = {}
DEFAULT = "full"  # TTTConfig.method's default, listed first in messages
_discovered = False


def register(method: type[Method]) -> type[Method]:
    """Class decorator: make `method` available as ttt.method=<method.name>."""
    if REGISTRY.get(method.name, method) is not method:
        raise ValueError(f"two TTT methods are named {method.name!r}: {REGISTRY[method.name]} and {method}")
    REGISTRY[method.name] = method
    return method


def _discover() -> None:
    """Import every module of golf/evaluate/ttt/methods/ once; each registers its method."""
    global _discovered
    if not _discovered:
        from golf.evaluate.ttt import methods

        for info in pkgutil.iter_modules(methods.__path__):
            importlib.import_module(f"{methods.__name__}.{info.name}")
        _discovered = True


def names() -> tuple[str, ...]:
    _discover()
    return tuple(sorted(REGISTRY, key=lambda name: (name != DEFAULT, name)))


def get(name: str) -> type[Method]:
    _discover()
    method: Optional[type[Method]] = REGISTRY.get(name)
    if method is None:
        raise ValueError(f"unknown ttt.method {name!r}; expected one of {', '.join(names())}")
    return method
