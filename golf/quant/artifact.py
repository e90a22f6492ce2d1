"""The artifact file: the model's weights, encoded per tensor and compressed, in a format read without unpickling.

Format (version 1; keep stable):

    8 bytes   magic b"GOLFART\\x01"
    8 bytes   H, the header length, little-endian uint64
    H bytes   header: UTF-8 JSON, keys sorted, separators "," and ":", ASCII only, no timestamps
    the rest  the payload, compressed as header["compressor"] says (a name in golf/quant/compressors.py's registry:
              "zlib", "zstd", "lzma" at level/preset L, or "none"), and nothing after it

Header keys: "format" = "golf-artifact", "version" = 1, "model" (the caller's model config), "vocab_size",
"quant" (the QuantConfig used), "compressor", "level", "payload_bytes" and "payload_sha256" (of the uncompressed
payload), and "tensors": in state-dict order, {"name", "shape", "dtype" (the original dtype), "category",
"encoding" ("int" | "fp16" | "fp32"), "bits", "per_row", "offset", "nbytes", "scale_offset", "scale_nbytes"}.
The payload is the tensors' raw little-endian bytes, back to back in that order, each tensor's values (int8 codes,
fp16 or fp32, C order) followed by its fp16 scales (int only: one per row, or one for the tensor; 0 bytes otherwise).
Integer codes take one byte whatever the bit width: the compressor, not bit packing, takes out the unused bits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from golf.atomic import atomic_write_bytes
from golf.errors import GolfError
from golf.quant import compressors, encoders
from golf.quant.config import HESSIAN_ENCODERS, QuantConfig
from golf.quant.encoders import ExportContext
from golf.quant.quantize import (
    category_of, dequantize_rows, dequantize_tensor, plan_encoding, prune_smallest, quantize_tensor,
)

MAGIC = b"GOLFART\x01"
FORMAT = "golf-artifact"
VERSION = 1
_PREFIX = struct.Struct("<8sQ")
_VALUE_DTYPES = {"int": np.dtype("<i1"), "fp16": np.dtype("<f2"), "fp32": np.dtype("<f4")}
_SCALE_DTYPE = np.dtype("<f2")
# Ceilings a header may declare: a hostile file must not make golf allocate without bound. The largest artifact a
# 16 MB budget allows decodes to well under 1 GiB (one byte per weight, fp32 passthrough at most).
MAX_HEADER_BYTES = 1 << 24
MAX_PAYLOAD_BYTES = 1 << 30
_ENTRY_KEYS = ("name", "shape", "dtype", "category", "encoding", "bits", "per_row", "offset", "nbytes",
               "scale_offset", "scale_nbytes")


class ArtifactError(GolfError):
    """An artifact cannot be written or read; the message names the file (or tensor) and what was expected."""


@dataclass
class ExportResult:
    data: bytes  # the whole file
    model_bytes: int  # len(data): what the model adds to the 16,000,000-byte limit (the code is counted apart)
    sha256: str  # of data
    tensors: list[dict[str, Any]]  # the header's tensor entries
    # per category: params, raw_bytes (uncompressed payload incl. scales), compressed_bytes (that category's payload
    # compressed ALONE with the same compressor: the categories do not add up exactly to the file), bits_per_weight
    category_stats: dict[str, dict[str, float]]
    bits_per_weight: float  # whole file bytes * 8 / total parameters
    notes: list[str] = dataclasses.field(default_factory=list)  # what the encoders said (also logged as warnings)


@dataclass
class LoadedArtifact:
    state_dict: dict[str, Tensor]  # fp32, dequantized, shapes restored, contiguous
    model: dict[str, Any]
    vocab_size: int
    quant: dict[str, Any]
    header: dict[str, Any]
    sha256: str  # of the file
    source: str = "<memory>"  # the file it was read from, for error messages


def artifact_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compress(payload: bytes, compressor: str, level: int) -> bytes:
    try:
        return compressors.get(compressor).compress(payload, level)
    except compressors.errors() as e:
        raise ArtifactError(f"quant.level: {compressor} cannot compress at level {level} ({e})") from e


def _encode(name: str, tensor: Tensor, cfg: QuantConfig,
            context: ExportContext) -> tuple[dict[str, Any], bytes, bytes]:
    """The header entry (without offsets), value bytes and scale bytes of one tensor."""
    t = tensor.detach().cpu().contiguous()
    enc = plan_encoding(name, t, cfg)
    if not t.is_floating_point():
        if t.is_complex() or not torch.equal(t.to(torch.float32).to(t.dtype), t):
            raise ArtifactError(f"tensor {name!r} ({t.dtype}): only values that fp32 holds exactly can be stored")
    scales = b""
    if enc.kind == "int":
        if not torch.isfinite(t).all():
            raise ArtifactError(f"tensor {name!r} has NaN or infinite values; it cannot be quantized")
        w = prune_smallest(t.float(), cfg.prune_frac) if cfg.prune_frac > 0 else t
        if enc.per_row:
            q, scale = encoders.get(enc.encoder or cfg.encoder).quantize_rows(name, w, enc.bits, cfg, context)
        else:
            q, scale = quantize_tensor(w, enc.bits, cfg.clip_percentile)
        values = q.numpy().astype(_VALUE_DTYPES["int"]).tobytes()
        scales = scale.numpy().astype(_SCALE_DTYPE).tobytes()
    else:
        stored = t.to(torch.float16 if enc.kind == "fp16" else torch.float32)
        values = stored.numpy().astype(_VALUE_DTYPES[enc.kind]).tobytes()
    entry = {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
             "category": category_of(name), "encoding": enc.kind, "bits": enc.bits, "per_row": enc.per_row}
    return entry, values, scales


def _dump_header(header: dict[str, Any]) -> bytes:
    try:
        return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"artifact header: the model config must be plain JSON values ({e})") from e


def export_artifact(state_dict: dict[str, Tensor], model_config: dict[str, Any], vocab_size: int,
                    cfg: QuantConfig, context: ExportContext | None = None) -> ExportResult:
    """Encode, compress and frame `state_dict`; returns the file's bytes and a size breakdown, writes nothing.
    `context` carries what an encoder needs beyond the weights (calibration Hessians for quant.encoder=gptq)."""
    context = ExportContext() if context is None else context
    if cfg.encoder in HESSIAN_ENCODERS and not context.hessians:
        raise ArtifactError(f"quant.encoder={cfg.encoder} needs calibration Hessians (H = X^T X of each matrix's "
                            "inputs on training batches, golf/quant/calibration.py) and this export was given none; "
                            "choose quant.encoder=sdclip (the same scales without calibration), gptq_lite or rtn, "
                            "or pass ExportContext(hessians=...) to export_artifact")
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    by_category: dict[str, list[bytes]] = {}
    params: dict[str, int] = {}
    offset = 0
    for name, tensor in state_dict.items():
        entry, values, scales = _encode(name, tensor, cfg, context)
        entry.update(offset=offset, nbytes=len(values), scale_offset=offset + len(values), scale_nbytes=len(scales))
        offset += len(values) + len(scales)
        entries.append(entry)
        chunks += [values, scales]
        by_category.setdefault(entry["category"], []).append(values + scales)
        params[entry["category"]] = params.get(entry["category"], 0) + tensor.numel()
    payload = b"".join(chunks)
    header = {"format": FORMAT, "version": VERSION, "model": model_config, "vocab_size": vocab_size,
              "quant": dataclasses.asdict(cfg), "compressor": cfg.compressor, "level": cfg.level,
              "payload_bytes": len(payload), "payload_sha256": artifact_sha256(payload), "tensors": entries}
    header_bytes = _dump_header(header)
    categories = {category: b"".join(parts) for category, parts in by_category.items()}
    # the whole payload and each category alone, compressed concurrently (the compressors release the GIL):
    # at zstd-22 each pass over the baseline's 17 MB takes about 15 s
    with ThreadPoolExecutor(max_workers=min(len(categories) + 1, os.cpu_count() or 1)) as pool:
        whole = pool.submit(compress, payload, cfg.compressor, cfg.level)
        packed = {c: pool.submit(compress, raw, cfg.compressor, cfg.level) for c, raw in categories.items()}
        data = _PREFIX.pack(MAGIC, len(header_bytes)) + header_bytes + whole.result()
        category_stats = {}
        for category, raw in categories.items():
            n, size = params[category], len(packed[category].result())
            category_stats[category] = {"params": n, "raw_bytes": len(raw), "compressed_bytes": size,
                                        "bits_per_weight": size * 8 / n if n else 0.0}
    total_params = sum(params.values())
    return ExportResult(data=data, model_bytes=len(data), sha256=artifact_sha256(data), tensors=entries,
                        category_stats=category_stats,
                        bits_per_weight=len(data) * 8 / total_params if total_params else 0.0,
                        notes=list(context.notes))


def write_artifact(path: str | os.PathLike, result: ExportResult) -> None:
    atomic_write_bytes(path, result.data)


def load_artifact(path: str | os.PathLike) -> LoadedArtifact:
    """Read and check an artifact file; every failure is an ArtifactError naming `path`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read the artifact ({e.strerror or e})") from e
    return decode_artifact(data, str(path))


def decode_artifact(data: bytes, source: str = "<memory>") -> LoadedArtifact:
    """The weights and metadata of an artifact held in memory; `source` names it in errors."""
    header, payload = _unframe(data, source)
    state_dict = {}
    for entry in header["tensors"]:
        _check_entry(entry, header["payload_bytes"], source)
        if entry["name"] in state_dict:
            raise ArtifactError(f"{source}: tensor {entry['name']!r} appears twice in the header")
        state_dict[entry["name"]] = _decode_tensor(entry, payload)
    return LoadedArtifact(state_dict=state_dict, model=header["model"], vocab_size=header["vocab_size"],
                          quant=header["quant"], header=header, sha256=artifact_sha256(data), source=source)


def _unframe(data: bytes, source: str) -> tuple[dict[str, Any], bytes]:
    """The checked header and the decompressed, verified payload."""
    if len(data) < _PREFIX.size or data[:len(MAGIC)] != MAGIC:
        raise ArtifactError(f"{source}: not a golf artifact (expected the magic bytes {MAGIC!r} at the start)")
    _, header_len = _PREFIX.unpack_from(data)
    if header_len > len(data) - _PREFIX.size:
        raise ArtifactError(f"{source}: header length {header_len} goes beyond the end of the file "
                            f"({len(data)} bytes): the file is truncated or corrupted")
    if header_len > MAX_HEADER_BYTES:
        raise ArtifactError(f"{source}: the header claims {header_len:,} bytes, more than the {MAX_HEADER_BYTES:,} "
                            "a golf artifact may have: damaged or not a golf artifact")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{source}: the header is not valid UTF-8 JSON ({e})") from e
    except RecursionError:  # JSON nested thousands of levels deep: no golf header looks like that
        raise ArtifactError(f"{source}: the header nests too deeply to be a golf artifact's: damaged or hostile") \
            from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ArtifactError(f"{source}: the header does not describe a {FORMAT!r} file")
    if header.get("version") != VERSION:
        raise ArtifactError(f"{source}: unknown artifact version {header.get('version')!r}; this golf reads {VERSION}")
    for key, kind in (("model", dict), ("vocab_size", int), ("quant", dict), ("compressor", str),
                      ("payload_bytes", int), ("payload_sha256", str), ("tensors", list)):
        if not isinstance(header.get(key), kind):
            raise ArtifactError(f"{source}: header key {key!r} is missing or not a {kind.__name__}")
    if not 0 <= header["payload_bytes"] <= MAX_PAYLOAD_BYTES:
        raise ArtifactError(f"{source}: the header declares a payload of {header['payload_bytes']:,} bytes; golf "
                            f"reads at most {MAX_PAYLOAD_BYTES:,}: damaged or hostile")
    compressor = header["compressor"]
    if compressor not in compressors.names():
        raise ArtifactError(f"{source}: unknown compressor {compressor!r}; expected {', '.join(compressors.names())}")
    try:
        payload = compressors.decompress(data[_PREFIX.size + header_len:], compressor, header["payload_bytes"])
    except compressors.errors() as e:
        raise ArtifactError(f"{source}: the {compressor} payload does not decompress ({e}): truncated or corrupted") \
            from e
    if len(payload) != header["payload_bytes"]:
        raise ArtifactError(f"{source}: the payload has {len(payload)} bytes, the header says "
                            f"{header['payload_bytes']}: truncated or corrupted")
    if artifact_sha256(payload) != header["payload_sha256"]:
        raise ArtifactError(f"{source}: the payload's sha256 does not match the header's: corrupted")
    return header, payload


def _expected_nbytes(entry: dict[str, Any]) -> tuple[int, int]:
    shape = entry["shape"]
    numel = int(np.prod(shape, dtype=np.int64))
    values = numel * _VALUE_DTYPES[entry["encoding"]].itemsize
    if entry["encoding"] != "int":
        return values, 0
    return values, _SCALE_DTYPE.itemsize * (shape[0] if entry["per_row"] else 1)


def _check_entry(entry: Any, payload_bytes: int, source: str) -> None:
    if not isinstance(entry, dict) or any(key not in entry for key in _ENTRY_KEYS):
        raise ArtifactError(f"{source}: a tensor entry lacks some of the keys {', '.join(_ENTRY_KEYS)}")
    name = entry["name"]
    if not isinstance(name, str):
        raise ArtifactError(f"{source}: a tensor entry's name {name!r} is not a string")
    where = f"{source}: tensor {name!r}"
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ArtifactError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    if entry["encoding"] not in _VALUE_DTYPES:
        raise ArtifactError(f"{where}: unknown encoding {entry['encoding']!r}; expected int, fp16 or fp32")
    if entry["encoding"] == "int" and entry["per_row"] and len(shape) != 2:
        raise ArtifactError(f"{where}: per-row scales need a 2-D shape, got {shape}")
    for key in ("offset", "nbytes", "scale_offset", "scale_nbytes"):
        if not isinstance(entry[key], int) or entry[key] < 0:
            raise ArtifactError(f"{where}: {key} = {entry[key]!r} is not a non-negative integer")
    if (entry["nbytes"], entry["scale_nbytes"]) != _expected_nbytes(entry):
        raise ArtifactError(f"{where}: nbytes {entry['nbytes']} / scale_nbytes {entry['scale_nbytes']} do not match "
                            f"shape {shape} encoded as {entry['encoding']}")
    ends = (entry["offset"] + entry["nbytes"], entry["scale_offset"] + entry["scale_nbytes"])
    if max(ends) > payload_bytes:
        raise ArtifactError(f"{where}: its bytes lie outside the {payload_bytes}-byte payload")


def _read(payload: bytes, offset: int, nbytes: int, dtype: np.dtype) -> Tensor:
    values = np.frombuffer(payload, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)
    return torch.from_numpy(values.astype(dtype.newbyteorder("=")))  # a native-order copy


def _decode_tensor(entry: dict[str, Any], payload: bytes) -> Tensor:
    shape = tuple(entry["shape"])
    values = _read(payload, entry["offset"], entry["nbytes"], _VALUE_DTYPES[entry["encoding"]])
    if entry["encoding"] != "int":
        return values.float().reshape(shape).contiguous()
    scale = _read(payload, entry["scale_offset"], entry["scale_nbytes"], _SCALE_DTYPE)
    if entry["per_row"]:
        return dequantize_rows(values.reshape(shape), scale).contiguous()
    return dequantize_tensor(values.reshape(shape), scale.reshape(())).contiguous()
