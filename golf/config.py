"""The top-level config schema, its registration in Hydra's ConfigStore, and validation.

Each component's dataclass lives next to its code; GolfConfig composes them. Hydra merges every YAML option onto
this schema, so a misspelt key or a wrong type fails at composition. `to_golf_config` then turns the DictConfig
into typed dataclasses once and checks the values that types cannot express (ranges, divisibility, choices).
Everything below the entry points takes these dataclasses, never a DictConfig.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from golf.benchmark.config import BenchConfig, bench_problems
from golf.data.config import DataConfig, data_problems
from golf.errors import ConfigError
from golf.evaluate.audit_config import AuditConfig, audit_problems
from golf.evaluate.config import EvalConfig, eval_problems
from golf.evaluate.ttt.config import TTTConfig, chunks_hold_rows, ttt_problems
from golf.hardware_config import HardwareConfig, hardware_problems
from golf.model.config import ModelConfig, model_problems
from golf.optim.config import OptimConfig, optim_problems
from golf.quant.config import HESSIAN_ENCODERS, QuantConfig, quant_problems
from golf.report.config import ReportConfig
from golf.logger_config import LoggerConfig, logger_problems
from golf.secrets import secret_in
from golf.trainer_config import TrainConfig, train_problems


@dataclass
class PathsConfig:
    root: str = "outputs"  # outputs/runs, outputs/sweeps, outputs/cache and outputs/data live here


@dataclass
class GolfConfig:
    name: str = "run"
    seed: int = 1337
    artifact: Optional[str] = None  # golf.eval: the artifact file to score (its model config comes with it)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    ttt: TTTConfig = field(default_factory=TTTConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)


SCHEMA_NAME = "golf_schema"


def register_schema() -> None:
    """Make GolfConfig the base of conf/train.yaml (its defaults list starts with `golf_schema`)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=GolfConfig)


def to_golf_config(cfg: DictConfig) -> GolfConfig:
    """Typed, validated config from a composed DictConfig; raises ConfigError naming the first bad key."""
    _reject_unknown_keys(cfg, GolfConfig, prefix="")
    try:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise ConfigError(str(err.full_key), f"must be given, it has no default: {err.full_key}=VALUE") from None
    except OmegaConfBaseException as err:  # an interpolation that does not resolve
        raise ConfigError(str(getattr(err, "full_key", "") or "config"), f"cannot be resolved: {_first_line(err)}") from None
    typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(GolfConfig), container))
    assert isinstance(typed, GolfConfig)
    validate(typed)
    return typed


def to_plain_dict(cfg: GolfConfig) -> dict[str, Any]:
    """The resolved config as plain dicts and lists (for config.yaml, W&B and cache keys)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def _reject_unknown_keys(node: Any, schema: type, prefix: str) -> None:
    # `+key=value` force-adds keys even onto a structured config; a key the schema does not know is a typo.
    hints = typing.get_type_hints(schema)
    for key in node.keys():
        full = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(full, f"is not a golf setting. Settings here: {', '.join(sorted(hints))}")
        if is_dataclass(hints[key]) and isinstance(node[key], DictConfig):
            _reject_unknown_keys(node[key], hints[key], prefix=f"{full}.")


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# ---------------------------------------------------------------------------------------------------------------
# Value checks. Each names the key, the value and what is allowed.


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, f"{value!r} is not allowed; allowed: {allowed}")


def _refuse_any(problems: list[tuple[str, Any, str]]) -> None:
    """A component's own checks, as (key, value, allowed) for each invalid setting: the first is the error."""
    for key, value, allowed in problems:
        _require(False, key, value, allowed)


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_ALLOWED = "letters, digits, '.', '_' and '-', starting with a letter or digit"


def _safe_name(key: str, value: str, what: str) -> None:
    # names become directory names under paths.root: no separator and no leading '.', so they cannot leave it
    _require(bool(SAFE_NAME.match(value)), key, value, f"{NAME_ALLOWED} ({what})")


def _no_nan(node: Any, prefix: str) -> None:
    # NaN passes every comparison-based range check, so no float setting may be NaN (infinity is checked per key)
    for item in fields(node):
        value, key = getattr(node, item.name), f"{prefix}{item.name}"
        if is_dataclass(value):
            _no_nan(value, f"{key}.")
        elif isinstance(value, float) and math.isnan(value):
            raise ConfigError(key, "nan is not allowed; allowed: a number")


def validate(cfg: GolfConfig) -> None:
    _no_nan(cfg, "")
    _safe_name("model.name", cfg.model.name, "the default run name")
    _safe_name("name", cfg.name, "it names the run directory")
    _safe_name("data.name", cfg.data.name, "it names the shard directory under paths.root/data")
    for key, value in (("name", cfg.name), ("model.name", cfg.model.name), ("data.name", cfg.data.name),
                       ("paths.root", cfg.paths.root)):
        named = secret_in(str(value))
        if named is not None:  # its value is not quoted: that would print the secret
            raise ConfigError(key, f"carries the value of the environment variable ${named} (a secret) into a "
                              "directory name or path, where it cannot be redacted; choose a name without it")
    _require(0 <= cfg.seed < 2**32, "seed", cfg.seed, "an integer in [0, 2**32 - 1] (NumPy's seed range)")
    _require(bool(cfg.paths.root), "paths.root", cfg.paths.root, "a directory path")
    for problems, part in ((data_problems, cfg.data), (model_problems, cfg.model), (hardware_problems, cfg.hardware),
                           (train_problems, cfg.train), (optim_problems, cfg.optim), (quant_problems, cfg.quant),
                           (eval_problems, cfg.eval), (audit_problems, cfg.audit), (logger_problems, cfg.logger),
                           (bench_problems, cfg.bench)):
        _refuse_any(problems(part))  # each component checks its own keys, in this order
    _validate_batch(cfg)
    _validate_ttt(cfg)
    _require(cfg.data.loader != "documents" or cfg.model.doc_mask, "model.doc_mask", cfg.model.doc_mask,
             "true with data.loader=documents (packed documents are trained with document-masked attention, so "
             "evaluation must mask by documents too; add ablation=doc_mask or model.doc_mask=true)")
    gptq = cfg.quant.gptq
    calibrates_on_training_data = cfg.quant.encoder in HESSIAN_ENCODERS and gptq.calibration == "train"
    _require(not calibrates_on_training_data or cfg.train.max_wallclock_s <= 0 or
             gptq.reserve_s < cfg.train.max_wallclock_s, "quant.gptq.reserve_s", gptq.reserve_s,
             f"less than train.max_wallclock_s={cfg.train.max_wallclock_s:g} (the calibration reserve comes off the "
             "training clock; a reserve as long as the clock leaves no training)")


def _validate_batch(cfg: GolfConfig) -> None:
    """The global batch against the world size: every rank's micro-batch must be whole sequences."""
    train = cfg.train
    hw = cfg.hardware
    world = hw.nproc_per_node * hw.nnodes
    if hw.micro_batch_tokens > 0:
        per_rank = world * train.seq_len
        _require(
            train.batch_tokens >= per_rank and train.batch_tokens % per_rank == 0,
            "train.batch_tokens", train.batch_tokens,
            f"a positive multiple of train.seq_len x hardware.nproc_per_node x hardware.nnodes = {train.seq_len} x "
            f"{hw.nproc_per_node} x {hw.nnodes} = {per_rank} (the global batch is fixed; every rank takes whole "
            "sequences)",
        )
        _require(hw.micro_batch_tokens >= train.seq_len, "hardware.micro_batch_tokens", hw.micro_batch_tokens,
                 f"0 or at least train.seq_len={train.seq_len} (a forward holds whole sequences)")
        return
    per_micro_batch = train.seq_len * world * train.grad_accum_steps
    _require(
        train.batch_tokens >= per_micro_batch and train.batch_tokens % per_micro_batch == 0,
        "train.batch_tokens", train.batch_tokens,
        f"a positive multiple of train.seq_len x hardware.nproc_per_node x hardware.nnodes x train.grad_accum_steps "
        f"= {train.seq_len} x {hw.nproc_per_node} x {hw.nnodes} x {train.grad_accum_steps} = {per_micro_batch}, "
        "so that every rank's micro-batch is whole sequences (the global batch is the same for any world size)",
    )


def _validate_ttt(cfg: GolfConfig) -> None:
    """ttt.* on its own (golf/evaluate/ttt/config.py), then against the model's depth and the evaluation's windows."""
    ttt = cfg.ttt
    _refuse_any(ttt_problems(ttt))
    layers = cfg.model.num_layers
    _require(0 <= ttt.freeze <= layers, "ttt.freeze", ttt.freeze,
             f"an integer in [0, model.num_layers={layers}] (the number of leading blocks kept frozen)")
    if ttt.protocol != "none" and chunks_hold_rows(ttt):
        _require(ttt.chunk_tokens >= cfg.eval.seq_len, "ttt.chunk_tokens", ttt.chunk_tokens,
                 f"at least eval.seq_len={cfg.eval.seq_len} (a chunk holds whole adaptation sequences)")
    elif ttt.protocol != "none":
        _require(ttt.chunk_tokens <= cfg.eval.seq_len, "ttt.chunk_tokens", ttt.chunk_tokens,
                 f"at most eval.seq_len={cfg.eval.seq_len} with ttt.method={ttt.method} (a chunk's targets are "
                 "scored in one window of its document)")
    if ttt.method == "phased_doc_lora" and ttt.phases:
        _require(ttt.global_chunk_tokens >= cfg.eval.seq_len, "ttt.global_chunk_tokens", ttt.global_chunk_tokens,
                 f"at least eval.seq_len={cfg.eval.seq_len} (the global SGD trains on whole sequences of "
                 "eval.seq_len cut from each chunk: a shorter chunk holds none, and every phase would take 0 steps)")


