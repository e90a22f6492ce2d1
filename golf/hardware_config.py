"""Where a run executes (hardware.*): device, precision, processes, rendezvous, per-device batch, threads; and the
checks of those keys. No torch here; golf/hardware.py sets the device up."""

import math
from dataclasses import dataclass
from typing import Any

from golf.problems import Problems

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass
class HardwareConfig:
    name: str = "cpu"
    nproc_per_node: int = 1  # processes (ranks) on each node; > 1 starts torchrun underneath
    nnodes: int = 1  # > 1: every node runs the same command; ranks meet at rdzv_endpoint (c10d)
    rdzv_endpoint: str = ""  # host:port of the c10d rendezvous (or GOLF_RDZV_ENDPOINT); multi-node only
    rdzv_id: str = ""  # one id per job, the same on every node (or GOLF_RDZV_ID); multi-node only
    backend: str = "auto"  # auto = nccl on cuda, gloo on cpu
    timeout_s: float = 300.0  # collective timeout: a stuck collective fails the job instead of hanging it
    device: str = "cpu"
    dtype: str = "float32"  # compute dtype of matmuls (autocast); master weights stay fp32
    embed_dtype: str = "float32"  # dtype of the token tables' weights (nn.Embedding) and so of their Adam state
    compile: bool = False
    micro_batch_tokens: int = 0  # most tokens one rank puts through a forward (per-device batch); 0 = train.grad_accum_steps decides
    threads: int = 0  # torch intra-op threads; 0 = OMP_NUM_THREADS if set, else the process's cores / nproc_per_node

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def hardware_problems(hw: HardwareConfig) -> list[tuple[str, Any, str]]:
    p = Problems("hardware.")
    p.at_least("nproc_per_node", hw.nproc_per_node, 1)
    p.at_least("nnodes", hw.nnodes, 1)
    p.choice("device", hw.device, DEVICES)
    p.choice("dtype", hw.dtype, DTYPES)
    p.choice("embed_dtype", hw.embed_dtype, DTYPES)
    p.choice("backend", hw.backend, BACKENDS)
    p.need(not (hw.backend == "nccl" and hw.device == "cpu"), "backend", hw.backend,
           "gloo or auto on hardware.device=cpu (NCCL needs GPUs)")
    p.need(math.isfinite(hw.timeout_s) and hw.timeout_s > 0, "timeout_s", hw.timeout_s, "a number of seconds > 0")
    p.at_least("micro_batch_tokens", hw.micro_batch_tokens, 0)
    p.at_least("threads", hw.threads, 0)
    return p
