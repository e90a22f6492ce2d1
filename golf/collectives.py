"""The one module that talks to torch.distributed: ranks, reductions, gathers, broadcasts, the process group.

Everything else asks here, so one process (no process group) and several ranks take the same code path: every
function below is the identity, or a no-op, in one process. Evaluation needs these too, so this file counts toward
code_bytes (golf/quant/code_size.py). tests/test_import_rules.py fails when another module calls torch.distributed.
"""

from __future__ import annotations

import datetime
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "avg": dist.ReduceOp.AVG}


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if initialized() else (0, 1)


def init(backend: str, timeout_s: float) -> None:
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


def shut_down() -> None:
    if initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """`tensor` reduced over ranks in place (sum, max or avg); returned for chaining."""
    if rank_world()[1] > 1:
        dist.all_reduce(tensor, op=_OPS[op])
    return tensor


def all_reduce_grads_(tensors: Sequence[torch.Tensor]) -> None:
    """The .grad of each tensor summed over ranks, in one flat all-reduce."""
    if rank_world()[1] == 1 or not tensors:
        return
    flat = torch.cat([t.grad.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.grad.copy_(flat[offset:offset + t.numel()].view_as(t.grad))
        offset += t.numel()


def all_gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's `tensor` (same shape on every rank), in rank order."""
    if rank_world()[1] == 1:
        return [tensor]
    gathered = [torch.empty_like(tensor) for _ in range(rank_world()[1])]
    dist.all_gather(gathered, tensor)
    return gathered


def all_gather_padded(values: torch.Tensor, fill: float) -> tuple[list[torch.Tensor], list[int]]:
    """Every rank's 1-D `values` (lengths may differ), padded with `fill` to the longest, and each rank's length."""
    counts = [int(c.item()) for c in all_gather(torch.tensor([values.numel()], device=values.device))]
    padded = torch.full((max(counts),), fill, dtype=values.dtype, device=values.device)
    padded[:values.numel()] = values
    return all_gather(padded), counts


def gather_in_order(values: np.ndarray, device: torch.device) -> np.ndarray:
    """The ranks' 1-D float64 arrays concatenated in rank order (ranks hold contiguous shares, so rank order is
    target order); one process returns its own."""
    if rank_world()[1] == 1:
        return values
    mine = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(device)
    gathered, counts = all_gather_padded(mine, 0.0)
    return np.concatenate([g[:n].cpu().numpy() for g, n in zip(gathered, counts)])


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` of rank `src` on every rank (any picklable value: a decision, a dict of metrics, a path)."""
    if rank_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_(tensor: torch.Tensor, src: int = 0) -> None:
    if rank_world()[1] > 1:
        dist.broadcast(tensor, src=src)


@torch.no_grad()
def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's weights on every rank (the seed gives equal inits already; this makes it a guarantee)."""
    for tensor in module.state_dict().values():
        broadcast_(tensor, src=0)
