"""What a folder of shards must hold for the config that reads it, checked before anything is read.

Train and validation shards numbered 0, 1, 2, ... without a gap; the validation shards' byte sidecars
(fineweb_val_bytes_<i>.bin, one per validation shard, of the same length) exactly when the data is CaseOps
(data.transform=caseops); and no other fineweb_*.bin file. A file that does not fit is named and the folder refused:
a glob of fineweb_val_*.bin also matches the sidecars, and a sidecar read as validation tokens would be scored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from golf.data.shards import SIDECAR, SPLITS, parse_shard_name, read_shard_header, shard_name
from golf.errors import DataError

SHOWN = 5  # file names listed in a message before "and N more"


@dataclass
class ShardLayout:
    train: list[Path]
    val: list[Path]
    val_bytes: list[Path]  # empty unless the data has byte sidecars


def _names(files: Sequence[str | os.PathLike]) -> str:
    names = [Path(f).name for f in files]
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def check_layout(directory: str | os.PathLike, byte_sidecars: bool, remedy: str) -> ShardLayout:
    """The folder's shards when they are what the config expects; else DataError naming the files at fault and
    ending with `remedy` (how to get a correct folder)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"the shard folder {directory} does not exist; {remedy}")
    kinds: dict[str, dict[int, Path]] = {kind: {} for kind in (*SPLITS, SIDECAR)}
    unknown = []
    for file in sorted(directory.glob("fineweb_*.bin")):
        parsed = parse_shard_name(file.name)
        if parsed is None:
            unknown.append(file)
        else:
            kinds[parsed[0]][parsed[1]] = file
    expected = "fineweb_train_NNNNNN.bin, fineweb_val_NNNNNN.bin" + \
        (" and fineweb_val_bytes_NNNNNN.bin" if byte_sidecars else "")
    if unknown:
        raise DataError(f"{directory} holds files whose names golf does not read: {_names(unknown)}; a shard folder "
                        f"holds only {expected} (six-digit indices); move them out of the folder")
    sidecars = kinds[SIDECAR]
    if sidecars and not byte_sidecars:
        raise DataError(f"{directory} holds byte sidecars ({_names(sorted(sidecars.values()))}): it is CaseOps data, "
                        f"but data.transform is not caseops, so they would be ignored and the bytes counted from the "
                        f"tokenizer's table; use data=fineweb_sp8192_caseops (or data.transform=caseops and its "
                        f"tokenizer), or remove them if they do not belong there")
    for split in SPLITS:
        if not kinds[split]:
            raise DataError(f"no shards matching fineweb_{split}_*.bin in {directory}; {remedy}")
        _refuse_gaps(directory, split, kinds[split])
    if byte_sidecars:
        _check_sidecars(directory, kinds["val"], sidecars)
    ordered = {kind: [files[i] for i in sorted(files)] for kind, files in kinds.items()}
    return ShardLayout(ordered["train"], ordered["val"], ordered[SIDECAR])


def _refuse_gaps(directory: Path, kind: str, files: dict[int, Path]) -> None:
    missing = [shard_name(kind, i) for i in range(max(files) + 1) if i not in files]
    if missing:
        raise DataError(f"{directory} lacks {_names(missing)} while it holds {shard_name(kind, max(files))}: an "
                        f"incomplete download or copy; shards are read as one stream, numbered from 000000 without "
                        f"a gap")


def _check_sidecars(directory: Path, val: dict[int, Path], sidecars: dict[int, Path]) -> None:
    missing = [shard_name(SIDECAR, i) for i in sorted(val) if i not in sidecars]
    orphans = [sidecars[i] for i in sorted(sidecars) if i not in val]
    if missing:
        raise DataError(f"{directory} is CaseOps data (data.transform=caseops) but lacks the byte sidecar(s) "
                        f"{_names(missing)}: bits per byte must count the original text's bytes, which only the "
                        f"sidecars hold; download them (scripts/download_fineweb.py --variant sp8192_caseops) or "
                        f"prepare the data again")
    if orphans:
        raise DataError(f"{directory} holds byte sidecar(s) {_names(orphans)} with no validation shard of the same "
                        f"index")
    for index, shard in sorted(val.items()):
        tokens, counts = read_shard_header(shard), read_shard_header(sidecars[index])
        if tokens != counts:
            raise DataError(f"byte sidecar {sidecars[index]} holds {counts:,} entries but {shard.name} holds "
                            f"{tokens:,} tokens: a sidecar has one entry per token; the two come from different "
                            f"builds")
