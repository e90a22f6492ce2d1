"""The artifact file: the model's weights, encoded per tensor and compressed, in a format read without unpickling.

Format (version 2, what golf writes; keep stable):

    8 bytes   magic b"GOLFART\x02"
    4 bytes   C, the compressed header's length, little-endian uint32
    4 bytes   H, the header's length once decompressed, little-endian uint32 (at most MAX_HEADER_BYTES)
    C bytes   the header: UTF-8 JSON, keys sorted, separators "," and ":", ASCII only, no timestamps, compressed
              with brotli at quality 11 (no shuffle; the loader stops decompressing past H bytes)
    the rest  the payload's streams back to back, as header["streams"] lists them, and nothing after them

Header keys: "format" = "golf-artifact", "version" = 2, "model" (the caller's model config), "vocab_size", "quant"
(the QuantConfig used), "compressor" and "level" (quant.compressor and quant.level), "payload_bytes" and
"payload_sha256" (of the logical payload: the streams' decompressed bytes concatenated), "streams" (in file order:
{"name", "compressor", "level", "raw_bytes", "compressed_bytes"}, each decompressed on its own and never past its
raw_bytes), and "tensors": in state-dict order, {"name", "shape", "dtype" (the original dtype), "category",
"encoding" ("int" | "fp16" | "fp32"), "bits", "per_row", "offset", "nbytes", "scale_offset", "scale_nbytes",
"transposed", "perm_offset", "perm_nbytes"}, offsets into the logical payload. Values are little-endian: int8 codes,
fp16 or fp32 in C order (column-major when "transposed"), fp16 scales (int only: one per row, or one for the tensor),
and a row permutation (uint16, uint32 above 65,536 rows; perm_nbytes 0 = none): stored row k is row perm[k].
A matrix with an LQER correction (quant.lqer) has "lqer": {"rank", "asym", "group", "offset", "nbytes"}: its factors'
bytes (golf/quant/lqer_layout.py; after the last stream's other bytes) whose dequant(A) @ dequant(B) the loader adds.
Integer codes take one byte whatever the bit width: the compressor, not bit packing, takes out the unused bits.
Where each tensor's bytes go (codes, then scales, then floats; per group for pergroup) is golf/quant/grouping.py.

Version 1 (b"GOLFART\x01", an 8-byte uint64 header length, the header as raw JSON, one stream compressed with
header["compressor"], each tensor's values then its scales back to back in state-dict order, no "streams" and no
transposed/perm keys) is still read: caches and runs written before version 2 keep loading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
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
from golf.quant import compressors, encoders, grouping, lqer_layout, lrzip
from golf.quant.config import HESSIAN_ENCODERS, QuantConfig
from golf.quant.encoders import LOG, ExportContext
from golf.quant.grouping import Encoded
from golf.quant.quantize import (
    category_of, dequantize_rows, dequantize_tensor, plan_encoding, prune_smallest, quantize_tensor,
)

MAGIC_V1 = b"GOLFART\x01"
MAGIC = b"GOLFART\x02"  # what golf writes
FORMAT = "golf-artifact"
VERSION = 2
_PREFIX_V1 = struct.Struct("<8sQ")
_PREFIX = struct.Struct("<8sII")
HEADER_COMPRESSOR, HEADER_LEVEL = "brotli_plain", 11
GROUPED_COMPRESSORS = ("pergroup",)  # these compress the payload cut into groups by tensor role
_VALUE_DTYPES = {"int": np.dtype("<i1"), "fp16": np.dtype("<f2"), "fp32": np.dtype("<f4")}
_SCALE_DTYPE = np.dtype("<f2")
# Ceilings a header may declare: a hostile file must not make golf allocate without bound. The largest artifact a
# 16 MB budget allows decodes to well under 1 GiB (one byte per weight, fp32 passthrough at most).
MAX_HEADER_BYTES = 1 << 24
MAX_PAYLOAD_BYTES = 1 << 30
_ENTRY_KEYS = ("name", "shape", "dtype", "category", "encoding", "bits", "per_row", "offset", "nbytes",
               "scale_offset", "scale_nbytes")
_ENTRY_KEYS_V2 = _ENTRY_KEYS + ("transposed", "perm_offset", "perm_nbytes")
_STREAM_KEYS = {"name": str, "compressor": str, "level": int, "raw_bytes": int, "compressed_bytes": int}


class ArtifactError(GolfError):
    """An artifact cannot be written or read; the message names the file (or tensor) and what was expected."""


@dataclass
class ExportResult:
    data: bytes  # the whole file
    model_bytes: int  # len(data): what the model adds to the 16,000,000-byte limit (the code is counted apart)
    sha256: str  # of data
    tensors: list[dict[str, Any]]  # the header's tensor entries
    # per category: params, raw_bytes (uncompressed payload incl. scales), compressed_bytes (that category's payload
    # compressed ALONE with "compressor": the artifact's, brotli-9 for pergroup; the categories do not add up exactly
    # to the file), bits_per_weight
    category_stats: dict[str, dict[str, Any]]
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
        raise ArtifactError(f"quant.compressor={compressor} at quant.level={level} cannot compress ({e})") from e


def _compress_stream(name: str, raw: bytes, compressor: str, level: int) -> tuple[bytes, str]:
    """(the stream's compressed bytes, the line the export notes about it)."""
    if compressor not in GROUPED_COMPRESSORS:
        return compress(raw, compressor, level), ""
    try:
        method, blob = compressors.compress_best(raw, level)
    except compressors.errors() as e:
        raise ArtifactError(f"quant.compressor={compressor} at quant.level={level} cannot compress ({e})") from e
    return blob, f"{name} {len(raw):,} -> {len(blob):,} bytes ({method})"


def _encode(name: str, tensor: Tensor, cfg: QuantConfig, context: ExportContext) -> Encoded:
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
    return Encoded(entry, values, scales)


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
    grouped = cfg.compressor in GROUPED_COMPRESSORS
    if grouped and lrzip.command() is None:
        context.note(f"quant.compressor={cfg.compressor}: the lrzip command is not installed, so each group is "
                     "compressed by the best of brotli and lzma (the T3 record used lrzip; apt install lrzip)")
    pieces = [_encode(name, tensor, cfg, context) for name, tensor in state_dict.items()]
    streams, entries = grouping.arrange(pieces, grouped)
    if cfg.lqer.enabled:
        streams = _add_lqer(pieces, state_dict, cfg, streams, entries, context)
    payload = b"".join(raw for _, raw in streams)
    params: dict[str, int] = {}
    by_category: dict[str, list[bytes]] = {}
    for piece, tensor in zip(pieces, state_dict.values()):
        category = piece.entry["category"]
        params[category] = params.get(category, 0) + tensor.numel()
        by_category.setdefault(category, []).append(piece.values + piece.scales)
    categories = {category: b"".join(parts) for category, parts in by_category.items()}
    # Each category alone is compressed for the size breakdown with the artifact's compressor, except a grouped one:
    # it tries every compressor on every stream, and doing that again per category doubled the export (baseline9l
    # with lrzip: 15 min), so its categories are sized by brotli at level 9, said in their "compressor".
    stats_compressor, stats_level = (("brotli", min(cfg.level, 9)) if grouped else (cfg.compressor, cfg.level))
    # the streams and each category alone, compressed concurrently (the compressors release the GIL, lrzip is a
    # program): at zstd-22 each pass over the baseline's 17 MB takes about 15 s
    with ThreadPoolExecutor(max_workers=max(1, min(len(streams) + len(categories), os.cpu_count() or 1))) as pool:
        packing = [pool.submit(_compress_stream, name, raw, cfg.compressor, cfg.level) for name, raw in streams]
        packed = {c: pool.submit(compress, raw, stats_compressor, stats_level) for c, raw in categories.items()}
        blobs = [future.result() for future in packing]
        category_stats = {}
        for category, raw in categories.items():
            n, size = params[category], len(packed[category].result())
            category_stats[category] = {"params": n, "raw_bytes": len(raw), "compressed_bytes": size,
                                        "bits_per_weight": size * 8 / n if n else 0.0,
                                        "compressor": f"{stats_compressor}-{stats_level}"}
    notes = list(context.notes)
    if grouped:
        notes.append(f"quant.compressor={cfg.compressor} streams: " + "; ".join(line for _, line in blobs))
        LOG.info(notes[-1])
    header = {"format": FORMAT, "version": VERSION, "model": model_config, "vocab_size": vocab_size,
              "quant": dataclasses.asdict(cfg), "compressor": cfg.compressor, "level": cfg.level,
              "payload_bytes": len(payload), "payload_sha256": artifact_sha256(payload),
              "streams": [{"name": name, "compressor": cfg.compressor, "level": cfg.level, "raw_bytes": len(raw),
                           "compressed_bytes": len(blob)} for (name, raw), (blob, _) in zip(streams, blobs)],
              "tensors": entries}
    header_raw = _dump_header(header)
    if len(header_raw) > MAX_HEADER_BYTES:
        raise ArtifactError(f"artifact header: {len(header_raw):,} bytes, more than the {MAX_HEADER_BYTES:,} a golf "
                            "artifact may have (a model config or state dict far larger than any golf model)")
    header_blob = compress(header_raw, HEADER_COMPRESSOR, HEADER_LEVEL)
    data = _PREFIX.pack(MAGIC, len(header_blob), len(header_raw)) + header_blob + b"".join(b for b, _ in blobs)
    total_params = sum(params.values())
    return ExportResult(data=data, model_bytes=len(data), sha256=artifact_sha256(data), tensors=entries,
                        category_stats=category_stats,
                        bits_per_weight=len(data) * 8 / total_params if total_params else 0.0, notes=notes)


def _add_lqer(pieces: list[Encoded], state_dict: dict[str, Tensor], cfg: QuantConfig,
              streams: list[tuple[str, bytes]], entries: list[dict[str, Any]],
              context: ExportContext) -> list[tuple[str, bytes]]:
    """quant.lqer: the factors of the largest quantization errors, appended to the last stream and described in
    their matrices' entries; the export notes which matrices got one."""
    from golf.quant import lqer_export  # the SVD and the choice: export only, not counted in code_bytes
    factors, note = lqer_export.corrections(((p.entry["name"], p.values, p.scales) for p in pieces), state_dict, cfg)
    context.notes.append(note)
    LOG.info(note)
    if not factors:
        return streams
    by_name = {entry["name"]: entry for entry in entries}
    offset, extra = sum(len(raw) for _, raw in streams), []
    for name, f in factors.items():
        data = lqer_layout.to_bytes(f)
        by_name[name]["lqer"] = dict(lqer_layout.describe(f), offset=offset, nbytes=len(data))
        offset += len(data)
        extra.append(data)
    last, raw = streams[-1]
    return streams[:-1] + [(last, raw + b"".join(extra))]


def write_artifact(path: str | os.PathLike, result: ExportResult) -> None:
    atomic_write_bytes(path, result.data)


def load_artifact(path: str | os.PathLike) -> LoadedArtifact:
    """Read and check an artifact file (version 2, or version 1); every failure is an ArtifactError naming `path`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read the artifact ({e.strerror or e})") from e
    return decode_artifact(data, str(path))


def decode_artifact(data: bytes, source: str = "<memory>") -> LoadedArtifact:
    """The weights and metadata of an artifact held in memory; `source` names it in errors."""
    header, payload = _unframe(data, source)
    keys = _ENTRY_KEYS if header["version"] == 1 else _ENTRY_KEYS_V2
    state_dict = {}
    for entry in header["tensors"]:
        _check_entry(entry, keys, header["payload_bytes"], source)
        if entry["name"] in state_dict:
            raise ArtifactError(f"{source}: tensor {entry['name']!r} appears twice in the header")
        state_dict[entry["name"]] = _decode_tensor(entry, payload, f"{source}: tensor {entry['name']!r}")
        if "lqer" in entry:
            state_dict[entry["name"]] += _lqer_correction(entry, payload, f"{source}: tensor {entry['name']!r}")
    return LoadedArtifact(state_dict=state_dict, model=header["model"], vocab_size=header["vocab_size"],
                          quant=header["quant"], header=header, sha256=artifact_sha256(data), source=source)


def _unframe(data: bytes, source: str) -> tuple[dict[str, Any], bytes]:
    """The checked header and the decompressed, verified payload, of either version."""
    magic = data[:len(MAGIC)]
    if len(data) < _PREFIX_V1.size or magic not in (MAGIC, MAGIC_V1):
        raise ArtifactError(f"{source}: not a golf artifact (expected the magic bytes {MAGIC!r} or {MAGIC_V1!r} "
                            "at the start)")
    if magic == MAGIC_V1:
        _, header_len = _PREFIX_V1.unpack_from(data)
        _check_header_len(header_len, len(data) - _PREFIX_V1.size, source)
        header = _parse_header(data[_PREFIX_V1.size:_PREFIX_V1.size + header_len], 1, source)
        payload = _decompress(data[_PREFIX_V1.size + header_len:], header["compressor"], header["payload_bytes"],
                              source, "payload")
    else:
        _, packed_len, header_len = _PREFIX.unpack_from(data)
        _check_header_len(packed_len, len(data) - _PREFIX.size, source)
        if header_len > MAX_HEADER_BYTES:
            raise ArtifactError(f"{source}: the header claims {header_len:,} bytes, more than the "
                                f"{MAX_HEADER_BYTES:,} a golf artifact may have: damaged or not a golf artifact")
        raw = _decompress(data[_PREFIX.size:_PREFIX.size + packed_len], HEADER_COMPRESSOR, header_len, source,
                          "header")
        header = _parse_header(raw, VERSION, source)
        payload = _read_streams(data[_PREFIX.size + packed_len:], header, source)
    if artifact_sha256(payload) != header["payload_sha256"]:
        raise ArtifactError(f"{source}: the payload's sha256 does not match the header's: corrupted")
    return header, payload


def _check_header_len(header_len: int, available: int, source: str) -> None:
    if header_len > available:
        raise ArtifactError(f"{source}: header length {header_len} goes beyond the end of the file "
                            f"({available} bytes after the prefix): the file is truncated or corrupted")
    if header_len > MAX_HEADER_BYTES:
        raise ArtifactError(f"{source}: the header claims {header_len:,} bytes, more than the {MAX_HEADER_BYTES:,} "
                            "a golf artifact may have: damaged or not a golf artifact")


def _decompress(blob: bytes, compressor: str, size: int, source: str, what: str) -> bytes:
    """Exactly `size` bytes decompressed from `blob`, or an ArtifactError naming `what` (payload, header, stream)."""
    try:
        out = compressors.decompress(blob, compressor, size)
    except compressors.errors() as e:
        raise ArtifactError(f"{source}: the {compressor} {what} does not decompress ({e}): truncated or corrupted") \
            from e
    if len(out) != size:
        raise ArtifactError(f"{source}: the {what} has {len(out)} bytes, the header says {size}: truncated or "
                            "corrupted")
    return out


def _parse_header(raw: bytes, version: int, source: str) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{source}: the header is not valid UTF-8 JSON ({e})") from e
    except RecursionError:  # JSON nested thousands of levels deep: no golf header looks like that
        raise ArtifactError(f"{source}: the header nests too deeply to be a golf artifact's: damaged or hostile") \
            from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ArtifactError(f"{source}: the header does not describe a {FORMAT!r} file")
    if header.get("version") != version:
        raise ArtifactError(f"{source}: unknown artifact version {header.get('version')!r} in a version-{version} "
                            f"frame; this golf reads 1 and {VERSION}")
    required = {"model": dict, "vocab_size": int, "quant": dict, "compressor": str, "payload_bytes": int,
                "payload_sha256": str, "tensors": list, **({"streams": list} if version >= 2 else {})}
    for key, kind in required.items():
        if not isinstance(header.get(key), kind):
            raise ArtifactError(f"{source}: header key {key!r} is missing or not a {kind.__name__}")
    if not 0 <= header["payload_bytes"] <= MAX_PAYLOAD_BYTES:
        raise ArtifactError(f"{source}: the header declares a payload of {header['payload_bytes']:,} bytes; golf "
                            f"reads at most {MAX_PAYLOAD_BYTES:,}: damaged or hostile")
    for stream in header.get("streams", []):
        if not isinstance(stream, dict) or any(not isinstance(stream.get(k), kind) or
                                               (kind is int and stream[k] < 0) for k, kind in _STREAM_KEYS.items()):
            raise ArtifactError(f"{source}: a stream entry is not {{{', '.join(_STREAM_KEYS)}}} with non-negative "
                                "sizes")
    for compressor in [header["compressor"]] + [stream["compressor"] for stream in header.get("streams", [])]:
        if compressor not in compressors.names():
            raise ArtifactError(f"{source}: unknown compressor {compressor!r}; expected "
                                f"{', '.join(compressors.names())}")
    return header


def _read_streams(blob: bytes, header: dict[str, Any], source: str) -> bytes:
    """The logical payload: each stream decompressed on its own, never past its declared raw_bytes."""
    streams = header["streams"]  # entries checked by _parse_header
    if sum(s["raw_bytes"] for s in streams) != header["payload_bytes"]:
        raise ArtifactError(f"{source}: the streams' raw_bytes add up to {sum(s['raw_bytes'] for s in streams):,}, "
                            f"the header's payload_bytes is {header['payload_bytes']:,}: damaged")
    if sum(s["compressed_bytes"] for s in streams) != len(blob):
        raise ArtifactError(f"{source}: the streams declare {sum(s['compressed_bytes'] for s in streams):,} "
                            f"compressed bytes and the file holds {len(blob):,} after the header: truncated, "
                            "extended or corrupted")
    starts = np.cumsum([0] + [s["compressed_bytes"] for s in streams]).tolist()
    # concurrently, as T3 does: pergroup's lrzip (ZPAQ) decompresses about as slowly as it compresses
    with ThreadPoolExecutor(max_workers=max(1, min(len(streams), os.cpu_count() or 1))) as pool:
        parts = [pool.submit(_decompress, blob[start:start + s["compressed_bytes"]], s["compressor"], s["raw_bytes"],
                             source, f"stream {s['name']!r}") for s, start in zip(streams, starts)]
        return b"".join(part.result() for part in parts)


def _expected_nbytes(entry: dict[str, Any]) -> tuple[int, int]:
    shape = entry["shape"]
    numel = math.prod(shape)
    values = numel * _VALUE_DTYPES[entry["encoding"]].itemsize
    if entry["encoding"] != "int":
        return values, 0
    return values, _SCALE_DTYPE.itemsize * (shape[0] if entry["per_row"] else 1)


def _check_entry(entry: Any, keys: tuple[str, ...], payload_bytes: int, source: str) -> None:
    if not isinstance(entry, dict) or any(key not in entry for key in keys):
        raise ArtifactError(f"{source}: a tensor entry lacks some of the keys {', '.join(keys)}")
    name = entry["name"]
    if not isinstance(name, str):
        raise ArtifactError(f"{source}: a tensor entry's name {name!r} is not a string")
    where = f"{source}: tensor {name!r}"
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ArtifactError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    if math.prod(shape) > MAX_PAYLOAD_BYTES:  # Python ints: a hostile shape must not overflow int64 to a small numel
        raise ArtifactError(f"{where}: shape {shape!r} holds more elements than a golf artifact can "
                            f"({MAX_PAYLOAD_BYTES:,})")
    if entry["encoding"] not in _VALUE_DTYPES:
        raise ArtifactError(f"{where}: unknown encoding {entry['encoding']!r}; expected int, fp16 or fp32")
    if entry["encoding"] == "int" and entry["per_row"] and len(shape) != 2:
        raise ArtifactError(f"{where}: per-row scales need a 2-D shape, got {shape}")
    for key in ("offset", "nbytes", "scale_offset", "scale_nbytes", "perm_offset", "perm_nbytes"):
        if not isinstance(entry.get(key, 0), int) or entry.get(key, 0) < 0:
            raise ArtifactError(f"{where}: {key} = {entry[key]!r} is not a non-negative integer")
    if (entry["nbytes"], entry["scale_nbytes"]) != _expected_nbytes(entry):
        raise ArtifactError(f"{where}: nbytes {entry['nbytes']} / scale_nbytes {entry['scale_nbytes']} do not match "
                            f"shape {shape} encoded as {entry['encoding']}")
    reordered = entry.get("transposed", False) or entry.get("perm_nbytes", 0)
    if not isinstance(entry.get("transposed", False), bool) or \
            reordered and (entry["encoding"] != "int" or len(shape) != 2):
        raise ArtifactError(f"{where}: only the 2-D int codes of a group may be transposed or reordered "
                            f"(transposed {entry.get('transposed')!r}, perm_nbytes {entry.get('perm_nbytes')})")
    if entry.get("perm_nbytes", 0) not in (0, shape[0] * grouping.perm_dtype(shape[0]).itemsize if shape else 0):
        raise ArtifactError(f"{where}: perm_nbytes {entry['perm_nbytes']} is not one row index per row of {shape}")
    ends = (entry["offset"] + entry["nbytes"], entry["scale_offset"] + entry["scale_nbytes"],
            entry.get("perm_offset", 0) + entry.get("perm_nbytes", 0))
    if max(ends) > payload_bytes:
        raise ArtifactError(f"{where}: its bytes lie outside the {payload_bytes}-byte payload")


def _read(payload: bytes, offset: int, nbytes: int, dtype: np.dtype) -> np.ndarray:
    return np.frombuffer(payload, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)


def _tensor(values: np.ndarray) -> Tensor:
    return torch.from_numpy(values.astype(values.dtype.newbyteorder("=")))  # a native-order copy


def _lqer_correction(entry: dict[str, Any], payload: bytes, where: str) -> Tensor:
    """A matrix's stored LQER correction, its description and byte range checked before anything is read."""
    stored = entry["lqer"]
    if not isinstance(stored, dict) or entry["encoding"] != "int" or not entry["per_row"]:
        raise ArtifactError(f"{where}: an LQER correction ({stored!r}) belongs to a matrix of per-row int codes")
    description = {key: value for key, value in stored.items() if key not in ("offset", "nbytes")}
    problem = lqer_layout.check(description, entry["shape"])
    if problem:
        raise ArtifactError(f"{where}: {problem}")
    offset, nbytes = stored.get("offset"), stored.get("nbytes")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ArtifactError(f"{where}: LQER offset {offset!r} is not a non-negative integer")
    expected = lqer_layout.nbytes(description, entry["shape"])
    if nbytes != expected:
        raise ArtifactError(f"{where}: LQER nbytes {nbytes!r}; its description and shape make {expected} bytes")
    if offset + nbytes > len(payload):
        raise ArtifactError(f"{where}: its LQER factors lie outside the {len(payload)}-byte payload")
    return lqer_layout.from_bytes(description, entry["shape"], payload[offset:offset + nbytes]).correction()


def _decode_tensor(entry: dict[str, Any], payload: bytes, where: str) -> Tensor:
    shape = tuple(entry["shape"])
    raw = _read(payload, entry["offset"], entry["nbytes"], _VALUE_DTYPES[entry["encoding"]])
    if entry["encoding"] != "int":
        return _tensor(raw).float().reshape(shape).contiguous()
    if entry.get("transposed", False) or entry.get("perm_nbytes", 0):
        perm = None
        if entry["perm_nbytes"]:
            perm = _read(payload, entry["perm_offset"], entry["perm_nbytes"], grouping.perm_dtype(shape[0]))
            if not np.array_equal(np.sort(perm), np.arange(shape[0])):
                raise ArtifactError(f"{where}: its stored row order is not a permutation of its {shape[0]} rows")
        raw = grouping.restore_codes(raw, shape, entry["transposed"], perm)
    values = _tensor(raw)
    scale = _tensor(_read(payload, entry["scale_offset"], entry["scale_nbytes"], _SCALE_DTYPE))
    if entry["per_row"]:
        return dequantize_rows(values.reshape(shape), scale).contiguous()
    return dequantize_tensor(values.reshape(shape), scale.reshape(())).contiguous()
