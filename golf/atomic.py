"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A write that the file system refuses (permission, read-only, disk full, a file where a folder should be) raises
golf.errors.OutputError naming the path, and leaves neither a half-written file nor a temporary one behind. A writer
killed mid-write (kill -9) cannot clean up: its temporary file is named .<file>.<host>-<pid>.<random>.tmp, so
`stale_temp_files` can tell, later, that its writer is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from golf.errors import is_write_error, output_error


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def stale_temp_files(folder: str | os.PathLike, name: re.Pattern[str]) -> list[Path]:
    """Temporary files in `folder`, of writes to files whose names match `name`, whose writer (a process on this
    host) no longer runs. Files of writers on other hosts are never listed: their liveness cannot be seen here."""
    stale = []
    for path in Path(folder).iterdir() if Path(folder).is_dir() else ():
        m = _TEMP.match(path.name)
        if m and name.match(m.group("name")) and m.group("host") == _HOST and not _alive(int(m.group("pid"))):
            stale.append(path)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write; it replaces `path` only when the block ends without an exception."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if is_write_error(err):
            raise output_error(err, path) from err
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are meant to be read by others
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and is_write_error(err):
            raise output_error(err, path) from err
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")
