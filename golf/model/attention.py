"""Attention options of the record stack, as small functions and modules the attention module calls.

- Partial RoPE (model.rope_dims = d > 0): only the first d dims of each head are rotated; the rest carry no position.
- XSA (model.xsa_last = k): on the last k layers (by layer index), each token's attention output has its own value
  direction removed: y_t <- y_t - (y_t . v_t / |v_t|^2) v_t, per head (with grouped KV heads, v_t of the head's KV
  head). model.xsa_last = model.num_layers puts it on every layer (T2, T3).
- Head gates (model.attn_gate): a per-head gate g (B, T, H) multiplies each head's attention output (after XSA,
  before the output projection), as the 2026-04 records build them (HeadGate). RoPE is relative, so positions need not
  restart at a document start.
- Document masking (model.doc_mask, "VarLen"): a token attends only to earlier tokens of its own document; a document
  starts at each BOS (golf.data.tokenizer.BOS_ID) and at the start of the row, or where a packed batch's cu_seqlens
  says (data.loader=documents). On CUDA in bf16/fp16 through
  FlashAttention's varlen kernel when flash_attn_interface (FA3) or flash_attn (FA2) imports; otherwise through SDPA
  with a block-diagonal causal mask (on a GPU with a one-time warning: it is slower).
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.data.tokenizer import BOS_ID


def exclusive(y: Tensor, v: Tensor) -> Tensor:
    """XSA. y: (B, H, T, D) attention output; v: (B, KV, T, D) values, H a multiple of KV."""
    B, H, T, D = y.shape
    kv = v.size(1)
    y_g = y.reshape(B, kv, H // kv, T, D)
    vn = F.normalize(v, dim=-1).unsqueeze(2)  # (B, KV, 1, T, D)
    return (y_g - (y_g * vn).sum(-1, keepdim=True) * vn).reshape(B, H, T, D)


# --- head gates -----------------------------------------------------------------------------------------------------

class HeadGate(nn.Module):
    """A per-head gate on the attention output, one of the records' three forms (model.attn_gate):

    - output (AttnOutGate): g = 2 sigmoid(W s[:k]), W (H, k) zero-initialized, so g = 1 at init; s is the attention's
      input x or c_q's output (model.attn_gate_source).
    - dense (GatedAttn): g = sigmoid(W x), W (H, dim) ~ N(0, init_std^2): g ~ 0.5 at init.
    - sparse (SparseAttnGate): g = sigmoid(scale * W x[:k]), W (H, k), zero (or N(0, init_std^2)) at init.

    The weight is a control tensor (its name holds "attn_gate"): Adam, never Muon; fp32 in the artifact."""

    def __init__(self, kind: str, dim: int, heads: int, window: int, scale: float, init_std: float, source: str):
        super().__init__()
        self.kind, self.window, self.scale, self.init_std, self.source = kind, window, scale, init_std, source
        self.weight = nn.Parameter(torch.zeros(heads, dim if kind == "dense" else window))

    def reset_parameters(self) -> None:
        if self.kind != "output" and self.init_std > 0:
            nn.init.normal_(self.weight, mean=0.0, std=self.init_std)
        else:
            nn.init.zeros_(self.weight)

    def forward(self, x: Tensor, q_raw: Tensor) -> Tensor:
        """(B, T, H) gates from the attention's input x (B, T, dim) or c_q's output q_raw (B, T, dim)."""
        w = self.weight.to(x.dtype)
        if self.kind == "dense":
            return torch.sigmoid(F.linear(x, w))
        src = q_raw if self.kind == "output" and self.source == "q" else x
        logits = F.linear(src[..., : self.window], w)
        if self.kind == "output":
            return 2.0 * torch.sigmoid(logits)
        return torch.sigmoid(self.scale * logits)


# --- document masking -----------------------------------------------------------------------------------------------

class Documents:
    """Where the documents of a (B, T) batch of input ids are, in the two forms the attention kernels take: a
    block-diagonal causal mask (B, 1, T, T) for SDPA, and cumulative sequence lengths over the flattened batch for a
    varlen kernel. Built once a forward pass and shared by every layer."""

    def __init__(self, ids: Tensor, cu_seqlens: Optional[Tensor] = None):
        """Documents start at each BOS, or, with cu_seqlens (packed training rows: documents also cut at
        train.seq_len; entries equal to the batch's size pad it), where cu_seqlens says."""
        self.shape = ids.shape
        if cu_seqlens is None:
            starts = ids == BOS_ID
        else:
            starts = torch.zeros(ids.numel(), dtype=torch.bool, device=ids.device)
            cu = cu_seqlens.to(device=ids.device, dtype=torch.long)
            starts[cu[cu < ids.numel()]] = True
            starts = starts.view(ids.shape)
        starts[:, 0] = True  # every row starts a document (a window may begin mid-document)
        self.starts = starts
        self._mask: Optional[Tensor] = None
        self._cu: Optional[Tensor] = None

    def mask(self) -> Tensor:
        if self._mask is None:
            doc = torch.cumsum(self.starts.to(torch.int32), dim=-1)  # (B, T) document number
            T = doc.size(-1)
            causal = torch.ones(T, T, dtype=torch.bool, device=doc.device).tril()
            self._mask = ((doc[:, :, None] == doc[:, None, :]) & causal)[:, None]
        return self._mask

    def cu_seqlens(self) -> Tensor:
        if self._cu is None:
            flat = torch.nonzero(self.starts.reshape(-1)).reshape(-1)
            end = torch.tensor([self.starts.numel()], device=flat.device, dtype=flat.dtype)
            self._cu = torch.cat((flat, end)).to(torch.int32)
        return self._cu


@functools.lru_cache(maxsize=1)
def varlen_kernel() -> Optional[Callable]:
    """FlashAttention's varlen function (FA3's flash_attn_interface first, then FA2's flash_attn), or None."""
    for module in ("flash_attn_interface", "flash_attn"):
        try:
            return getattr(__import__(module), "flash_attn_varlen_func")
        except (ImportError, AttributeError):
            continue
    return None


_warned = False


def _warn_masked_fallback() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn("model.doc_mask: FlashAttention's varlen kernel is not importable (flash_attn_interface or "
                      "flash_attn); document-masked attention runs through SDPA with a block-diagonal mask, which "
                      "is slower", RuntimeWarning, stacklevel=3)


def attend(q: Tensor, k: Tensor, v: Tensor, docs: Optional[Documents]) -> Tensor:
    """Causal attention (B, H, T, D) of q (B, H, T, D) over k, v (B, KV, T, D); within documents when docs is given."""
    gqa = q.size(1) != k.size(1)
    if docs is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    if q.is_cuda:
        kernel = varlen_kernel()
        if kernel is not None and q.dtype in (torch.bfloat16, torch.float16):
            return _attend_varlen(kernel, q, k, v, docs)
        if kernel is None:
            _warn_masked_fallback()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=docs.mask(), enable_gqa=gqa)


def _attend_varlen(kernel: Callable, q: Tensor, k: Tensor, v: Tensor, docs: Documents) -> Tensor:
    B, H, T, D = q.shape

    def packed(t: Tensor) -> Tensor:  # (B, heads, T, D) -> (B * T, heads, D)
        return t.transpose(1, 2).reshape(B * T, t.size(1), D)

    cu = docs.cu_seqlens()
    y = kernel(packed(q), packed(k), packed(v), cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=T, max_seqlen_k=T,
               causal=True)
    if isinstance(y, tuple):  # some FlashAttention versions also return the log-sum-exp
        y = y[0]
    return y.reshape(B, T, H, D).transpose(1, 2)
