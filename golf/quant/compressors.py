"""The payload's compressors, by name (`quant.compressor`): a registry, so a new one (brotli, ...) is one entry.

Each entry says how to compress at a level, which levels it takes, and how to decompress without trusting the file:
decompression is fed a little compressed input at a time and stops as soon as the output passes the size the
artifact's header declares, so a small hostile file cannot inflate to gigabytes. No torch here: the config checks
its names and levels.
"""

from __future__ import annotations

import lzma
import zlib
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import zstandard

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
register(Compressor("none", (0, 0), lambda data, level: data, None))


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Compressor:
    if name not in REGISTRY:
        raise ValueError(f"unknown compressor {name!r}; expected {', '.join(REGISTRY)}")
    return REGISTRY[name]


def decompress(blob: bytes, name: str, limit: int) -> bytes:
    """The payload, never more than `limit` bytes of it however the stream is crafted. Raises ValueError on
    truncated streams, trailing bytes and streams longer than the limit (and the compressor's own errors)."""
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
    return b"".join(parts)


def errors() -> tuple[type[Exception], ...]:
    """Every registered compressor's errors, and ValueError."""
    return tuple({e for c in REGISTRY.values() for e in c.errors} | {ValueError})
