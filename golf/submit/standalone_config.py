"""The typed config a submission's train_gpt.py runs with, built from the run's resolved config as JSON, in plain
Python: the script has no omegaconf or Hydra, so it cannot use golf/config.py. The component dataclasses are golf's
own (each in its light module); only the parts a training, its export and its evaluation read are kept."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from golf.data.config import DataConfig
from golf.evaluate.audit_config import AuditConfig
from golf.evaluate.config import EvalConfig
from golf.evaluate.ttt.config import TTTConfig
from golf.hardware_config import HardwareConfig
from golf.model.config import ModelConfig
from golf.optim.config import OptimConfig
from golf.quant.config import QuantConfig
from golf.trainer_config import TrainConfig


@dataclass
class StandaloneConfig:
    """GolfConfig's fields that train -> export -> score read (golf/training_build.py, golf/training_hooks.py, the
    export and the evaluation take it where they take a GolfConfig)."""

    name: str = "run"
    seed: int = 1337
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    ttt: TTTConfig = field(default_factory=TTTConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)


def standalone_dict(cfg: Any) -> dict[str, Any]:
    """The part of a GolfConfig (or a StandaloneConfig) that a submission embeds, as plain JSON-able values."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(StandaloneConfig)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """`cls` filled from `values` by its type hints: nested dataclasses built, lists made tuples where the field is
    a tuple; a key the dataclass does not have is refused (the script was built from another golf)."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"config keys {', '.join(where + k for k in unknown)} are not settings of this golf")
    return cls(**{key: _typed(hints[key], value, f"{where}{key}.") for key, value in values.items()})


def _typed(hint: Any, value: Any, where: str) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is not None and typing.get_origin(hint) is typing.Union and len(args) == 1:
        hint = args[0]
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


GolfConfig = StandaloneConfig  # the name golf's modules import from golf.config, which the script replaces by this one
