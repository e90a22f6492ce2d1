"""Setting up where a run executes (device, precision, threads, micro-batches); the settings and their checks are
golf/hardware_config.py's."""

from __future__ import annotations

import contextlib
import os

import torch

from golf.errors import ConfigError
from golf.hardware_config import HardwareConfig


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
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast (Muon's fp32 NS, the loss) on TF32
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        torch.backends.cuda.enable_flash_sdp(True)  # SDPA's flash kernel for bf16 (torch's default, stated here)
        return device
    torch.set_num_threads(cpu_threads(hw))
    return torch.device("cpu")


def cpu_threads(hw: HardwareConfig) -> int:
    """hardware.threads when set; else the cores this process may run on, shared out among the ranks of this node
    (torch's default counts every core for every rank, and ranks that oversubscribe the cores spin-wait on each other);
    OMP_NUM_THREADS, when set, wins."""
    if hw.threads > 0:
        return hw.threads
    if os.environ.get("OMP_NUM_THREADS"):  # set by the person, or by golf's torchrun launch (one per rank)
        return torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(hw.nproc_per_node, 1))


TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def apply_precision_policy(model: torch.nn.Module, hw: HardwareConfig) -> torch.nn.Module:
    """The parameter dtypes the challenge's scripts train with: on CUDA they cast the model to bf16, then give every
    CastedLinear and every small or control parameter back its fp32, which leaves the token tables (nn.Embedding:
    tok_emb, and in the records the bigram and value-embedding tables) in bf16, their Adam moments too.
    hardware.embed_dtype=bfloat16 (the GPU options) reproduces that; fp32 (the CPU options) keeps every weight fp32.
    Returns the model."""
    dtype = TORCH_DTYPES[hw.embed_dtype]
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            module.to(dtype)
    return model


def autocast(hw: HardwareConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked (GPUs); a no-op in fp32, the right choice on CPU (bf16 is ~14x slower there)."""
    if hw.dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
