"""Where each tensor's bytes go in a version-2 artifact's payload, ordered for the compressor, and how the loader
undoes the per-group transforms.

Every payload puts like with like: all integer codes (state-dict order), then all fp16 scales, then fp16 values, then
fp32 values, then row permutations. Scales between codes break the compressor's statistics; grouped, the baseline's
int8 + zlib payload is about 11 KB smaller than interleaved (measured on baseline9l-shaped weights).

quant.compressor=pergroup (the T3 record's COMPRESSOR=pergroup) also cuts the codes into one stream per tensor role
(`blocks.<i>.` removed from the name: all layers' c_q together) in T3's group order, each compressed on its own by
its best compressor (golf/quant/compressors.py); what remains (small roles, scales, floats, permutations) is the
stream "rest". As in T3, the 2-D codes of a group are stored transposed (column-major), and the rows of the
embedding, c_q and fc are first put in greedy nearest-neighbour order (L1 distance between rows, starting at row 0,
ties to the lower row): the permutation (uint16, uint32 beyond 65,536 rows) is stored so the loader restores the
order. Roles outside T3's list get a stream when their codes reach MIN_GROUP_BYTES, and are not reordered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

GROUP_ORDER = ("tok_emb.weight", "attn.c_k.weight", "attn.c_q.weight", "attn.c_v.weight", "attn.proj.weight",
               "mlp.fc.weight", "mlp.proj.weight")  # T3's _GROUP_ORDER, in golf's names
SIMILARITY_SORTED = frozenset({"tok_emb.weight", "attn.c_q.weight", "mlp.fc.weight"})  # T3's _SIMSORT_KEYS
MIN_GROUP_BYTES = 1 << 16  # other roles: a stream of their own from this many bytes of codes
PAYLOAD, REST = "payload", "rest"  # the single stream of a plain compressor; pergroup's stream of what is left
_BLOCK = re.compile(r"^blocks\.\d+\.")
_INT8 = np.dtype("<i1")


@dataclass
class Encoded:
    """One tensor as the exporter encoded it: its header entry (name, shape, encoding, ...) and its bytes."""
    entry: dict[str, Any]
    values: bytes
    scales: bytes


def role_of(name: str) -> str:
    return _BLOCK.sub("", name)


def perm_dtype(rows: int) -> np.dtype:
    return np.dtype("<u2") if rows <= 1 << 16 else np.dtype("<u4")


def similarity_order(codes: np.ndarray) -> np.ndarray:
    """T3's _similarity_sort_l1: from row 0, repeatedly the unused row nearest (L1) to the last one taken, the
    lowest index on a tie. Distances are integer sums, so the order is exact."""
    rows = codes.shape[0]
    m = torch.from_numpy(codes.astype(np.int32))
    used = torch.zeros(rows, dtype=torch.bool)
    order = np.zeros(rows, dtype=np.int64)
    cur, used[0] = 0, True
    never = torch.iinfo(torch.int32).max
    for i in range(1, rows):
        dist = (m - m[cur]).abs_().sum(dim=1, dtype=torch.int32).masked_fill_(used, never)
        cur = int(torch.argmin(dist))  # the first of equal minima
        used[cur], order[i] = True, cur
    return order


def _groups(pieces: list[Encoded]) -> dict[str, list[int]]:
    """role -> indices of the int-coded matrices stored in that role's stream, in stream order."""
    found: dict[str, list[int]] = {}
    for i, piece in enumerate(pieces):
        e = piece.entry
        if e["encoding"] == "int" and e["per_row"] and len(e["shape"]) == 2:
            found.setdefault(role_of(e["name"]), []).append(i)
    big = sorted(role for role, members in found.items() if role not in GROUP_ORDER
                 and sum(len(pieces[i].values) for i in members) >= MIN_GROUP_BYTES)
    return {role: found[role] for role in [r for r in GROUP_ORDER if r in found] + big}


def arrange(pieces: list[Encoded], grouped: bool) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]]:
    """The payload's streams (name, raw bytes), in file order, and each piece's header entry with the offsets of
    its values, scales and permutation in the streams' concatenation (the logical payload)."""
    streams: dict[str, list[tuple[int, str, bytes]]] = {}
    rest = REST if grouped else PAYLOAD
    in_group: set[int] = set()
    perms: list[tuple[int, bytes]] = []
    entries = [dict(piece.entry, transposed=False, perm_offset=0, perm_nbytes=0) for piece in pieces]
    for role, members in (_groups(pieces) if grouped else {}).items():
        for i in members:
            rows, cols = pieces[i].entry["shape"]
            codes = np.frombuffer(pieces[i].values, dtype=_INT8).reshape(rows, cols)
            if role in SIMILARITY_SORTED and rows > 1:
                order = similarity_order(codes)
                codes = codes[order]
                perms.append((i, order.astype(perm_dtype(rows)).tobytes()))
            streams.setdefault(role, []).append((i, "values", np.ascontiguousarray(codes.T).tobytes()))
            entries[i]["transposed"] = True
            in_group.add(i)
    parts = streams.setdefault(rest, [])
    parts += [(i, "values", p.values) for i, p in enumerate(pieces)
              if p.entry["encoding"] == "int" and i not in in_group]
    parts += [(i, "scales", p.scales) for i, p in enumerate(pieces) if p.scales]
    for kind in ("fp16", "fp32"):
        parts += [(i, "values", p.values) for i, p in enumerate(pieces) if p.entry["encoding"] == kind]
    parts += [(i, "perm", data) for i, data in perms]
    offset = 0
    for name, items in streams.items():
        for i, field, data in items:
            key = {"values": "offset", "scales": "scale_offset", "perm": "perm_offset"}[field]
            entries[i][key] = offset
            entries[i][{"values": "nbytes", "scales": "scale_nbytes", "perm": "perm_nbytes"}[field]] = len(data)
            offset += len(data)
    for entry in entries:  # tensors without scales
        entry.setdefault("scale_offset", 0)
        entry.setdefault("scale_nbytes", 0)
    return [(name, b"".join(data for _, _, data in items)) for name, items in streams.items() if items], entries


def restore_codes(codes: np.ndarray, shape: tuple[int, int], transposed: bool, perm: np.ndarray | None) -> np.ndarray:
    """The (rows, cols) codes in the state dict's row order, from a group's stored bytes: undo the transpose, then
    the similarity order (row perm[k] was stored k-th)."""
    rows, cols = shape
    out = codes.reshape(cols, rows).T if transposed else codes.reshape(rows, cols)
    if perm is not None:
        unsorted = np.empty_like(out)
        unsorted[perm] = out
        out = unsorted
    return np.ascontiguousarray(out)
