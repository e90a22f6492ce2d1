"""What a submission's train_gpt.py must be run with, beyond its code: the run's tokenizer and validation shards (by
sha256) and the golf commit the run was made with (git.txt, golf/runs.py).

The script checks the data before it reads it: a tokenizer of the same vocabulary size but other pieces would load
without complaint and silently change the bytes each token counts, and so val_bpb. Imported by the script: only the
standard library and golf/digest.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from golf.digest import file_sha256

VAL_GLOB = "fineweb_val_*.bin"  # the validation shards and their byte sidecars (golf/data/layout.py)
COMMIT = re.compile(r"^commit: ([0-9a-f]{40})$", re.M)
STATE = re.compile(r"^state: (clean|dirty)$", re.M)


def data_digests(tokenizer: Path, shards_dir: Path) -> dict[str, Any]:
    """The sha256 of the tokenizer file and of each validation shard (and sidecar), by file name."""
    return {"tokenizer_sha256": file_sha256(tokenizer),
            "val_sha256": {f.name: file_sha256(f) for f in sorted(shards_dir.glob(VAL_GLOB))}}


def data_mismatch(expected: dict[str, Any], tokenizer: Path, shards_dir: Path) -> Optional[str]:
    """None when the tokenizer and the validation shards are the run's; else the paragraph that says which is not."""
    if not tokenizer.is_file():
        return None  # the tokenizer's loader names the missing file
    found = data_digests(tokenizer, shards_dir)
    if found["tokenizer_sha256"] != expected["tokenizer_sha256"]:
        return (f"train_gpt.py: the tokenizer {tokenizer} is not the run's (its sha256 is {found['tokenizer_sha256']}, "
                f"the run's {expected['tokenizer_sha256']}): another tokenizer, even of the same vocabulary size, "
                "changes the bytes each token counts and so val_bpb; set TOKENIZER_PATH to the tokenizer the run "
                "was trained with")
    want, got = expected["val_sha256"], found["val_sha256"]
    differ = sorted(name for name in set(want) | set(got) if want.get(name) != got.get(name))
    if differ:
        return (f"train_gpt.py: the validation shards in {shards_dir} are not the run's: {', '.join(differ[:5])}"
                f"{' and more' if len(differ) > 5 else ''} missing, extra or with another sha256; the score would be "
                "of other text; set DATA_PATH to the shard folder the run was scored on")
    return None


def golf_commit(git_text: Optional[str]) -> dict[str, Optional[str]]:
    """git.txt's commit and tree state; commit None and state "unknown" when git.txt is absent or git was not."""
    commit = COMMIT.search(git_text or "")
    state = STATE.search(git_text or "")
    if commit is None:
        return {"commit": None, "state": "unknown"}
    return {"commit": commit.group(1), "state": state.group(1) if state else "unknown"}
