"""Errors that golf reports to a person as one clear paragraph, exit code 2, no traceback."""

import contextlib
import errno
from typing import Iterator


class GolfError(Exception):
    """Bad input (config, file or value): the message names it and says what is allowed."""

    exit_code = 2


class ConfigError(GolfError):
    """A config key has a value that is not allowed; raised before any work is done."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


class DataError(GolfError):
    """A shard, tokenizer or corpus file is missing, malformed or inconsistent; the message names the file."""


class OutputError(GolfError):
    """A file or folder cannot be written (permission, read-only file system, disk full, a file where a folder
    should be); the message names the path."""


# errno values that mean "this place cannot be written": the person's setup, not a bug in golf
_WRITE_ERRNOS = frozenset(getattr(errno, name) for name in (
    "EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR", "EEXIST", "EISDIR", "ENAMETOOLONG", "EFBIG", "EMLINK",
) if hasattr(errno, name))


def is_write_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in _WRITE_ERRNOS


def output_error(err: OSError, path: object = None) -> OutputError:
    """An OutputError for `err` naming `path` (or the path the OS names) and what would fix it."""
    where = path if path is not None else (err.filename or "an output path")
    reason = err.strerror or type(err).__name__
    hint = {errno.ENOSPC: "the disk is full: free space or point paths.root elsewhere",
            errno.ENOTDIR: "a part of the path is a file, not a folder: choose another paths.root",
            errno.ENOENT: "a folder on the path cannot be created there: choose a folder you can write"}.get(
        err.errno, "check its permissions, or point paths.root at a folder you can write")
    named = f" ({err.filename})" if err.filename and str(err.filename) != str(where) else ""
    return OutputError(f"cannot write {where}{named}: {reason}; {hint}")


@contextlib.contextmanager
def writes_to(path: object) -> Iterator[None]:
    """Within the block, a write the file system refuses becomes an OutputError naming `path`."""
    try:
        yield
    except OSError as err:
        if is_write_error(err):
            raise output_error(err, path) from err
        raise
