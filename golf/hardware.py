"""Where a run executes: device, precision, processes (per node and nodes), rendezvous, per-device batch, threads."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from golf.errors import ConfigError

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
    compile: bool = False
    micro_batch_tokens: int = 0  # most tokens one rank puts through a forward (per-device batch); 0 = train.grad_accum_steps decides
    threads: int = 0  # torch intra-op threads; 0 = torch's default (one per core; 1 per rank under torchrun)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def grad_accum_per_rank(batch_tokens: int, seq_len: int, grad_accum_steps: int, hw: HardwareConfig) -> int:
    """Micro-batches each rank accumulates per optimizer step. The global batch is train.batch_tokens whatever the
    world size. With hardware.micro_batch_tokens > 0 (the per-device batch, an upper bound) it is the fewest whole-
    sequence micro-batches that fit under it; with 0, train.grad_accum_steps. Equal micro-batches make the averaged
    gradient the same for any split, so only float rounding depends on it."""
    if hw.micro_batch_tokens <= 0:
        return grad_accum_steps
    seqs = batch_tokens // (hw.world_size * seq_len)  # this rank's sequences a step
    for accum in range(1, seqs + 1):
        if seqs % accum == 0 and (seqs // accum) * seq_len <= hw.micro_batch_tokens:
            return accum
    return seqs


def setup_device(hw: HardwareConfig, local_rank: int = 0) -> torch.device:
    if hw.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("hardware.device", "is 'cuda' but torch sees no CUDA device here; use hardware=cpu")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return device
    if hw.threads > 0:
        torch.set_num_threads(hw.threads)
    return torch.device("cpu")


def autocast(hw: HardwareConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked (GPUs); a no-op in fp32, the right choice on CPU (bf16 is ~14x slower there)."""
    if hw.dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
