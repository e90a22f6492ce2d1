"""Muon as the challenge's baseline runs it: Nesterov momentum, Newton-Schulz orthogonalization, shape scaling; and
the records' variants of it, each a switch (golf/optim/config.py): MuonEq-R's row normalization, Polar Express's
per-iteration coefficients, and the parameter-banked arithmetic of the 03-23 and 04-27 records.

golf writes its own rather than use `torch.optim.Muon`, whose update differs from the challenge's: torch keeps an
EMA momentum buffer (buf.lerp_(grad, 1 - momentum)), which equals the baseline's sum buffer (buf = momentum*buf +
grad) only up to a factor that NS normalization cancels while momentum is constant, but not while it is warmed up
from 0.85 to 0.95; it applies decoupled weight decay by default (0.1; the baseline has none); it always runs
Newton-Schulz in bf16 and clamps the norm instead of adding eps; and it has no distributed share-out, so every rank
orthogonalizes every matrix. The shape scaling max(1, rows/cols)**0.5 and the coefficients are the same.

The arithmetic follows the scripts operation for operation (the order of each product, the dtype each scaling is
applied in), so that with equal inputs the updates are equal bit for bit, in bf16 too
(tests/parity/test_parity_baseline_training.py and tests/parity/test_parity_optim.py run both). Two arithmetics:

- "baseline" (the challenge's script, and the 04-09 record): the momentum buffer in the gradient's dtype (fp32);
  B = b*A + (c*A) @ A; the shape scale applied to the NS result in the NS dtype, before widening.
- "banked" (the 03-23 and 04-27 records' parallel Muon over parameter banks): the gradient cast to the NS dtype
  (bf16) first, so the momentum buffer and the Nesterov sum are bf16; the norm taken after the transpose;
  B = b*A + c*(A @ A); the shape scale folded into the step size (p += -lr*scale * update, in the weight's dtype).
  One difference golf does not reproduce: on several GPUs the records average the bank gradients in bf16
  (reduce-scatter) where golf's DDP averages in fp32, so multi-GPU runs agree only approximately.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor

from golf.collectives import all_reduce_, rank_world
from golf.optim.config import ARITHMETICS, NS_SCHEDULES

Coefficients = tuple[float, float, float]
NS_COEFFICIENTS: Coefficients = (3.4445, -4.7750, 2.0315)  # quintic; maximal slope at 0, converges to a band around 1
# Polar Express (Amsel et al. 2025, "The Polar Express: Optimal Matrix Sign Methods"): one minimax-optimal quintic
# per iteration, steep first and gentle last, as the 04-27 record runs them for its 5 steps (its _PE_COEFFS).
POLAR_EXPRESS: tuple[Coefficients, ...] = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
ROW_NORM_EPS = 1e-7  # MuonEq-R: a zero row stays zero instead of dividing by 0


def ns_coefficients(schedule: str, steps: int) -> tuple[Coefficients, ...]:
    """The (a, b, c) of each of `steps` Newton-Schulz iterations. Polar Express has 5 tuples; more steps are refused
    (the 04-27 record's code runs only the 5 whatever it is asked for, so a larger count would mean nothing)."""
    if schedule == "quintic":
        return (NS_COEFFICIENTS,) * steps
    if schedule == "polar_express":
        if steps > len(POLAR_EXPRESS):
            raise ValueError(f"Polar Express has {len(POLAR_EXPRESS)} coefficient tuples, got steps={steps}")
        return POLAR_EXPRESS[:steps]
    raise ValueError(f"Newton-Schulz coefficients must be one of {NS_SCHEDULES}, got {schedule!r}")


def row_normalize(update: Tensor) -> Tensor:
    """MuonEq-R: each row divided by its L2 norm (taken in fp32, divided in the update's dtype), as the 04-09 and
    04-27 records do it between the Nesterov sum and Newton-Schulz. Equalizes the rows' scales, so that
    orthogonalization sees every output unit alike."""
    norms = update.float().norm(dim=-1, keepdim=True).clamp_min(ROW_NORM_EPS)
    return update / norms.to(update.dtype)


def zeropower_via_newton_schulz(G: Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype = torch.bfloat16,
                                coefficients: Optional[Sequence[Coefficients]] = None, banked: bool = False) -> Tensor:
    """Approximately U V^T for G = U S V^T: keeps the singular vectors, moves the singular values toward 1.

    Each step applies p(x) = a x + b x^3 + c x^5 to the singular values. Dividing by the Frobenius norm first puts
    them all in [0, 1]; after 5 quintic steps every one that started above 0.005 lies in [0.68, 1.21] (not exactly
    1: the coefficients trade convergence for a steep slope at 0, which lifts small singular values in few steps).
    `coefficients` gives one (a, b, c) per iteration (Polar Express); by default the quintic, `steps` times.
    Works on the wide orientation (rows <= cols) so that the Gram matrix X X^T is the small one. The result is in
    `dtype`, with G's shape. `banked` follows the banked scripts' order of operations (see the module's doc).
    """
    if G.ndim != 2:
        raise ValueError(f"Newton-Schulz needs a matrix, got shape {tuple(G.shape)}")
    schedule = tuple(coefficients) if coefficients is not None else (NS_COEFFICIENTS,) * steps
    tall = G.size(0) > G.size(1)
    if banked:  # as a batch of one: transpose, then divide by the norm; c * (A @ A)
        X = G.to(dtype).unsqueeze(0)
        if tall:
            X = X.mT
        X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
        for a, b, c in schedule:
            A = X @ X.mT
            B = b * A + c * (A @ A)
            X = a * X + B @ X
        X = X.mT if tall else X
        return X.squeeze(0)
    X = G.to(dtype)
    X = X / (X.norm() + eps)  # + eps: a zero gradient gives a zero update, not NaN
    if tall:
        X = X.T
    for a, b, c in schedule:
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
    group's current lr (so the warm-down scales it too: the records' only taper of the decay).

    row_normalize (MuonEq-R) divides each row of the Nesterov update by its norm before Newton-Schulz;
    ns_coefficients names the per-iteration coefficients ("quintic" or "polar_express"); arithmetic is "baseline"
    or "banked" (the module's doc). All three are per group.

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
        row_normalize: bool = False,
        ns_coefficients: str = "quintic",
        arithmetic: str = "baseline",
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if arithmetic not in ARITHMETICS:
            raise ValueError(f"arithmetic must be one of {ARITHMETICS}, got {arithmetic!r}")
        defaults = dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov, ns_dtype=ns_dtype,
                        weight_decay=weight_decay, row_normalize=row_normalize, ns_coefficients=ns_coefficients,
                        arithmetic=arithmetic)
        super().__init__(params, defaults)
        self.compile_ns = compile_ns
        for group in self.param_groups:
            _coefficients(group)  # refuses an unknown schedule or too many Polar Express steps now, not at step 1
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon updates matrices only, got a parameter of shape {tuple(p.shape)}")

    def _momentum_buffer(self, p: Tensor, dtype: torch.dtype) -> Tensor:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p.grad, dtype=dtype)
        elif state["momentum_buffer"].dtype != dtype:
            # torch's load_state_dict (a resumed checkpoint) widens state to the parameter's dtype; the banked
            # arithmetic's bf16 buffer narrows back exactly
            state["momentum_buffer"] = state["momentum_buffer"].to(dtype)
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
        grads: dict[Tensor, Tensor] = {}  # the gradient as the momentum sees it (bf16 when banked)
        for group in self.param_groups:  # buf = momentum * buf + grad
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                dtype = group["ns_dtype"] if _banked(group) else None
                for p in params:
                    grads[p] = p.grad.to(dtype) if dtype is not None else p.grad
                bufs = [self._momentum_buffer(p, grads[p].dtype) for p in params]
                if _banked(group):  # one tensor at a time: on bf16, foreach's mul rounds differently from mul_
                    for buf, p in zip(bufs, params):
                        buf.mul_(group["momentum"]).add_(grads[p])
                else:
                    torch._foreach_mul_(bufs, group["momentum"])
                    torch._foreach_add_(bufs, [grads[p] for p in params])
        flat = torch.zeros(sum(p.numel() for p, _ in todo), device=todo[0][0].device, dtype=torch.float32)
        orthogonalize = compiled_newton_schulz() if self.compile_ns else zeropower_via_newton_schulz

        offset = 0
        for i, (p, group) in enumerate(todo):
            if i % world_size == rank:
                buf, g = self.state[p]["momentum_buffer"], grads[p]
                update = g.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                if group.get("row_normalize", False):
                    update = row_normalize(update)
                update = orthogonalize(update, dtype=group["ns_dtype"], coefficients=_coefficients(group),
                                       banked=_banked(group))
                if not _banked(group):
                    # same RMS per element, any shape; scaled in the NS dtype, then widened (the script scales its
                    # bf16 result in place before storing it: scaling in fp32 would round differently for tall
                    # matrices). Banked: the scale goes into the step size below.
                    update = update * _shape_scale(p)
                flat[offset: offset + p.numel()] = update.float().reshape(-1)
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
            if _banked(group):  # one step size per shape: -lr * scale, as the banked scripts pass it
                for p, update in zip(params, updates):
                    p.add_(update, alpha=-group["lr"] * _shape_scale(p))
            else:
                torch._foreach_add_(params, updates, alpha=-group["lr"])
        return loss


def _shape_scale(p: Tensor) -> float:
    """max(1, rows/cols)**0.5: the same RMS per element for any shape."""
    return max(1.0, p.size(0) / p.size(1)) ** 0.5


def _banked(group: dict) -> bool:
    return group.get("arithmetic", "baseline") == "banked"


def _coefficients(group: dict) -> tuple[Coefficients, ...]:
    return ns_coefficients(group.get("ns_coefficients", "quintic"), group["backend_steps"])
