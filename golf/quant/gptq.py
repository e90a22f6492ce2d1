"""GPTQ: round a matrix's columns one at a time and push each column's rounding error onto the columns not yet
rounded, weighted by the inverse Hessian of the layer's inputs, so the layer's output moves as little as possible.

For a weight W (rows x cols) applied as y = x W^T, and H = X^T X over calibration inputs X (cols x cols), as in the
records (T2, T3; Frantar et al. 2022):

1. dead inputs (diag(H) = 0) get H_jj = 1 and their weights are zeroed; H += damp * mean(diag(H)) * I;
2. columns are processed in order of decreasing diag(H) (stable sort: ties keep their index order);
3. U = the upper Cholesky factor of H^-1 (computed as cholesky_inverse of H's Cholesky factor);
4. in blocks of block_size columns, column j is rounded on the rows' fixed scales, q_j = clamp(round(w_j / s),
   -qmax, qmax); its error e_j = (w_j - q_j s) / U_jj is subtracted from the block's later columns through row j of
   U; after the block, the block's errors reach all later columns at once (E @ U[block, later]).

The scales are given (SDClip in the records): GPTQ only chooses the codes. With H = I it reduces to rounding to
nearest on those scales (U is then diagonal). Everything runs in fp32 on the weight's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PreparedHessian:
    hessian: Tensor  # damped, dead inputs set to 1 (cols x cols, fp32)
    dead: Tensor  # bool per column: no calibration input ever reached it


def prepare_hessian(hessian: Tensor, damp: float) -> PreparedHessian:
    """Step 1 above, on a copy."""
    h = hessian.float().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    h.diagonal().add_(damp * h.diag().mean())
    return PreparedHessian(h, dead)


def gptq_codes(w: Tensor, prepared: PreparedHessian, scale16: Tensor, qmax: int, block_size: int = 128) -> Tensor:
    """int8 codes (w's shape) of the 2-D w on the per-row fp16 scales `scale16`, by GPTQ with the prepared Hessian."""
    rows, cols = w.shape
    if prepared.hessian.shape != (cols, cols):
        raise ValueError(f"the Hessian has shape {tuple(prepared.hessian.shape)}; a weight with {cols} columns "
                         f"needs ({cols}, {cols})")
    device = w.device
    h = prepared.hessian.to(device)
    order = torch.argsort(torch.diag(h), descending=True, stable=True)
    inverse_order = torch.argsort(order)
    work = w.float().clone()[:, order]
    work[:, prepared.dead.to(device)[order]] = 0
    h = h[order][:, order]
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    s = scale16.float().to(device)
    codes = torch.zeros(rows, cols, dtype=torch.int8, device=device)
    for start in range(0, cols, block_size):
        end = min(start + block_size, cols)
        block = work[:, start:end].clone()
        u_block = u[start:end, start:end]
        errors = torch.zeros(rows, end - start, device=device)
        for j in range(end - start):
            column = block[:, j]
            q = torch.clamp(torch.round(column / s), -qmax, qmax)
            codes[:, start + j] = q.to(torch.int8)
            error = (column - q * s) / u_block[j, j]
            errors[:, j] = error
            block[:, j:] -= error.unsqueeze(1) * u_block[j, j:].unsqueeze(0)
        if end < cols:
            work[:, end:] -= errors @ u[start:end, end:]
    return codes[:, inverse_order]
