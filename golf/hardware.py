"""Where a run executes: device, precision, processes, threads."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from golf.errors import ConfigError

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16")


@dataclass
class HardwareConfig:
    name: str = "cpu"
    nproc_per_node: int = 1
    device: str = "cpu"
    dtype: str = "float32"  # compute dtype of matmuls (autocast); master weights stay fp32
    compile: bool = False
    threads: int = 0  # torch intra-op threads; 0 = torch's default (one per core)


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
