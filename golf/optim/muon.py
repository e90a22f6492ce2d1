"""Muon as the challenge's baseline runs it: Nesterov momentum, Newton-Schulz orthogonalization, shape scaling.

golf writes its own rather than use `torch.optim.Muon`, whose update differs from the challenge's: torch keeps an
EMA momentum buffer (buf.lerp_(grad, 1 - momentum)), which equals the baseline's sum buffer (buf = momentum*buf +
grad) only up to a factor that NS normalization cancels while momentum is constant, but not while it is warmed up
from 0.85 to 0.95; it applies decoupled weight decay by default (0.1; the baseline has none); it always runs
Newton-Schulz in bf16 and clamps the norm instead of adding eps; and it has no distributed share-out, so every rank
orthogonalizes every matrix. The shape scaling max(1, rows/cols)**0.5 and the coefficients are the same.

The arithmetic follows the challenge's script operation for operation (the order of each product, the dtype each
scaling is applied in), so that with equal inputs the updates are equal bit for bit, in bf16 too
(tests/parity/test_baseline_training.py runs both).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from torch import Tensor

from golf.collectives import all_reduce_, rank_world

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # quintic; maximal slope at 0, converges to a band around 1


def zeropower_via_newton_schulz(G: Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """Approximately U V^T for G = U S V^T: keeps the singular vectors, moves the singular values toward 1.

    Each step applies p(x) = a x + b x^3 + c x^5 to the singular values. Dividing by the Frobenius norm first puts
    them all in [0, 1]; after 5 steps every one that started above 0.005 lies in [0.68, 1.21] (not exactly 1: the
    coefficients trade convergence for a steep slope at 0, which lifts small singular values in few steps). Works on the wide orientation (rows <= cols) so that the
    Gram matrix X X^T is the small one. The result is in `dtype`, with G's shape.
    """
    if G.ndim != 2:
        raise ValueError(f"Newton-Schulz needs a matrix, got shape {tuple(G.shape)}")
    a, b, c = NS_COEFFICIENTS
    X = G.to(dtype)
    X = X / (X.norm() + eps)  # + eps: a zero gradient gives a zero update, not NaN
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + (c * A) @ A  # the script's order: in bf16, c * (A @ A) rounds differently
        X = a * X + B @ X
    return X.T if tall else X


_COMPILED_NS: dict[str, Callable] = {}


def compiled_newton_schulz() -> Callable:
    """zeropower_via_newton_schulz under torch.compile (one graph per matrix shape: the 5 steps' matmuls and
    elementwise work fused, no Python between them), as the challenge's script runs it on GPUs. Built on first use."""
    if "ns" not in _COMPILED_NS:
        _COMPILED_NS["ns"] = torch.compile(zeropower_via_newton_schulz, dynamic=False)
    return _COMPILED_NS["ns"]


class Muon(torch.optim.Optimizer):
    """Momentum, then orthogonalize, then p -= lr * max(1, rows/cols)**0.5 * update, for 2-D parameters.

    With torch.distributed initialized, parameter i (counted over all groups) is orthogonalized by rank
    i % world_size; each rank writes its updates into a flat fp32 buffer of zeros, one all_reduce(SUM) combines
    them, and every rank applies every update. The gradients must already be identical on all ranks (as after DDP).
    Momentum buffers are kept on every rank (cheap, elementwise), so any rank's state_dict holds the whole state.

    weight_decay is decoupled, as the record entries apply it: p *= 1 - lr * weight_decay before the update, with the
    group's current lr (so the warm-down scales it too). It is elementwise, so every rank decays every parameter.

    compile_ns runs Newton-Schulz compiled (compiled_newton_schulz; golf's optimizer builder turns it on for CUDA).
    The elementwise work (momentum, decay, the update) is done with torch's foreach ops, a few kernels per group
    rather than a few per parameter.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float,
        momentum: float,
        backend_steps: int,
        nesterov: bool = True,
        ns_dtype: torch.dtype = torch.bfloat16,
        weight_decay: float = 0.0,
        compile_ns: bool = False,
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov, ns_dtype=ns_dtype,
                        weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.compile_ns = compile_ns
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon updates matrices only, got a parameter of shape {tuple(p.shape)}")

    def _momentum_buffer(self, p: Tensor) -> Tensor:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p.grad)
        return state["momentum_buffer"]

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        rank, world_size = rank_world()

        todo = [(p, group) for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not todo:
            return loss
        for group in self.param_groups:  # buf = momentum * buf + grad
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                bufs = [self._momentum_buffer(p) for p in params]
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_add_(bufs, [p.grad for p in params])
        flat = torch.zeros(sum(p.numel() for p, _ in todo), device=todo[0][0].device, dtype=torch.float32)
        orthogonalize = compiled_newton_schulz() if self.compile_ns else zeropower_via_newton_schulz

        offset = 0
        for i, (p, group) in enumerate(todo):
            if i % world_size == rank:
                buf = self.state[p]["momentum_buffer"]
                update = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                update = orthogonalize(update, steps=group["backend_steps"], dtype=group["ns_dtype"])
                # same RMS per element, any shape; scaled in the NS dtype, then widened (the script scales its bf16
                # result in place before storing it: scaling in fp32 would round differently for tall matrices)
                update = (update * max(1.0, p.size(0) / p.size(1)) ** 0.5).float()
                flat[offset: offset + p.numel()] = update.reshape(-1)
            offset += p.numel()

        all_reduce_(flat)  # each slot holds exactly one rank's update, the rest zeros

        offset = 0
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            updates = []
            for p in params:
                updates.append(flat[offset: offset + p.numel()].view_as(p).to(p.dtype))
                offset += p.numel()
            if group["weight_decay"] > 0:
                torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
            torch._foreach_add_(params, updates, alpha=-group["lr"])
        return loss
