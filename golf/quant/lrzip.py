"""The lrzip command (long-range rzip matching, then a ZPAQ back end), the T3 record's per-group compressor, called
as a program when it is installed (`shutil.which("lrzip")`; Debian/Ubuntu: `apt install lrzip`). No Python binding:
the bytes go through a private temporary folder.

Compression runs `lrzip -q -f -T -z -L <level>` with LRZIP=NOCONFIG (no lrzip.conf changes the output): as T3's
`lrzip -z -L 9`, plus -T, which skips lrzip's LZ4 pre-test (on quantized codes the test often judges the data
incompressible and stores it with rzip alone; quant.compressor=pergroup keeps whichever candidate is smallest, so
running ZPAQ always can only help). Decompression is bounded like every other compressor's: the stream's own header
must declare at most the size the artifact declares, and the output is read from lrzip's stdout and the program
stopped as soon as it passes that size. Encrypted streams are refused before lrzip runs (it would ask for a password).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

COMMAND = "lrzip"
MAGIC = b"LRZI"
_HEADER_BYTES = 24  # lrzip 0.6 magic: "LRZI", major, minor, size (<u64), lzma properties, md5 flag, encrypted flag
_READ_BYTES = 1 << 20


def command() -> str | None:
    """The lrzip program's path, or None when it is not installed."""
    return shutil.which(COMMAND)


def _require() -> str:
    found = command()
    if found is None:
        raise ValueError("the lrzip command is not installed (Debian/Ubuntu: apt install lrzip); "
                         "it is needed to read streams written with it")
    return found


def _env(tmp: str) -> dict[str, str]:
    return {**os.environ, "LRZIP": "NOCONFIG", "TMP": tmp, "TMPDIR": tmp}


def _stderr_tail(path: str) -> str:
    with open(path, "rb") as f:
        return f.read()[-400:].decode("utf-8", "replace").strip()


def compress(data: bytes, level: int) -> bytes:
    exe = _require()
    with tempfile.TemporaryDirectory(prefix="golf-lrzip-") as tmp:
        source, target, log = (os.path.join(tmp, name) for name in ("in.bin", "in.bin.lrz", "stderr.txt"))
        with open(source, "wb") as f:
            f.write(data)
        with open(log, "wb") as err:
            done = subprocess.run([exe, "-q", "-f", "-T", "-z", "-L", str(level), "-o", target, source],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=_env(tmp))
        if done.returncode != 0:
            raise ValueError(f"lrzip -z -L {level} failed (exit {done.returncode}): {_stderr_tail(log)}")
        with open(target, "rb") as f:
            return f.read()


def declared_size(blob: bytes) -> int:
    """The uncompressed size an lrzip stream's header declares; ValueError for what lrzip 0.6 would not write
    unencrypted."""
    if len(blob) < _HEADER_BYTES or blob[:4] != MAGIC:
        raise ValueError("not an lrzip stream (no LRZI magic)")
    if blob[4] != 0 or blob[5] != 6:
        raise ValueError(f"lrzip stream version {blob[4]}.{blob[5]}; golf reads 0.6")
    if blob[22] != 0:
        raise ValueError("the lrzip stream is encrypted")
    return int.from_bytes(blob[6:14], "little")


def decompress(blob: bytes, limit: int) -> bytes:
    """The stream's bytes, never more than `limit` of them (ValueError "more bytes" past it, as compressors.py)."""
    if declared_size(blob) > limit:
        raise ValueError(f"it holds more bytes than the header's payload_bytes ({limit:,})")
    exe = _require()
    with tempfile.TemporaryDirectory(prefix="golf-lrzip-") as tmp:
        source, log = os.path.join(tmp, "in.lrz"), os.path.join(tmp, "stderr.txt")
        with open(source, "wb") as f:
            f.write(blob)
        parts, produced = [], 0
        with open(log, "wb") as err, subprocess.Popen([exe, "-d", "-q", "-f", "-o", "-", source],
                                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                      stderr=err, env=_env(tmp)) as proc:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(_READ_BYTES):
                produced += len(chunk)
                if produced > limit:
                    proc.kill()
                    raise ValueError(f"it holds more bytes than the header's payload_bytes ({limit:,})")
                parts.append(chunk)
            code = proc.wait()
        if code != 0:
            raise ValueError(f"lrzip -d failed (exit {code}): {_stderr_tail(log)}")
    return b"".join(parts)
