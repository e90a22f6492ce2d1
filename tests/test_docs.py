"""The docs live in the repo and stay true to it: nothing tracked points at notes outside the repository, and every
relative link and every repository path that docs/*.md mentions exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from golf import REPO_ROOT

DOCS = REPO_ROOT / "docs"
THIS_FILE = "tests/test_docs.py"
# the design notes that lived beside the repository; spelled in pieces so that this file does not match itself
OUTSIDE_NOTES = ("../" + "shared", "/work/" + "shared", "FACTS" + ".md", "DESIGN" + ".md")
# the parity suite may default to a checkout of the challenge's repository next to golf's
PARITY_DIR = "tests/parity/"
PARITY_ALLOWED = ("../" + "shared",)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"(?<![\w./-])((?:golf|conf|scripts|tests)/[\w./-]*[\w/])")


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    return [name for name in out.decode("utf-8").split("\0") if name]


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_nothing_tracked_points_outside_the_repository():
    found = []
    for name in tracked_files():
        path = REPO_ROOT / name
        if name == THIS_FILE or not path.is_file():  # a file deleted in the work tree is not there to read
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary files hold no references
            continue
        allowed = PARITY_ALLOWED if name.startswith(PARITY_DIR) else ()
        for number, line in enumerate(text.splitlines(), 1):
            for note in OUTSIDE_NOTES:
                if note in line and note not in allowed:
                    found.append(f"{name}:{number}: {note}")
    assert not found, "point at docs/ instead of notes outside the repository:\n" + "\n".join(found)


def test_the_docs_exist():
    names = {p.name for p in doc_files()}
    assert {"rules.md", "data-format.md", "bpb.md", "legality.md", "architecture.md"} <= names


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):  # a URL, or an anchor in this page
            continue
        file_part = target.split("#", 1)[0]
        if not (doc.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{doc.name} links to missing files: {broken}"


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: p.name)
def test_every_repository_path_exists(doc):
    paths = set(REPO_PATH.findall(doc.read_text(encoding="utf-8")))
    missing = sorted(p for p in paths if not (REPO_ROOT / p).exists())
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_the_path_pattern_finds_paths_in_prose():
    # the checks above are only as good as this pattern: it must see paths in code spans, parentheses and sentences
    text = "see `golf/evaluate/bpb.py`, (golf/quant/code_size.py) and golf/model/. Not python -m golf.train."
    assert REPO_PATH.findall(text) == ["golf/evaluate/bpb.py", "golf/quant/code_size.py", "golf/model/"]
