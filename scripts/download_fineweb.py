"""Download the challenge's FineWeb data (shards and tokenizer) from Hugging Face, then verify it.

    python scripts/download_fineweb.py [--variant sp1024|sp4096|sp8192|sp8192_caseops] [--train-shards N]
                                       [--out outputs/data/fineweb] [--repo-id OWNER/NAME] [--verify-only]

Each variant comes from the dataset repository the records name (VARIANTS below). Those repositories keep their
files under a root folder `datasets/`: datasets/manifest.json (how many shards each dataset has),
datasets/datasets/<dataset>/*.bin and datasets/tokenizers/<model>. Locally the root folder is dropped, as the
challenge's own data/cached_challenge_fineweb.py does:

    <out>/datasets/<dataset>/fineweb_train_000000.bin ...   (the first --train-shards; all by default)
    <out>/datasets/<dataset>/fineweb_val_000000.bin ...     (every validation shard)
    <out>/datasets/<dataset>/fineweb_val_bytes_000000.bin   (CaseOps only: the byte sidecars bits per byte count)
    <out>/tokenizers/<model>
    <out>/manifests/<dataset>.json                          (the repository's manifest)

Files already there are kept, so an interrupted download resumes. Needs `pip install huggingface_hub` and network
access to the Hugging Face Hub.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from golf.data.layout import check_layout
from golf.data.shards import SIDECAR, read_shard, read_shard_header, shard_name
from golf.data.tokenizer import caseops_operator_ids, load_tokenizer
from golf.errors import DataError, GolfError

REMOTE_ROOT = "datasets"  # the repositories' root folder, dropped locally


@dataclass(frozen=True)
class Variant:
    repo_id: str  # the Hugging Face dataset repository
    dataset: str  # its folder under datasets/ (and the manifest's dataset name)
    tokenizer: str  # its SentencePiece model under tokenizers/
    vocab_size: int
    data_option: str  # conf/data/<data_option>.yaml reads this layout
    byte_sidecars: bool = False  # CaseOps: the validation shards' byte sidecars come too
    val_tokens: Optional[int] = None  # the known validation size, when documented: a fingerprint of a full download


VARIANTS = {
    # the challenge's own data (FACTS: 80 train shards; validation = the first 50,000 documents)
    "sp1024": Variant("willdepueoai/parameter-golf", "fineweb10B_sp1024", "fineweb_1024_bpe.model", 1024,
                      "fineweb_sp1024", val_tokens=62_021_632),
    # the SP4096 and SP8192 records' data: MATCHED_FINEWEB_REPO_ID=kevclark/parameter-golf in their READMEs
    "sp4096": Variant("kevclark/parameter-golf", "fineweb10B_sp4096", "fineweb_4096_bpe.model", 4096,
                      "fineweb_sp4096"),
    "sp8192": Variant("kevclark/parameter-golf", "fineweb10B_sp8192", "fineweb_8192_bpe.model", 8192,
                      "fineweb_sp8192", val_tokens=40_540_160),
    # CaseOps SP8192 with byte sidecars (PR #1729's export; T3, 2026-04-27, trains on it)
    "sp8192_caseops": Variant("romeerp/parameter-golf-caseops-v1",
                              "fineweb10B_sp8192_lossless_caps_caseops_v1_reserved",
                              "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model", 8192,
                              "fineweb_sp8192_caseops", byte_sidecars=True),
}

Fetch = Callable[[str, str], Path]  # (repo_id, path in the repository) -> a local file holding it


def fetch_from_hub(repo_id: str, remote_path: str) -> Path:
    """One file of a dataset repository, through the Hugging Face cache."""
    try:
        from huggingface_hub import hf_hub_download  # only this script needs it
    except ImportError:
        sys.exit("download_fineweb.py needs the Hugging Face client: pip install huggingface_hub")
    return Path(hf_hub_download(repo_id=repo_id, repo_type="dataset", filename=remote_path))


def local_path(out: Path, remote_path: str) -> Path:
    """Where a repository file lands under --out: its path without the root folder."""
    parts = Path(remote_path).parts
    if parts[:1] != (REMOTE_ROOT,):
        raise ValueError(f"{remote_path} is not under the repositories' root folder {REMOTE_ROOT}/")
    return out.joinpath(*parts[1:])


def place(source: Path, destination: Path) -> None:
    """The fetched file at `destination`, complete or not at all: a hard link to the cache when possible, else a
    copy through a temporary file renamed into place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = source.resolve(strict=True)  # the cache's snapshot entries are symbolic links to blobs
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as tmp:
        staged = Path(tmp) / destination.name
        try:
            os.link(source, staged)
        except OSError:
            shutil.copyfile(source, staged)
        os.replace(staged, destination)


@dataclass
class Manifest:
    train_shards: int
    val_shards: int


def read_manifest(path: Path, variant: Variant) -> Manifest:
    """The variant's shard counts from the repository's manifest.json (the challenge's format: datasets[] with a
    name and stats.files_train / stats.files_val)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entry = next((d for d in manifest.get("datasets", []) if d.get("name") == variant.dataset), None)
        if entry is None:
            names = [d.get("name") for d in manifest.get("datasets", [])]
            raise SystemExit(f"{path}: the repository {variant.repo_id} lists no dataset {variant.dataset} (it lists "
                             f"{', '.join(map(str, names)) or 'none'}); pass --repo-id for a mirror that has it")
        stats = entry.get("stats") or {}
        return Manifest(int(stats["files_train"]), int(stats["files_val"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SystemExit(f"{path}: not a readable dataset manifest ({err})") from err


def remote_files(variant: Variant, manifest: Manifest, train_shards: Optional[int]) -> list[str]:
    """Paths inside the repository: every validation shard (and its byte sidecar for CaseOps), the first
    train_shards train shards (all when None), the tokenizer."""
    n_train = manifest.train_shards if train_shards is None else train_shards
    if not 0 <= n_train <= manifest.train_shards:
        raise SystemExit(f"--train-shards {train_shards}: the dataset {variant.dataset} has {manifest.train_shards} "
                         f"train shards; choose 0 to {manifest.train_shards}")
    folder = f"{REMOTE_ROOT}/datasets/{variant.dataset}"
    kinds = ("val", SIDECAR) if variant.byte_sidecars else ("val",)
    return [
        *(f"{folder}/{shard_name(kind, i)}" for i in range(manifest.val_shards) for kind in kinds),
        *(f"{folder}/{shard_name('train', i)}" for i in range(n_train)),
        f"{REMOTE_ROOT}/tokenizers/{variant.tokenizer}",
    ]


def download(variant: Variant, repo_id: str, out: Path, train_shards: Optional[int], fetch: Fetch) -> None:
    manifest_path = out / "manifests" / f"{variant.dataset}.json"
    place(fetch(repo_id, f"{REMOTE_ROOT}/manifest.json"), manifest_path)
    files = remote_files(variant, read_manifest(manifest_path, variant), train_shards)
    for number, name in enumerate(files, 1):
        destination = local_path(out, name)
        if destination.is_file():
            print(f"[{number}/{len(files)}] {name}: already there", flush=True)
            continue
        print(f"[{number}/{len(files)}] {name}", flush=True)
        place(fetch(repo_id, name), destination)


@dataclass
class Verification:
    train_shards: int
    train_tokens: int
    val_shards: int
    val_tokens: int
    tokenizer_pieces: int
    val_bytes: Optional[int]  # the byte sidecars' total (CaseOps), else None

    def val_matches(self, variant: Variant) -> bool:
        return variant.val_tokens is None or self.val_tokens == variant.val_tokens


def args_variant(variant: Variant) -> str:
    return next(name for name, v in VARIANTS.items() if v == variant)


def shards_dir(out: Path, variant: Variant) -> Path:
    return out / "datasets" / variant.dataset


def verify(out: str | Path, variant: Variant) -> Verification:
    """Every shard's header and size, the folder's layout (the sidecars exactly for CaseOps, one entry per token),
    and a tokenizer of the variant's size and kind; GolfError names the first bad file."""
    out = Path(out)
    layout = check_layout(shards_dir(out, variant), variant.byte_sidecars,
                          f"run scripts/download_fineweb.py --variant {args_variant(variant)} without --verify-only")
    tokenizer = out / "tokenizers" / variant.tokenizer
    sp = load_tokenizer(tokenizer, expected_vocab_size=variant.vocab_size)
    if bool(caseops_operator_ids(sp)) != variant.byte_sidecars:
        raise DataError(f"{tokenizer} {'lacks' if variant.byte_sidecars else 'holds'} CaseOps' operator pieces: "
                        f"not the tokenizer of this variant")
    val_bytes = sum(int(read_shard(f).sum(dtype="int64")) for f in layout.val_bytes) if variant.byte_sidecars \
        else None
    return Verification(len(layout.train), sum(read_shard_header(f) for f in layout.train), len(layout.val),
                        sum(read_shard_header(f) for f in layout.val), sp.get_piece_size(), val_bytes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="sp1024",
                        help="which tokenization of FineWeb (and which dataset repository)")
    parser.add_argument("--train-shards", type=int, default=None,
                        help="how many train shards, from the first (default: all the manifest lists)")
    parser.add_argument("--out", type=Path, default=Path("outputs/data/fineweb"))
    parser.add_argument("--repo-id", default=None, help="a mirror of the variant's dataset repository")
    parser.add_argument("--verify-only", action="store_true", help="check files already downloaded to --out")
    return parser


def main(argv: Optional[list[str]] = None, fetch: Optional[Fetch] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_shards is not None and args.train_shards < 0:
        parser.error(f"--train-shards must be 0 or more, got {args.train_shards}")
    variant = VARIANTS[args.variant]
    if not args.verify_only:
        download(variant, args.repo_id or variant.repo_id, args.out, args.train_shards, fetch or fetch_from_hub)
    try:
        result = verify(args.out, variant)
    except GolfError as err:
        print(f"verification failed: {err}", file=sys.stderr)
        return 1
    sidecars = f"; byte sidecars: {result.val_bytes:,} bytes of original text" if result.val_bytes is not None else ""
    print(f"verified: {result.train_shards} train shard(s), {result.train_tokens:,} tokens; {result.val_shards} val "
          f"shard(s), {result.val_tokens:,} tokens{sidecars}; tokenizer with {result.tokenizer_pieces} pieces")
    if not result.val_matches(variant):
        print(f"the validation set has {result.val_tokens:,} tokens, expected {variant.val_tokens:,}: incomplete or "
              f"different data; download again", file=sys.stderr)
        return 1
    if variant.val_tokens is not None:
        print(f"validation token count matches the challenge's ({variant.val_tokens:,}).")
    print(f"Train with:\n  python -m golf.train data={variant.data_option} "
          f"data.path={shards_dir(args.out, variant)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
