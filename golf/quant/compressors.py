"""The payload's compressors, by name (`quant.compressor`): a registry, so a new one is one entry.

Each entry says how to compress at a level, which levels it takes, and how to decompress without trusting the file:
decompression is fed a little compressed input at a time and stops as soon as the output passes the size the
artifact's header declares, so a small hostile file cannot inflate to gigabytes. No torch here: the config checks
its names and levels.

"brotli" is the records' compressor since April 2026 (T2, T3): a byte shuffle of stride 2 (the even-indexed bytes,
then the odd-indexed ones, so the high and low bytes of fp16 values form separate streams) and brotli at quality L.
The stride is part of the name, so the file needs no marker; "brotli_plain" is brotli without the shuffle.

"pergroup" is the best of several: brotli_plain and brotli at quality 11, lzma at the level, and lrzip at the level
(golf/quant/lrzip.py) when the lrzip command is installed; the smallest wins, and its one-byte tag (PERGROUP_TAGS)
leads the stream. The artifact uses it on each group of a payload cut by tensor role (golf/quant/grouping.py), as
the T3 record's COMPRESSOR=pergroup; on a single stream it is just the best of the candidates.
"""

from __future__ import annotations

import lzma
import zlib
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import brotli
import numpy as np
import zstandard

from golf.quant import lrzip

FEED_BYTES = 1 << 10  # compressed bytes fed at a time: one zstd/zlib/xz step cannot inflate past ~32 MiB


class Decompression(Protocol):
    """One stream being decompressed: step() takes the next compressed bytes and returns what they decode to."""

    eof: bool
    unused_data: bytes

    def step(self, chunk: bytes) -> bytes: ...


@dataclass(frozen=True)
class Compressor:
    name: str
    levels: tuple[int, int]  # inclusive
    compress: Callable[[bytes, int], bytes]
    # a fresh decompression that never returns more than `limit` + 1 bytes in one step; None: stored as it is
    decompression: Optional[Callable[[int], Decompression]]
    errors: tuple[type[Exception], ...] = ()  # what it raises on bad input
    restore: Optional[Callable[[bytes], bytes]] = None  # undoes a transform compress applied before compressing
    # decompresses a whole stream itself, never returning more than `limit` bytes (instead of `decompression`)
    whole: Optional[Callable[[bytes, int], bytes]] = None


class _Stream:
    """Adapts a stdlib/zstandard decompressor object to Decompression."""

    def __init__(self, obj, limit: Optional[int]):
        self.obj, self.limit = obj, limit

    @property
    def eof(self) -> bool:
        return self.obj.eof

    @property
    def unused_data(self) -> bytes:
        return self.obj.unused_data

    def step(self, chunk: bytes) -> bytes:
        if self.limit is None:  # zstd: no output cap of its own; the small feed bounds each step
            return self.obj.decompress(chunk)
        return self.obj.decompress(chunk, self.limit + 1)


class _BrotliStream:
    """brotli.Decompressor (brotli >= 1.2) as a Decompression: its output buffer stops growing at the limit, and
    whatever the decoder still holds behind that cap is drained (with empty input, as brotli requires) only while
    the output is within the limit, so one step returns at most the limit plus one output block."""

    unused_data = b""  # brotli raises brotli.error on bytes after the end of the stream instead

    def __init__(self, limit: int):
        self.decoder, self.limit = brotli.Decompressor(), limit

    @property
    def eof(self) -> bool:
        return self.decoder.is_finished()

    def step(self, chunk: bytes) -> bytes:
        parts = [self.decoder.process(chunk, output_buffer_limit=self.limit + 1)]
        produced = len(parts[0])
        while produced <= self.limit and not self.decoder.can_accept_more_data() and not self.eof:
            parts.append(self.decoder.process(b"", output_buffer_limit=self.limit + 1))
            if not parts[-1]:
                break
            produced += len(parts[-1])
        return b"".join(parts)


def byte_shuffle(data: bytes, stride: int = 2) -> bytes:
    """The bytes at positions 0, stride, 2 stride, ..., then 1, 1 + stride, ..., and so on (same length)."""
    src = np.frombuffer(data, dtype=np.uint8)
    return b"".join(src[k::stride].tobytes() for k in range(stride))


def byte_unshuffle(data: bytes, stride: int = 2) -> bytes:
    """The inverse of byte_shuffle."""
    src = np.frombuffer(data, dtype=np.uint8)
    out = np.empty_like(src)
    start = 0
    for k in range(stride):
        count = len(range(k, len(src), stride))
        out[k::stride] = src[start:start + count]
        start += count
    return out.tobytes()


REGISTRY: dict[str, Compressor] = {}


def register(compressor: Compressor) -> Compressor:
    REGISTRY[compressor.name] = compressor
    return compressor


register(Compressor("zlib", (0, 9), lambda data, level: zlib.compress(data, level),
                    lambda limit: _Stream(zlib.decompressobj(), limit), (zlib.error,)))
register(Compressor("zstd", (1, 22), lambda data, level: zstandard.ZstdCompressor(level=level).compress(data),
                    lambda limit: _Stream(zstandard.ZstdDecompressor().decompressobj(), None),
                    (zstandard.ZstdError,)))
register(Compressor("lzma", (0, 9), lambda data, level: lzma.compress(data, format=lzma.FORMAT_XZ, preset=level),
                    lambda limit: _Stream(lzma.LZMADecompressor(), limit), (lzma.LZMAError,)))
register(Compressor("brotli", (0, 11), lambda data, level: brotli.compress(byte_shuffle(data), quality=level),
                    _BrotliStream, (brotli.error,), byte_unshuffle))
register(Compressor("brotli_plain", (0, 11), lambda data, level: brotli.compress(data, quality=level),
                    _BrotliStream, (brotli.error,)))
register(Compressor("none", (0, 0), lambda data, level: data, None))

# pergroup's candidates, by the tag that leads the stream; brotli runs at quality 11 (as T3), the others at the level
PERGROUP_TAGS: dict[bytes, str] = {b"B": "brotli_plain", b"S": "brotli", b"X": "lzma", b"L": "lrzip"}
PERGROUP_BROTLI_QUALITY = 11


def pergroup_candidates(level: int) -> list[tuple[bytes, str, int]]:
    """(tag, name, level) of each candidate pergroup tries; lrzip only when its command is installed."""
    return [(tag, name, PERGROUP_BROTLI_QUALITY if name.startswith("brotli") else level)
            for tag, name in PERGROUP_TAGS.items() if name != "lrzip" or lrzip.command() is not None]


def compress_best(data: bytes, level: int) -> tuple[str, bytes]:
    """(the winning candidate's name, its tag + its stream): the smallest; the first listed on a tie."""
    best: Optional[tuple[str, bytes]] = None
    for tag, name, candidate_level in pergroup_candidates(level):
        blob = tag + (lrzip.compress(data, candidate_level) if name == "lrzip"
                      else get(name).compress(data, candidate_level))
        if best is None or len(blob) < len(best[1]):
            best = (name, blob)
    assert best is not None
    return best


def _pergroup_decompress(blob: bytes, limit: int) -> bytes:
    tag, body = blob[:1], blob[1:]
    if tag not in PERGROUP_TAGS:
        raise ValueError(f"the pergroup stream starts with {tag!r}, not one of the tags "
                         f"{', '.join(t.decode() for t in PERGROUP_TAGS)}")
    name = PERGROUP_TAGS[tag]
    return lrzip.decompress(body, limit) if name == "lrzip" else decompress(body, name, limit)


register(Compressor("pergroup", (1, 9), lambda data, level: compress_best(data, level)[1], None,
                    (brotli.error, lzma.LZMAError), whole=_pergroup_decompress))


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Compressor:
    if name not in REGISTRY:
        raise ValueError(f"unknown compressor {name!r}; expected {', '.join(REGISTRY)}")
    return REGISTRY[name]


def decompress(blob: bytes, name: str, limit: int) -> bytes:
    """The payload, never more than `limit` bytes of it however the stream is crafted. Raises ValueError on
    truncated streams, trailing bytes and streams longer than the limit (and the compressor's own errors)."""
    if get(name).whole is not None:
        return get(name).whole(blob, limit)
    make = get(name).decompression
    if make is None:
        return blob
    stream = make(limit)
    parts, produced, fed = [], 0, 0
    while fed < len(blob) and not stream.eof:
        parts.append(stream.step(blob[fed: fed + FEED_BYTES]))
        fed += FEED_BYTES
        produced += len(parts[-1])
        if produced > limit:
            raise ValueError(f"it holds more bytes than the header's payload_bytes ({limit:,})")
    if not stream.eof or stream.unused_data or fed < len(blob):
        raise ValueError("the compressed stream is truncated or followed by extra bytes")
    restore = get(name).restore
    return b"".join(parts) if restore is None else restore(b"".join(parts))


def errors() -> tuple[type[Exception], ...]:
    """Every registered compressor's errors, and ValueError."""
    return tuple({e for c in REGISTRY.values() for e in c.errors} | {ValueError})
