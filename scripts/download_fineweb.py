"""Download the challenge's FineWeb data (sp1024 shards and tokenizer) from Hugging Face, then verify it.

    python scripts/download_fineweb.py [--train-shards 80] [--out outputs/data/fineweb] [--verify-only]

The files keep the dataset repo's layout under --out: datasets/fineweb10B_sp1024/*.bin and tokenizers/*.model.
Needs `pip install huggingface_hub` and network access to the Hugging Face Hub.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from golf.data.shards import list_shards, read_shard_header, shard_name
from golf.data.tokenizer import load_tokenizer
from golf.errors import GolfError

REPO_ID = "willdepueoai/parameter-golf"
DATASET_DIR = "datasets/fineweb10B_sp1024"
TOKENIZER_FILE = "tokenizers/fineweb_1024_bpe.model"
DEFAULT_TRAIN_SHARDS = 80  # the full set; fewer is enough for short runs
VAL_TOKENS = 62_021_632  # docs/data-format.md: the sp1024 validation set's size, a fingerprint of a correct download


def remote_files(train_shards: int) -> list[str]:
    """Paths inside the dataset repo: the validation shard, the first train_shards train shards, the tokenizer."""
    return [
        f"{DATASET_DIR}/{shard_name('val', 0)}",
        *(f"{DATASET_DIR}/{shard_name('train', i)}" for i in range(train_shards)),
        TOKENIZER_FILE,
    ]


def download(files: list[str], out_dir: Path) -> None:
    try:
        from huggingface_hub import hf_hub_download  # only this script needs it
    except ImportError:
        sys.exit("download_fineweb.py needs the Hugging Face client: pip install huggingface_hub")
    for number, name in enumerate(files, 1):
        print(f"[{number}/{len(files)}] {name}", flush=True)
        hf_hub_download(repo_id=REPO_ID, repo_type="dataset", filename=name, local_dir=out_dir)


@dataclass
class Verification:
    train_shards: int
    train_tokens: int
    val_shards: int
    val_tokens: int
    tokenizer_pieces: int

    @property
    def val_matches_fingerprint(self) -> bool:
        return self.val_tokens == VAL_TOKENS


def verify(out_dir: str | Path) -> Verification:
    """Check every shard's header and size and that the tokenizer loads; DataError names the first bad file."""
    shards_dir = Path(out_dir) / DATASET_DIR
    train, val = list_shards(shards_dir, "train"), list_shards(shards_dir, "val")
    sp = load_tokenizer(Path(out_dir) / TOKENIZER_FILE)
    return Verification(len(train), sum(read_shard_header(f) for f in train),
                        len(val), sum(read_shard_header(f) for f in val), sp.get_piece_size())


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-shards", type=int, default=DEFAULT_TRAIN_SHARDS)
    parser.add_argument("--out", type=Path, default=Path("outputs/data/fineweb"))
    parser.add_argument("--verify-only", action="store_true", help="check files already downloaded to --out")
    args = parser.parse_args(argv)
    if not args.verify_only:
        download(remote_files(args.train_shards), args.out)
    try:
        result = verify(args.out)
    except GolfError as err:
        print(f"verification failed: {err}", file=sys.stderr)
        return 1
    print(f"verified: {result.train_shards} train shard(s), {result.train_tokens:,} tokens; {result.val_shards} val "
          f"shard(s), {result.val_tokens:,} tokens; tokenizer with {result.tokenizer_pieces} pieces")
    if not result.val_matches_fingerprint:
        print(f"the validation set has {result.val_tokens:,} tokens, expected {VAL_TOKENS:,}: incomplete or "
              f"different data; download again", file=sys.stderr)
        return 1
    print(f"validation token count matches the challenge's ({VAL_TOKENS:,}). Train with:\n"
          f"  python -m golf.train data=fineweb_sp1024 data.path={args.out}/{DATASET_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
