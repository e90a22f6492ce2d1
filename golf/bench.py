"""`python -m golf.bench [overrides]`: throughput, FLOP utilization and overheads of training, evaluation and TTT,
measured in one run on this machine -> bench.json in the run directory and a table (golf/benchmark/ does the work).

The same overrides as golf.train choose the model, data, hardware, eval and ttt settings; bench.* sets the sizes of
the measurements (golf/benchmark/config.py). One process; see golf/benchmark/run.py for multi-GPU configs.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from golf.benchmark.run import check_bench, run_bench
from golf.cli import run_hydra
from golf.runs import RunDir
from golf.config import to_plain_dict
from golf.train import checked_config


def task(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    golf_cfg = checked_config(cfg, run_dir, check=check_bench)
    run = RunDir(run_dir)
    run.start(to_plain_dict(golf_cfg), list(hydra_cfg.overrides.task))
    return run_bench(golf_cfg, run.path)["train_tokens_per_s"]


def main() -> None:
    run_hydra(task, config_name="bench")


if __name__ == "__main__":
    main()
