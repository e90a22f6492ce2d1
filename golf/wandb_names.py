"""W&B run names. A sweep job is named by what distinguishes it, its swept overrides, then where it lives:
`ttt.freeze=2,ttt.lr=0.5,seed=1 @ <sweep dir>/<job>`, readable in the runs table and unique within the project (the
sweep directory is). A single run keeps its directory's name.

Which keys a sweep varies is known only where the multirun starts (the sweeper's params and the command line): the
sweep callback writes them to <sweep dir>/swept_keys.yaml, and each job, in whatever process it runs, reads them.
No Hydra here.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Optional, Sequence

import yaml

from golf.atomic import atomic_write_text

SWEPT_KEYS_FILE = "swept_keys.yaml"
MAX_OVERRIDES_CHARS = 80  # longer override lists keep their head and end in a hash of the whole list
HASH_CHARS = 8


def write_swept_keys(sweep_dir: Path, keys: Sequence[str]) -> None:
    text = "# the keys this sweep varies (W&B run names show only these)\n" + yaml.safe_dump(sorted(keys))
    atomic_write_text(Path(sweep_dir) / SWEPT_KEYS_FILE, text)


def read_swept_keys(sweep_dir: Path) -> Optional[list[str]]:
    """The swept keys, or None when `sweep_dir` is not a sweep's directory (or its file is unreadable)."""
    try:
        keys = yaml.safe_load((Path(sweep_dir) / SWEPT_KEYS_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return [str(k) for k in keys] if isinstance(keys, list) else None


def override_key(override: str) -> str:
    """`ttt.lr=0.5` -> `ttt.lr`, `+x@pkg=1` -> `x`, `~key` -> `key`."""
    return re.split(r"[=@]", override.lstrip("+~"), maxsplit=1)[0].strip()


def shorten(text: str, limit: int = MAX_OVERRIDES_CHARS) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:HASH_CHARS]
    return f"{text[:limit - HASH_CHARS - 1]}~{digest}"


def run_name(run_dir: Path, overrides: Sequence[str]) -> str:
    run_dir = Path(run_dir)
    swept = read_swept_keys(run_dir.parent)
    if swept is None:
        return run_dir.name
    distinguishing = [o for o in overrides if override_key(o) in swept] or list(overrides)
    where = f"{run_dir.parent.name}/{run_dir.name}"
    return f"{shorten(','.join(distinguishing))} @ {where}" if distinguishing else where
