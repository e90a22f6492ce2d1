"""Running a job on several processes: the process group's set-up and teardown, the torchrun command line, the
rendezvous and the ranks' failure reports (README.md "Distributed"; docs/architecture.md). When an entry point
re-runs under torchrun, and what each rank then does, is golf/launch.py's; the collectives themselves (rank and
world, reductions, broadcasts) are golf/collectives.py's.

Hydra stays outside torchrun. A job with hardware.nproc_per_node > 1 (or hardware.nnodes > 1) composes and validates
once, writes config.yaml into its run directory and starts

    python -m torch.distributed.run --nproc-per-node=N [rendezvous] -m golf.<entry>

with GOLF_CONFIG=<run dir>/config.yaml; every rank reads that file (no composing again) and shares the run directory;
only rank 0 writes. A hand-typed `torchrun -m golf.train k=v` composes on every rank instead, and rank 0 picks the run
directory and broadcasts it. A rank that fails appends its error to train.log and exits non-zero; torchrun then stops
the others at once and the launching process records status "failed" in metrics.json.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from golf import collectives
from golf.collectives import broadcast_object, rank_world
from golf.hardware import HardwareConfig

CONFIG_ENV = "GOLF_CONFIG"  # set by the launcher: the resolved config.yaml every rank reads
RUN_DIR_ENV = "GOLF_RUN_DIR"
FAILED_PREFIX = "failed on rank"


def is_main() -> bool:
    return rank_world()[0] == 0


def under_torchrun() -> bool:
    """True in a process torchrun started (it sets WORLD_SIZE and LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def backend_for(hw: HardwareConfig) -> str:
    if hw.backend != "auto":
        return hw.backend
    return "nccl" if hw.device == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(hw: HardwareConfig) -> Iterator[None]:
    """init_process_group from torchrun's environment with the collective timeout set; a no-op for one process."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1 or collectives.initialized():
        yield
        return
    if hw.device == "cuda":
        torch.cuda.set_device(local_rank())
    collectives.init(backend_for(hw), hw.timeout_s)
    try:
        yield
    finally:
        collectives.shut_down()


def note_failure(run_dir: Path, err: BaseException) -> None:
    """A failing rank's error into train.log (any rank may append this one line), so the job's log says why."""
    rank = rank_world()[0] if collectives.initialized() else int(os.environ.get("RANK", "0"))
    detail = "".join(traceback.format_exception_only(type(err), err)).strip().replace("\n", " | ")
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {FAILED_PREFIX} {rank}: {detail}\n"
    print(line.strip(), file=sys.stderr)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "train.log", "a", encoding="utf-8") as f:
            f.write(line)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------------------------
# The launcher side (outside torchrun).


def needs_launch(hw: HardwareConfig) -> bool:
    return (hw.nproc_per_node > 1 or hw.nnodes > 1) and not under_torchrun()


def rendezvous(hw: HardwareConfig) -> tuple[str, str]:
    """Multi-node: the c10d endpoint and job id, from config or GOLF_RDZV_ENDPOINT / GOLF_RDZV_ID."""
    from golf.errors import ConfigError

    endpoint = hw.rdzv_endpoint or os.environ.get("GOLF_RDZV_ENDPOINT", "")
    run_id = hw.rdzv_id or os.environ.get("GOLF_RDZV_ID", "")
    if not endpoint:
        raise ConfigError("hardware.rdzv_endpoint", "must be HOST:PORT of the rendezvous (or set GOLF_RDZV_ENDPOINT) "
                          f"when hardware.nnodes={hw.nnodes} > 1")
    if not run_id:
        raise ConfigError("hardware.rdzv_id", "must be a job id shared by every node (or set GOLF_RDZV_ID) when "
                          f"hardware.nnodes={hw.nnodes} > 1")
    return endpoint, run_id


def torchrun_command(hw: HardwareConfig, module: str) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={hw.nproc_per_node}",
           "--monitor-interval=0.5"]
    if hw.nnodes > 1:
        endpoint, run_id = rendezvous(hw)
        cmd += [f"--nnodes={hw.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={run_id}"]
    else:
        cmd += ["--standalone"]  # a c10d store on a free port of this machine: no port to pick, none to collide
    return cmd + ["-m", module]


def launch(hw: HardwareConfig, module: str, run_dir: Path) -> int:
    """Run `module` under torchrun with every rank reading run_dir/config.yaml; returns torchrun's exit status."""
    env = {**os.environ, CONFIG_ENV: str(run_dir / "config.yaml"), RUN_DIR_ENV: str(run_dir),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(hw.threads, 1)))}
    return subprocess.run(torchrun_command(hw, module), env=env).returncode


def failures_in_log(run_dir: Path) -> list[str]:
    try:
        lines = (run_dir / "train.log").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [line.split(" ", 2)[2] for line in lines if f" {FAILED_PREFIX} " in line]


def default_run_dir(root: str, name: str) -> Path:
    return Path(root) / "runs" / f"{datetime.datetime.now():%Y-%m-%d_%H-%M-%S-%f}_{name}"


def shared_run_dir(chosen: Optional[str], root: str, name: str) -> Path:
    """Hand-typed torchrun: rank 0 picks the run directory (hydra.run.dir when given) and every rank gets it."""
    path = Path(chosen) if chosen else default_run_dir(root, name)
    return Path(broadcast_object(str(path)))
